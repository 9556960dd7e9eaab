import NormCore

/// Which statistics train mode normalizes with (BatchNorm's `train_statistics` option).
public enum TrainStatistics: String, CaseIterable, Sendable {
    /// The batch mean and biased variance, differentiated through (standard BatchNorm).
    case batch
    /// The running mean/var before this step's update, constants for the gradient
    /// (Ioffe 2017, section 2); batch statistics still update the running statistics.
    case running
}

/// The machinery BatchNorm and BatchRenorm share: per-channel batch statistics over
/// every axis but 1, PyTorch's running statistics, eval with running statistics, and
/// (for BRN) the r/d correction.
final class BatchStatisticsCore {
    let descriptor: NormDescriptor
    let channels: Int
    let eps: Double
    let affine: ChannelAffine?
    let running: RunningStatistics?
    /// What train mode normalizes with; `.running` requires tracking (checked at init).
    let trainStatistics: TrainStatistics
    private var state: PlaneForwardState?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    /// Fraction of channels whose r (resp. d) hit a clip in the last train step.
    private(set) var lastRClipFraction = 0.0
    private(set) var lastDClipFraction = 0.0
    /// Totals over all train steps: channel-steps observed and clipped.
    private(set) var clipObservations = 0
    private(set) var rClips = 0
    private(set) var dClips = 0
    /// Per-channel batch mean, biased variance and values per channel of the last forward
    /// that used batch statistics (read-only telemetry for PreciseBN and the trainer).
    private(set) var lastBatchStatistics: (mean: [Double], variance: [Double], count: Int)?

