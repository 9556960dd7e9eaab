import NormCore

/// A model's place for a normalization layer: the ``NormLayer`` built from the registry
/// (freeze policy applied by `NormLayer`, so no mode switch can undo it), the spec and
/// resolved options it came from, and the telemetry recorded while training.
public final class NormSlot: Layer {
    /// Dotted name of the slot in the model (`blocks.2.norm`).
    public let name: String
    /// The spec the layer was built from and its validated options.
    public let spec: NormSpec
    public let options: NormOptions
    /// The feature shape it was built for.
    public let shape: FeatureShape
    /// The layer; replaced by a ``FrozenBatchNorm`` when folded.
    public internal(set) var layer: NormLayer
    /// Batch-vs-running statistics gaps, recorded in train steps when enabled.
    public let telemetry = NormTelemetryRecorder()
    /// Record telemetry on train-mode forwards.
    public var recordsTelemetry = false
    public var computesInputGradient = true

    init(name: String, spec: NormSpec, options: NormOptions, shape: FeatureShape, layer: NormLayer) {
        self.name = name; self.spec = spec; self.options = options; self.shape = shape; self.layer = layer
    }

    public var parameters: [Parameter] { layer.parameters }
    public var buffers: [Buffer] { layer.buffers }
    /// Canonical method name of the current layer.
    public var method: String { layer.descriptor.name }
    public var freeze: FreezePolicy { layer.freeze }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let effective = layer.freeze.effectiveMode(for: mode)
        guard recordsTelemetry, effective == .train, let source = layer.plugin.trackedStatistics,
              let stats = source.evalStatistics else {
            return try layer.forward(x, mode: mode)
        }
        // rm/rv keep this step's pre-update values (the update copies on write).
        let rm = stats.mean.value, rv = stats.variance.value
        let y = try layer.forward(x, mode: mode)
        if let moments = source.lastBatchMoments {
            telemetry.record(moments, runningMean: rm, runningVar: rv, eps: stats.eps)
        }
        if let renorm = layer.plugin as? any RenormalizationControl { telemetry.recordClips(renorm.lastClipFractions) }
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor { try layer.backward(gradOutput) }
}
