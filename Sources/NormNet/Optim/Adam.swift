import Foundation
import NormCore

/// Settings of ``Adam`` (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with
/// PyTorch's defaults (`torch.optim.Adam` / `torch.optim.AdamW`, `amsgrad=False`).
public struct AdamConfig: Sendable, Equatable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    /// Added to `sqrt(v̂)` (after the square root), as PyTorch.
    public var epsilon: Double
    /// Adam: an L2 term `weightDecay · p` added to the gradient. AdamW: the decoupled decay
    /// `p ← p − lr · weightDecay · p` before the Adam step.
    public var weightDecay: Double
    /// `true` = AdamW (decoupled weight decay), `false` = Adam (L2 in the gradient).
    public var decoupledWeightDecay: Bool

    public init(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    var label: String { decoupledWeightDecay ? "adamw" : "adam" }

    public func validate() throws {
        guard learningRate.isFinite, learningRate >= 0 else { throw NetError("\(label): learning rate must be finite and >= 0, got \(learningRate)") }
        guard beta1.isFinite, (0..<1).contains(beta1) else { throw NetError("\(label): beta1 must be in [0, 1), got \(beta1)") }
        guard beta2.isFinite, (0..<1).contains(beta2) else { throw NetError("\(label): beta2 must be in [0, 1), got \(beta2)") }
        guard epsilon.isFinite, epsilon >= 0 else { throw NetError("\(label): epsilon must be >= 0, got \(epsilon)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw NetError("\(label): weight decay must be >= 0, got \(weightDecay)") }
    }
}

/// Adam / AdamW with PyTorch's update rule (`torch.optim.Adam`, `torch.optim.AdamW`,
/// single-tensor path, `amsgrad=False`, `maximize=False`). At step `t = 1, 2, …` of each
/// parameter:
///
/// ```
/// AdamW: p = p · (1 − lr · wd)                 Adam: g = g + wd · p
/// m = β1 · m + (1 − β1) · g                  (computed as m + (1 − β1)·(g − m), PyTorch's lerp)
/// v = β2 · v + (1 − β2) · g²
/// p = p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
/// ```
///
/// Weight decay applies only to parameters flagged `decays` (conv/linear weights by
/// default, as for ``SGD``). A parameter with `requiresGrad == false` or without a gradient
/// is skipped and its step counter does not advance (PyTorch skips `grad is None`
/// parameters the same way). The moments are kept in float32 like PyTorch's float32
/// parameters; the bias corrections are computed in float64.
public final class Adam: Optimizer {
    public let config: AdamConfig
    public let parameters: [(parameter: Parameter, decays: Bool)]
    private var state: [ObjectIdentifier: (step: Int, m: [Float], v: [Float])] = [:]

    public init(_ config: AdamConfig, parameters: [(parameter: Parameter, decays: Bool)]) throws {
        try config.validate()
        self.config = config
        self.parameters = parameters
    }

    /// For a model: every parameter, decay on conv/linear weights (or all, per the spec).
    public convenience init(_ config: AdamConfig, model: Model) throws {
        try self.init(config, parameters: model.namedParameters.map { ($0.parameter, $0.decays) })
    }

    /// Steps taken for `p` and its first and second moments (nil before its first update).
    public func moments(of p: Parameter) -> (step: Int, m: [Float], v: [Float])? { state[ObjectIdentifier(p)] }

    public func step(learningRate lr: Double? = nil) {
        let lr = lr ?? config.learningRate
        // As PyTorch: 1 − β computed in float64, then used as a float32 factor.
        let c1 = Float(1 - config.beta1), b2 = Float(config.beta2), c2 = Float(1 - config.beta2)
        let eps = Float(config.epsilon)
        for (p, decays) in parameters where p.requiresGrad {
            guard let grad = p.gradient, grad.count == p.value.count else { continue }
            let key = ObjectIdentifier(p)
            var s = state.removeValue(forKey: key)
                ?? (0, [Float](repeating: 0, count: grad.count), [Float](repeating: 0, count: grad.count))
            s.step += 1
            let t = Double(s.step)
            let stepSize = Float(lr / (1 - pow(config.beta1, t)))
            let correction2 = Float((1 - pow(config.beta2, t)).squareRoot())
            let wd = decays ? config.weightDecay : 0
            let l2: Float = config.decoupledWeightDecay ? 0 : Float(wd)
            let shrink: Float = config.decoupledWeightDecay ? Float(1 - lr * wd) : 1
            p.value.withUnsafeMutableBufferPointer { v in grad.withUnsafeBufferPointer { g in
                s.m.withUnsafeMutableBufferPointer { m in s.v.withUnsafeMutableBufferPointer { sq in
                    for i in 0..<v.count {
                        if shrink != 1 { v[i] *= shrink }
                        var d = g[i]
                        if l2 != 0 { d += l2 * v[i] }
                        m[i] += c1 * (d - m[i])          // exp_avg.lerp_(grad, 1 − β1)
                        sq[i] = b2 * sq[i] + c2 * d * d  // exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2)
                        let denom = sq[i].squareRoot() / correction2 + eps
                        v[i] -= stepSize * m[i] / denom
                    }
                }}
            }}
            state[key] = s
        }
    }

    /// Clears every gradient.
    public func zeroGradients() { for (p, _) in parameters { p.gradient = nil } }
}
