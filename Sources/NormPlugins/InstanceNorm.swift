import NormCore

/// Instance Normalization (Ulyanov et al., 2016) with PyTorch's `nn.InstanceNorm{1,2,3}d`
/// semantics.
///
/// Each `(n, c)` plane is normalized with its own mean and biased variance over the
/// spatial axes (so at least one spatial axis is required). Defaults `affine=false`,
/// `track_running_stats=false`. With tracking, train mode updates the running statistics
/// with the batch-mean of the per-instance mean and **unbiased** variance (as PyTorch), and
/// eval mode normalizes every instance with them.
public final class InstanceNorm: NormalizationPlugin, RunningStatisticsProviding, BatchStatisticsReporting, AffineFolding {
    public static let descriptor = NormDescriptor(
        name: "instance_norm", aliases: ["in", "instancenorm"],
        summary: "Instance Normalization: per-sample, per-channel statistics over spatial axes",
        reference: "Ulyanov, Vedaldi & Lempitsky 2016, arXiv:1607.08022; PyTorch nn.InstanceNorm2d",
        options: [CommonOptions.eps(), CommonOptions.affine(default: false)] + CommonOptions.runningStatistics(track: false),
        ranks: 3...5,
        notes: ["per (n, c) over the spatial axes; needs rank >= 3 and more than one spatial value",
                "with track_running_stats: running stats get the batch-mean of per-instance mean / unbiased var; eval uses them"],
        constraints: CommonOptions.runningStatisticsConstraints,
        reduction: .spatial)

    let channels: Int
    let eps: Double
    let affine: ChannelAffine?
    let running: RunningStatistics?
    /// The running statistics, when tracked.
    public var runningStatistics: RunningStatistics? { running }
    private var state: PlaneForwardState?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()
    /// Per-instance (plane `n·C + c`) mean and biased variance over the spatial values of the
    /// last forward that used instance statistics, with the values per instance; `nil` before one.
    public private(set) var lastInstanceStatistics: (mean: [Double], variance: [Double], count: Int)?

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        eps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: [channels]) : nil
        running = options.bool("track_running_stats") ? try RunningStatistics(channels: channels, options: options) : nil
        if running == nil, options.isSet("momentum") || options.isSet("keras_decay") {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "momentum/keras_decay set but track_running_stats=false keeps no running statistics")
        }
    }

    public var parameters: [Parameter] { affine?.parameters ?? [] }
    public var buffers: [Buffer] { running?.buffers ?? [] }
    public var tracksRunningStatistics: Bool { running != nil }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        var layout = PlaneLayout(x, .byPlane)
        let useBatch = mode == .train || running == nil
        let y: Tensor, st: PlaneForwardState
        var planeMean: [Double] = [], instanceVar: [Double] = []
        if useBatch {
            guard layout.s > 1 else {
                throw NormError.singleValueReduction(method: Self.descriptor.name,
                    reason: "expected more than 1 spatial value per instance, got input of shape \(x.shape.shapeText)")
            }
            // Each plane is a contiguous run: statistics and output fused per plane.
            (y, st, instanceVar) = PlaneNormalizer.forwardWithBatchStatistics(x, layout: layout, eps: eps,
                                                                              weight: affine?.weight.value, bias: affine?.bias.value,
                                                                              output: &output)
            planeMean = st.groupMean
            lastInstanceStatistics = (planeMean, instanceVar, layout.s)
        } else {
            // Running statistics are per channel: normalize by channel.
            let running = running!
            layout = PlaneLayout(x, .byChannel)
            let mean = running.mean.value.scalars.map(Double.init)
            let invstd = running.variance.value.scalars.map { 1 / (Double($0) + eps).squareRoot() }
            (y, st) = PlaneNormalizer.forward(x, layout: layout, groupMean: mean, groupInvstd: invstd,
                                              weight: affine?.weight.value, bias: affine?.bias.value,
                                              batchStatistics: false, output: &output)
        }
        if mode == .train, let running {
            var meanC = [Double](repeating: 0, count: channels), varC = meanC
            for p in 0..<layout.planes { meanC[p % channels] += planeMean[p]; varC[p % channels] += instanceVar[p] }
            let n = Double(layout.n)
            running.update(batchMean: meanC.map { $0 / n }, biasedVariance: varC.map { $0 / n }, count: layout.s)
        }
        state = st
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        try PlaneNormalizer.backward(gradOutput, state: state, affine: affine, descriptor: Self.descriptor, output: &gradInput)
    }

    public var evalStatistics: EvalStatistics? {
        running.map { EvalStatistics(mean: $0.mean, variance: $0.variance, storesUnbiasedVariance: $0.estimator == .unbiased, eps: eps) }
    }
    public var lastBatchMoments: BatchMoments? {
        lastInstanceStatistics.map { BatchMoments(mean: $0.mean, variance: $0.variance, count: $0.count, perInstance: true) }
    }
    public func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal> { FrozenBatchNorm.folding(self) }
}