    init(_ descriptor: NormDescriptor, shape: FeatureShape, options: NormOptions,
         trainStatistics: TrainStatistics = .batch) throws {
        self.descriptor = descriptor
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        eps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: [channels]) : nil
        running = options.bool("track_running_stats") ? try RunningStatistics(channels: channels, options: options) : nil
        if running == nil, options.isSet("momentum") || options.isSet("keras_decay") {
            throw NormError.invalidConfiguration(method: descriptor.name,
                reason: "momentum/keras_decay set but track_running_stats=false keeps no running statistics")
        }
        if running == nil, trainStatistics == .running {
            throw NormError.invalidConfiguration(method: descriptor.name,
                reason: "train_statistics=running normalizes with the running statistics, which track_running_stats=false does not keep")
        }
        self.trainStatistics = trainStatistics
    }

    var parameters: [Parameter] { affine?.parameters ?? [] }
    var buffers: [Buffer] { running?.buffers ?? [] }

    /// The running statistics eval mode reads, when tracked.
    var evalStatistics: EvalStatistics? {
        running.map { EvalStatistics(mean: $0.mean, variance: $0.variance, storesUnbiasedVariance: $0.estimator == .unbiased, eps: eps) }
    }

    /// The per-channel moments of the last forward that used batch statistics.
    var lastBatchMoments: BatchMoments? {
        lastBatchStatistics.map { BatchMoments(mean: $0.mean, variance: $0.variance, count: $0.count, perInstance: false) }
    }

    func forward(_ x: Tensor, mode: Mode, renorm: RenormLimits?) throws -> Tensor {
        try InputValidation.check(x, descriptor, channels: channels)
        let layout = PlaneLayout(x, .byChannel)
        // Batch statistics are computed in train mode (for the running-stat update) and
        // whenever nothing is tracked; they are normalized with unless train_statistics=running.
        let useBatch = mode == .train || running == nil
        let normalizeWithBatch = useBatch && !(mode == .train && trainStatistics == .running)
        var channelMean = [Double](repeating: 0, count: channels), channelInvstd = channelMean
        var batchMean: [Double] = [], batchVar: [Double] = []
        var r: [Double]? = nil, d: [Double]? = nil
        if useBatch {
            guard layout.groupSize > 1 else {
                throw NormError.singleValueReduction(method: descriptor.name,
                    reason: "expected more than 1 value per channel when using batch statistics, got input of shape \(x.shape.shapeText)")
            }
            if normalizeWithBatch, PlaneNormalizer.fusesChannels(layout) {
                return forwardFused(x, layout: layout, mode: mode, renorm: renorm)
            }
            (batchMean, batchVar) = layout.batchMoments(x)
            lastBatchStatistics = (batchMean, batchVar, layout.groupSize)
        }
        channelMean.withUnsafeMutableBufferPointer { mean in channelInvstd.withUnsafeMutableBufferPointer { invstd in
            let mean = mean.baseAddress!, invstd = invstd.baseAddress!
            if normalizeWithBatch {
                mean.update(from: batchMean, count: channels)
                ChannelMath.inverseStandardDeviation(batchVar, eps: eps, count: channels, into: invstd)
            } else if let running {
                // Eval, or train with train_statistics=running: the running statistics as they
                // are before this step's update (read here; the update comes after the kernel).
                running.mean.value.withUnsafeBufferPointer { rm in
                    for c in 0..<channels { mean[c] = Double(rm[c]) }
                }
                running.variance.value.withUnsafeBufferPointer { rv in
                    ChannelMath.inverseStandardDeviation(rv.baseAddress!, eps: eps, count: channels, into: invstd)
                }
            }
        }}
        if normalizeWithBatch, let renorm, mode == .train, let running {
            (r, d) = correction(batchMean, batchVar, running, renorm)
        }
        let (y, st) = PlaneNormalizer.forward(x, layout: layout, groupMean: channelMean, groupInvstd: channelInvstd,
                                              weight: affine?.weight.value, bias: affine?.bias.value, r: r, d: d,
                                              batchStatistics: normalizeWithBatch, output: &output)
        if mode == .train, let running {
            running.update(batchMean: batchMean, biasedVariance: batchVar, count: layout.groupSize)
        }
        state = st
        return y
    }

    /// Train forward with batch statistics, fused per channel (``PlaneNormalizer/forwardByChannel(_:layout:eps:weight:bias:renorm:output:)``):
    /// the same values as the separate statistics and normalization passes.
    private func forwardFused(_ x: Tensor, layout: PlaneLayout, mode: Mode, renorm: RenormLimits?) -> Tensor {
        let inputs = mode == .train ? running.flatMap { running in renorm.map { RenormInputs(running: running, limits: $0) } } : nil
        let (y, batchMean, batchVar, invstd) = PlaneNormalizer.forwardByChannel(x, layout: layout, eps: eps, weight: affine?.weight.value,
                                                                               bias: affine?.bias.value, renorm: inputs, output: &output)
        lastBatchStatistics = (batchMean, batchVar, layout.groupSize)
        var r: [Double]? = nil, d: [Double]? = nil
        if let inputs { (r, d) = correction(batchMean, batchVar, inputs.running, inputs.limits) }
        if mode == .train, let running {
            running.update(batchMean: batchMean, biasedVariance: batchVar, count: layout.groupSize)
        }
        state = PlaneForwardState(x: x, layout: layout, groupMean: batchMean, groupInvstd: invstd, batchStatistics: true, r: r, d: d)
        return y
    }

    /// Ioffe (2017), Algorithm 1: r and d from the running statistics before this step's update
    /// (`r = clip(σ_B/σ, 1/r_max, r_max)`, `d = clip((μ_B − μ)/σ, −d_max, d_max)`, with
    /// `σ = √(running var + eps)`), four channels per step (``ChannelMath``).
    private func correction(_ mean: [Double], _ variance: [Double], _ running: RunningStatistics,
                            _ limits: RenormLimits) -> ([Double], [Double]) {
        var r = [Double](repeating: 1, count: channels), d = [Double](repeating: 0, count: channels)
        var rClipped = 0, dClipped = 0
        let eps = eps, channels = channels
        let rLow = SIMD4<Double>(repeating: 1 / limits.rMax), rHigh = SIMD4<Double>(repeating: limits.rMax)
        let dLow = SIMD4<Double>(repeating: -limits.dMax), dHigh = SIMD4<Double>(repeating: limits.dMax)
        running.mean.value.withUnsafeBufferPointer { rm in running.variance.value.withUnsafeBufferPointer { rv in
            r.withUnsafeMutableBufferPointer { r in d.withUnsafeMutableBufferPointer { d in
                ChannelMath.forEachStep(channels) { i, lanes in
                    let sigma = (ChannelMath.load(rv.baseAddress!, i, lanes) + eps).squareRoot()
                    let rawR = (ChannelMath.load(variance, i, lanes) + eps).squareRoot() / sigma
                    let rawD = (ChannelMath.load(mean, i, lanes) - ChannelMath.load(rm.baseAddress!, i, lanes)) / sigma
                    // min(max(v, low), high) exactly as the scalar functions: max(v, low) is
                    // `low >= v ? low : v`, min(m, high) is `high < m ? high : m`.
                    var clippedR = rawR.replacing(with: rLow, where: rLow .>= rawR)
                    clippedR = clippedR.replacing(with: rHigh, where: rHigh .< clippedR)
                    var clippedD = rawD.replacing(with: dLow, where: dLow .>= rawD)
                    clippedD = clippedD.replacing(with: dHigh, where: dHigh .< clippedD)
                    ChannelMath.store(clippedR, r.baseAddress!, i, lanes)
                    ChannelMath.store(clippedD, d.baseAddress!, i, lanes)
                    for l in 0..<lanes {
                        if clippedR[l] != rawR[l] { rClipped += 1 }
                        if clippedD[l] != rawD[l] { dClipped += 1 }
                    }
                }
            }}
        }}
        lastRClipFraction = Double(rClipped) / Double(channels)
        lastDClipFraction = Double(dClipped) / Double(channels)
        clipObservations += channels; rClips += rClipped; dClips += dClipped
        return (r, d)
    }

    func backward(_ g: Tensor) throws -> Tensor {
        try PlaneNormalizer.backward(g, state: state, affine: affine, descriptor: descriptor, output: &gradInput)
    }
}
