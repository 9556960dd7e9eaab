import NormCore
import NormPlugins

/// detectron2's `FrozenBatchNorm2d`: a fixed per-channel affine
/// `y = x · scale + shift`, `scale = weight / √(running_var + eps)`,
/// `shift = bias − running_mean · scale`, with all four tensors as buffers (nothing is
/// learned, nothing is updated) and eps kept. Train and eval are identical; the gradient
/// is `g · scale`.
///
/// A fresh layer has weight 1, bias 0, running_mean 0 and running_var `1 − eps`
/// (detectron2), so it is an exact identity. ``FrozenBatchNormFolding`` turns a trained
/// BN / BRN / tracked IN into one that equals the original in eval mode.
public final class FrozenBatchNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "frozen_batch_norm", aliases: ["frozen_bn", "frozenbn"],
        summary: "Frozen BatchNorm: fixed per-channel affine from weight, bias and running statistics",
        reference: "detectron2 FrozenBatchNorm2d",
        options: [CommonOptions.eps()],
        ranks: 2...5,
        notes: ["y = x * weight / sqrt(running_var + eps) + (bias - running_mean * weight / sqrt(running_var + eps))",
                "weight, bias, running_mean, running_var are buffers; fresh running_var = 1 - eps (exact identity)"])

    public let channels: Int
    public let eps: Double
    public let weight: Buffer
    public let bias: Buffer
    public let runningMean: Buffer
    public let runningVar: Buffer
    private var cachedShape: [Int]?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public convenience init(shape: FeatureShape, options: NormOptions) throws {
        try self.init(channels: shape.channels, eps: options.real("eps"))
    }

    /// A fresh (identity) layer.
    public init(channels: Int, eps: Double = 1e-5) throws {
        guard channels > 0 else { throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive") }
        self.channels = channels
        self.eps = eps
        weight = Buffer(name: "weight", value: .ones([channels]))
        bias = Buffer(name: "bias", value: .zeros([channels]))
        runningMean = Buffer(name: "running_mean", value: .zeros([channels]))
        runningVar = Buffer(name: "running_var", value: Tensor(repeating: Float(1 - eps), shape: [channels]))
    }

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [weight, bias, runningMean, runningVar] }
    public var tracksRunningStatistics: Bool { false }

    /// Per-channel `(scale, shift)`, computed in float64 and rounded once.
    public var affine: (scale: [Float], shift: [Float]) {
        let w = weight.value.scalars, b = bias.value.scalars, rm = runningMean.value.scalars, rv = runningVar.value.scalars
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = Double(w[c]) / (Double(rv[c]) + eps).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(b[c]) - Double(rm[c]) * s)
        }
        return (scale, shift)
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard (2...5).contains(x.rank), x.shape[1] == channels, x.count > 0 else {
            throw NormError.invalidInput(method: Self.descriptor.name, reason: "input of shape \(x.shape.shapeText), expected (N, \(channels), ...)")
        }
        let (scale, shift) = affine
        let y = output.tensor(shape: x.shape)
        apply(x, into: y, scale: scale, shift: shift)
        cachedShape = x.shape
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let shape = cachedShape, gradOutput.shape == shape else {
            throw NormError.invalidBackward(method: Self.descriptor.name, reason: "backward without a matching forward")
        }
        let gx = gradInput.tensor(shape: shape)
        apply(gradOutput, into: gx, scale: affine.scale, shift: [Float](repeating: 0, count: channels))
        return gx
    }

    private func apply(_ x: Tensor, into y: Tensor, scale: [Float], shift: [Float]) {
        let planes = x.shape[0] * channels, s = x.spatialCount
        var ps = [Float](repeating: 0, count: planes), pt = ps
        for p in 0..<planes { ps[p] = scale[p % channels]; pt[p] = shift[p % channels] }
        let zeros = [Float](repeating: 0, count: planes)
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            PlaneKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, planes: planes, length: s, mu: zeros, scale: ps, shift: pt)
        }}
    }
}

/// Folding norm layers that track running statistics into ``FrozenBatchNorm``.
///
/// BN, BRN and IN with `track_running_stats=true` are folded (their eval mode is a
/// per-channel affine of the running statistics). Layers without running statistics (GN,
/// LN, FRN, untracked IN) are per-sample computations with no fixed affine equivalent and
/// are left alone, as are custom plugins (their eval semantics are unknown).
public enum FrozenBatchNormFolding {
    public struct Report: Sendable, Equatable {
        public var folded: [String] = []
        /// Slot name and why it was left alone.
        public var skipped: [(name: String, reason: String)] = []

        public static func == (a: Report, b: Report) -> Bool {
            a.folded == b.folded && a.skipped.map(\.name) == b.skipped.map(\.name) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
        }
    }

    /// The folded layer for a norm layer, or the reason it cannot be folded.
    public static func fold(_ layer: NormLayer, eps: Double) -> Result<FrozenBatchNorm, NetError> {
        let plugin = layer.plugin
        guard plugin is BatchNorm || plugin is BatchRenorm || plugin is InstanceNorm else {
            return .failure(NetError(plugin.tracksRunningStatistics
                ? "\(plugin.descriptor.name): custom plugin, eval semantics unknown"
                : "\(plugin.descriptor.name): no running statistics (per-sample statistics have no fixed affine)"))
        }
        guard plugin.tracksRunningStatistics, let rm = plugin.buffer(named: "running_mean"), let rv = plugin.buffer(named: "running_var") else {
            return .failure(NetError("\(plugin.descriptor.name): no running statistics (track_running_stats=false)"))
        }
        let channels = rm.value.count
        guard let frozen = try? FrozenBatchNorm(channels: channels, eps: eps) else { return .failure(NetError("bad channel count")) }
        if let w = plugin.parameter(named: "weight") { frozen.weight.value = w.value }
        if let b = plugin.parameter(named: "bias") { frozen.bias.value = b.value }
        frozen.runningMean.value = rm.value
        frozen.runningVar.value = rv.value
        return .success(frozen)
    }
}

extension Model {
    /// Replaces every foldable norm slot's layer by its ``FrozenBatchNorm``; reports the rest.
    @discardableResult
    public func foldFrozenBatchNorm() throws -> FrozenBatchNormFolding.Report {
        var report = FrozenBatchNormFolding.Report()
        for slot in normSlots {
            if slot.layer.plugin is FrozenBatchNorm { report.skipped.append((slot.name, "already frozen")); continue }
            let eps = slot.options.values["eps"].flatMap(NormSlot.real) ?? 1e-5
            switch FrozenBatchNormFolding.fold(slot.layer, eps: eps) {
            case let .success(frozen):
                slot.layer = try NormLayer(frozen, freeze: .none)
                report.folded.append(slot.name)
            case let .failure(e):
                report.skipped.append((slot.name, e.description))
            }
        }
        return report
    }
}
