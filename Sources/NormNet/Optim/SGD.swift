import NormCore

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` update rule:
///
/// ```
/// g = grad + weight_decay · p                  (decay only where the parameter allows it)
/// buf = g (first step), else buf = momentum · buf + (1 − dampening) · g
/// g = nesterov ? g + momentum · buf : buf      (when momentum ≠ 0)
/// p = p − lr · g
/// ```
///
/// Parameters with `requiresGrad == false` or no gradient are left untouched (and keep
/// their momentum buffer as it was).
public struct SGDConfig: Sendable, Equatable {
    public var learningRate: Double
    public var momentum: Double
    public var dampening: Double
    public var weightDecay: Double
    public var nesterov: Bool

    public init(learningRate: Double = 0.1, momentum: Double = 0.9, dampening: Double = 0, weightDecay: Double = 5e-4, nesterov: Bool = false) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public func validate() throws {
        guard learningRate.isFinite, learningRate >= 0 else { throw NetError("sgd: learning rate must be finite and >= 0, got \(learningRate)") }
        guard momentum.isFinite, momentum >= 0 else { throw NetError("sgd: momentum must be >= 0, got \(momentum)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw NetError("sgd: weight decay must be >= 0, got \(weightDecay)") }
        guard dampening.isFinite, (0...1).contains(dampening) else { throw NetError("sgd: dampening must be in [0, 1]") }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw NetError("sgd: nesterov needs momentum > 0 and zero dampening (as PyTorch)")
        }
    }
}

public final class SGD {
    public let config: SGDConfig
    /// The parameters it updates, with whether weight decay applies to each.
    public let parameters: [(parameter: Parameter, decays: Bool)]
    private var velocity: [ObjectIdentifier: [Float]] = [:]

    public init(_ config: SGDConfig, parameters: [(parameter: Parameter, decays: Bool)]) throws {
        try config.validate()
        self.config = config
        self.parameters = parameters
    }

    /// For a model: every parameter, decay on conv/linear weights (or all, per the spec).
    public convenience init(_ config: SGDConfig, model: Model) throws {
        try self.init(config, parameters: model.namedParameters.map { ($0.parameter, $0.decays) })
    }

    /// The momentum buffer of a parameter (nil before its first update).
    public func momentumBuffer(of p: Parameter) -> [Float]? { velocity[ObjectIdentifier(p)] }

    /// One update with learning rate `lr` (from a schedule; defaults to the configured one).
    public func step(learningRate lr: Double? = nil) {
        let lr = Float(lr ?? config.learningRate)
        let mu = Float(config.momentum), damp = Float(1 - config.dampening)
        for (p, decays) in parameters where p.requiresGrad {
            guard let grad = p.gradient, grad.count == p.value.count else { continue }
            let wd: Float = decays ? Float(config.weightDecay) : 0
            let key = ObjectIdentifier(p)
            let first = velocity[key] == nil
            var buf = velocity.removeValue(forKey: key) ?? []
            if mu != 0 && first { buf = [Float](repeating: 0, count: grad.count) }
            let nesterov = config.nesterov
            // In place: the parameter is the storage's only owner (layers keep no reference).
            p.value.withUnsafeMutableBufferPointer { v in grad.withUnsafeBufferPointer { g in
                buf.withUnsafeMutableBufferPointer { b in
                    for i in 0..<v.count {
                        var d = g[i]
                        if wd != 0 { d += wd * v[i] }
                        if mu != 0 {
                            b[i] = first ? d : mu * b[i] + damp * d
                            d = nesterov ? d + mu * b[i] : b[i]
                        }
                        v[i] -= lr * d
                    }
                }
            }}
            if mu != 0 { velocity[key] = buf }
        }
    }

    /// Clears every gradient.
    public func zeroGradients() { for (p, _) in parameters { p.gradient = nil } }
}
