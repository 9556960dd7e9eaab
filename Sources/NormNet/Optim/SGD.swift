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
    /// The momentum buffer of each parameter (by index; nil before its first update).
    private var velocity: [[Float]?]

    public init(_ config: SGDConfig, parameters: [(parameter: Parameter, decays: Bool)]) throws {
        try config.validate()
        self.config = config
        self.parameters = parameters
        velocity = Array(repeating: nil, count: parameters.count)
    }

    /// For a model: every parameter, decay on conv/linear weights (or all, per the spec).
    public convenience init(_ config: SGDConfig, model: Model) throws {
        try self.init(config, parameters: model.namedParameters.map { ($0.parameter, $0.decays) })
    }

    /// The momentum buffer of a parameter (nil before its first update).
    public func momentumBuffer(of p: Parameter) -> [Float]? {
        parameters.firstIndex { $0.parameter === p }.flatMap { velocity[$0] }
    }

    /// One update with learning rate `lr` (from a schedule; defaults to the configured one).
    public func step(learningRate lr: Double? = nil) {
        let lr = Float(lr ?? config.learningRate)
        let mu = Float(config.momentum), damp = Float(1 - config.dampening)
        for (index, (p, decays)) in parameters.enumerated() where p.requiresGrad {
            guard let grad = p.gradient, grad.count == p.value.count else { continue }
            let rule = UpdateRule(lr: lr, wd: decays ? Float(config.weightDecay) : 0, mu: mu, damp: damp,
                                  first: velocity[index] == nil, nesterov: config.nesterov)
            // Taken out of the array while it is written, so it is not copied.
            var buf = velocity[index] ?? (mu != 0 ? [Float](repeating: 0, count: grad.count) : [])
            velocity[index] = nil
            // In place: the parameter is the storage's only owner (layers keep no reference).
            p.value.withUnsafeMutableBufferPointer { v in grad.withUnsafeBufferPointer { g in buf.withUnsafeMutableBufferPointer { b in
                rule.apply(v.baseAddress!, g.baseAddress!, b.baseAddress ?? v.baseAddress!, count: v.count)
            }}}
            if mu != 0 { velocity[index] = buf }
        }
    }

    /// Clears every gradient.
    public func zeroGradients() { for (p, _) in parameters { p.gradient = nil } }
}

/// One parameter's SGD update, with the choices that hold for the whole tensor (weight decay
/// or not, momentum, first step, Nesterov) taken once: each combination runs its own loop
/// without branches (one generic loop specialized per combination), so it vectorizes. The
/// arithmetic per element is the documented rule's, in its order.
private struct UpdateRule {
    var lr: Float, wd: Float, mu: Float, damp: Float
    var first: Bool, nesterov: Bool

    func apply(_ v: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ b: UnsafeMutablePointer<Float>, count: Int) {
        if wd != 0 { withMomentum(On.self, v, g, b, count) } else { withMomentum(Off.self, v, g, b, count) }
    }

    private func withMomentum<Decay: Flag>(_ decay: Decay.Type, _ v: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                           _ b: UnsafeMutablePointer<Float>, _ count: Int) {
        switch (mu != 0, first, nesterov) {
        case (false, _, _): loop(decay, Off.self, Off.self, Off.self, v, g, b, count)
        case (true, true, true): loop(decay, On.self, On.self, On.self, v, g, b, count)
        case (true, true, false): loop(decay, On.self, On.self, Off.self, v, g, b, count)
        case (true, false, true): loop(decay, On.self, Off.self, On.self, v, g, b, count)
        case (true, false, false): loop(decay, On.self, Off.self, Off.self, v, g, b, count)
        }
    }

    @inline(__always)
    private func loop<Decay: Flag, Momentum: Flag, First: Flag, Nesterov: Flag>(
        _: Decay.Type, _: Momentum.Type, _: First.Type, _: Nesterov.Type,
        _ v: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ count: Int) {
        let (lr, wd, mu, damp) = (lr, wd, mu, damp)
        for i in 0..<count {
            var d = g[i]
            if Decay.on { d += wd * v[i] }
            if Momentum.on {
                b[i] = First.on ? d : mu * b[i] + damp * d
                d = Nesterov.on ? d + mu * b[i] : b[i]
            }
            v[i] -= lr * d
        }
    }
}

/// A choice fixed at compile time in ``UpdateRule``'s specialized loops.
private protocol Flag { static var on: Bool { get } }
private enum On: Flag { static var on: Bool { true } }
private enum Off: Flag { static var on: Bool { false } }
