import NormCore

/// detectron2's `FrozenBatchNorm2d`: a fixed per-channel affine
/// `y = x · scale + shift`, `scale = weight / √(running_var + eps)`,
/// `shift = bias − running_mean · scale`, with all four tensors as buffers (nothing is
/// learned, nothing is updated) and eps kept. Train and eval are identical; the gradient
/// is `g · scale`.
///
/// A fresh layer has weight 1, bias 0, running_mean 0 and running_var `1 − eps`
/// (detectron2), so it is an exact identity. A trained BN / BRN / tracked IN folds into one
/// that equals it in eval mode through ``AffineFolding``.
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

extension FrozenBatchNorm: AffineFolding {
    /// A frozen layer is already a fixed affine.
    public func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal> { .failure(FoldingRefusal("already frozen")) }

    /// The frozen layer equal to `layer`'s eval mode: its running statistics, eps and affine
    /// (weight 1, bias 0 without one). BN, BRN and tracked IN fold through this.
    static func folding(_ layer: some BatchStatisticsReporting) -> Result<any Normalization, FoldingRefusal> {
        guard layer.tracksRunningStatistics, let stats = layer.evalStatistics else {
            return .failure(FoldingRefusal("\(layer.descriptor.name): no running statistics (track_running_stats=false)"))
        }
        guard let frozen = try? FrozenBatchNorm(channels: stats.mean.value.count, eps: stats.eps) else {
            return .failure(FoldingRefusal("\(layer.descriptor.name): no channels"))
        }
        if let w = layer.parameter(named: "weight") { frozen.weight.value = w.value }
        if let b = layer.parameter(named: "bias") { frozen.bias.value = b.value }
        frozen.runningMean.value = stats.mean.value
        frozen.runningVar.value = stats.variance.value
        return .success(frozen)
    }
}
