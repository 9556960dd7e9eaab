/// A normalization layer with its ``FreezePolicy`` applied: what models and the CLI hold.
///
/// The policy wins over any mode the caller passes, so a model switched back to train
/// mode never undoes a statistics freeze, and gradients of frozen parameters are never
/// produced, even by a custom plugin that forgets to check `requiresGrad`.
public final class NormLayer: @unchecked Sendable {
    /// The wrapped plugin instance.
    public let plugin: any Normalization
    /// The freeze switches; set at construction (validated), changeable through ``setFreeze(_:)``.
    public private(set) var freeze: FreezePolicy

    /// Wraps `plugin`; a statistics freeze on a layer that tracks no running statistics is refused.
    public init(_ plugin: any Normalization, freeze: FreezePolicy = .none) throws {
        self.plugin = plugin
        self.freeze = .none
        try setFreeze(freeze)
    }

    /// Changes the freeze switches (e.g. after pre-training).
    public func setFreeze(_ policy: FreezePolicy) throws {
        if policy.freezesStatistics && !plugin.tracksRunningStatistics {
            throw NormError.invalidConfiguration(
                method: plugin.descriptor.name,
                reason: "frozen statistics (norm_eval) need running statistics, but this layer tracks none")
        }
        freeze = policy
        for p in plugin.parameters {
            p.requiresGrad = !policy.freezesAffine
            if policy.freezesAffine { p.gradient = nil }
        }
    }

    public var descriptor: NormDescriptor { plugin.descriptor }
    public var parameters: [Parameter] { plugin.parameters }
    public var buffers: [Buffer] { plugin.buffers }

    /// Forward in `freeze.effectiveMode(for: mode)`.
    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try plugin.forward(x, mode: freeze.effectiveMode(for: mode))
    }

    /// Backward; frozen parameters end with no gradient.
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let gx = try plugin.backward(gradOutput)
        for p in plugin.parameters where !p.requiresGrad { p.gradient = nil }
        return gx
    }
}
