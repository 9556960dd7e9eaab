import NormCore

/// Batch-Channel Normalization (Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with
/// Batch-Channel Normalization and Weight Standardization", arXiv:1903.10520), following the
/// structure of the reference implementation (joe-siyuan-qiao/Batch-Channel-Normalization,
/// `BCNorm` / `imagenet/models/layers.py`).
///
/// Stage 1 is a PyTorch `nn.BatchNorm2d(C)`: per-channel batch statistics over (N, spatial)
/// in train mode, running statistics in eval mode, per-channel affine `weight`, `bias`
/// (``BatchNorm``'s conventions: `bn_eps = 1e-5`, momentum 0.1, unbiased `running_var`,
/// the same running-statistics options). Both stages compute in float64 (two-pass batch
/// moments), because stage 2 amplifies any rounding of the stage-1 output when the values of a
/// group are close.
/// Stage 2 normalizes each sample's `num_groups` groups of consecutive channels over
/// (C/num_groups channels, spatial) with the **biased** variance and `eps` (the repository's
/// `torch.batch_norm(..., training=True, eps)` on the `(1, N·G, −1)` view), in both modes and
/// without running statistics, then applies a **per-group** affine `group_weight`,
/// `group_bias` of shape `(num_groups,)` (the repository's `BCNorm.weight`/`bias` of shape
/// `(1, G, 1)`), initialized 1, 0. Defaults follow the repository: `num_groups = 32`,
/// both eps `1e-5`.
public final class BatchChannelNorm: NormalizationPlugin, RunningStatisticsProviding, BatchStatisticsReporting {
    public static let descriptor = NormDescriptor(
        name: "batch_channel_norm", aliases: ["bcn"],
        summary: "Batch-Channel Normalization: BatchNorm, then per-sample channel-group normalization with a per-group affine",
        reference: "Qiao et al. 2019, arXiv:1903.10520; joe-siyuan-qiao/Batch-Channel-Normalization BCNorm",
        options: [OptionSpec("num_groups", .integer(1...Int.max), default: .integer(32),
                             "channel groups of the second stage (repository default 32); must divide C",
                             samples: [.integer(1), .integer(2)]),
                  OptionSpec("eps", .real(0...Double.greatestFiniteMagnitude), default: .real(1e-5),
                             "added to the channel-group variance (the repository's BCNorm eps)", samples: [.real(1.0)]),
                  OptionSpec("bn_eps", .real(0...Double.greatestFiniteMagnitude), default: .real(1e-5),
                             "added to the BatchNorm stage's variance (nn.BatchNorm2d default)", samples: [.real(1.0)])]
            + CommonOptions.runningStatistics(track: true),
        ranks: 2...5,
        notes: ["stage 1 = batch_norm (PyTorch): per channel over (N, spatial), biased for normalizing, running_var unbiased; "
                    + "eval uses running statistics; affine weight, bias (C,)",
                "stage 2: per (n, group) over (C/num_groups channels, spatial), biased variance, eps; same in train and eval, no state",
                "stage 2 affine is per GROUP: group_weight, group_bias of shape (num_groups,), init 1, 0 (the repository's BCNorm.weight/bias)",
                "defaults as the repository: num_groups 32, eps 1e-5 (stage 2), bn_eps 1e-5, momentum 0.1"],
        constraints: [.dividesChannels(option: "num_groups")] + CommonOptions.runningStatisticsConstraints,
        reduction: .channelGroupsAndSpatial(groupsOption: "num_groups"))

    let channels: Int
    /// Channel groups of the second stage.
    public let groups: Int
    let eps: Double
    /// The BatchNorm stage's per-channel affine and running statistics (nil: not tracked).
    let batchAffine: ChannelAffine
    public let runningStatistics: RunningStatistics?
    /// The BN stage's batch moments of the last forward that used them.
    private var lastBatch: BatchMoments?
    /// Per-group scale and shift of the second stage.
    public let groupWeight: Parameter
    public let groupBias: Parameter
    let batchEps: Double
    private var cache: Cache?

    /// What backward needs: the input, the BN stage's per-channel statistics and float64
    /// output `u`, and stage 2's per-(n, group) mean and 1/σ.
    private struct Cache {
        let x: Tensor
        let bn: (mean: [Double], invStd: [Double], batch: Bool)
        let u: [Double]
        let mean: [Double], invStd: [Double]
    }

    public init(shape: FeatureShape, options: NormOptions) throws {
        let name = Self.descriptor.name
        channels = shape.channels
        groups = options.integer("num_groups")
        guard channels > 0, channels % groups == 0 else {
            throw NormError.invalidConfiguration(method: name, reason: "C=\(channels) channels are not divisible by num_groups=\(groups)")
        }
        eps = options.real("eps")
        batchEps = options.real("bn_eps")
        batchAffine = ChannelAffine(shape: [channels])
        runningStatistics = options.bool("track_running_stats") ? try RunningStatistics(channels: channels, options: options) : nil
        if runningStatistics == nil, options.isSet("momentum") || options.isSet("keras_decay") {
            throw NormError.invalidConfiguration(method: name,
                reason: "momentum/keras_decay set but track_running_stats=false keeps no running statistics")
        }
        groupWeight = Parameter(name: "group_weight", value: .ones([groups]))
        groupBias = Parameter(name: "group_bias", value: .zeros([groups]))
    }

    public var parameters: [Parameter] { batchAffine.parameters + [groupWeight, groupBias] }
    public var buffers: [Buffer] { runningStatistics?.buffers ?? [] }
    public var tracksRunningStatistics: Bool { runningStatistics != nil }
    public var evalStatistics: EvalStatistics? {
        runningStatistics.map { EvalStatistics(mean: $0.mean, variance: $0.variance, storesUnbiasedVariance: $0.estimator == .unbiased, eps: batchEps) }
    }
    public var lastBatchMoments: BatchMoments? { lastBatch }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let length = channels / groups * x.spatialCount, runs = x.shape[0] * groups
        guard length > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each channel group would be normalized over one value (input \(x.shape.shapeText), num_groups=\(groups))")
        }
        let bn = try batchStageStatistics(x, mode: mode)
        let u = batchStageOutput(x, bn)
        var mean = [Double](repeating: 0, count: runs), invStd = mean
        let gw = groupWeight.value.scalars, gb = groupBias.value.scalars
        let y = Tensor(shape: x.shape) { out in
            for r in 0..<runs {
                let range = (r * length)..<((r + 1) * length)
                var sum = 0.0
                for i in range { sum += u[i] }
                let m = sum / Double(length)
                var sq = 0.0
                for i in range { let d = u[i] - m; sq += d * d }
                let inv = 1 / (sq / Double(length) + eps).squareRoot()
                mean[r] = m; invStd[r] = inv
                let scale = inv * Double(gw[r % groups]), shift = Double(gb[r % groups])
                for i in range { out[i] = Float((u[i] - m) * scale + shift) }
            }
        }
        cache = Cache(x: x, bn: bn, u: u, mean: mean, invStd: invStd)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        _ = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let st = cache!, x = st.x, u = st.u, mean = st.mean, invStd = st.invStd
        let length = channels / groups * x.spatialCount, runs = x.shape[0] * groups
        let gw = groupWeight.value.scalars
        var gradW = [Double](repeating: 0, count: groups), gradB = gradW
        var gu = [Double](repeating: 0, count: u.count)
        gradOutput.withUnsafeBufferPointer { gy in
            for r in 0..<runs {
                let range = (r * length)..<((r + 1) * length), g = r % groups
                let m = mean[r], inv = invStd[r], wg = Double(gw[g])
                // dL/du = inv·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·w_g.
                var sumG = 0.0, sumGX = 0.0
                for i in range {
                    let xhat = (u[i] - m) * inv, gi = Double(gy[i])
                    sumG += gi; sumGX += gi * xhat
                }
                gradW[g] += sumGX
                gradB[g] += sumG
                let meanG = sumG * wg / Double(length), meanGX = sumGX * wg / Double(length)
                for i in range {
                    let xhat = (u[i] - m) * inv
                    gu[i] = inv * (Double(gy[i]) * wg - meanG - xhat * meanGX)
                }
            }
        }
        groupWeight.gradient = groupWeight.requiresGrad ? Tensor(shape: [groups], doubles: gradW) : nil
        groupBias.gradient = groupBias.requiresGrad ? Tensor(shape: [groups], doubles: gradB) : nil
        return batchStageBackward(gu, st)
    }

    /// The per-channel mean and 1/σ of the BN stage: the batch's (train, or no tracking; two
    /// float64 passes, since stage 2 amplifies their rounding when a group's values are close)
    /// or the running ones (eval).
    private func batchStageStatistics(_ x: Tensor, mode: Mode) throws -> (mean: [Double], invStd: [Double], batch: Bool) {
        let n = x.shape[0], c = channels, s = x.spatialCount
        let batch = mode == .train || runningStatistics == nil
        var mean = [Double](repeating: 0, count: c), variance = mean
        if batch {
            guard n * s > 1 else {
                throw NormError.singleValueReduction(method: Self.descriptor.name,
                    reason: "expected more than 1 value per channel when using batch statistics, got input of shape \(x.shape.shapeText)")
            }
            x.withUnsafeBufferPointer { xb in
                for p in 0..<(n * c) { for i in (p * s)..<((p + 1) * s) { mean[p % c] += Double(xb[i]) } }
                for ch in 0..<c { mean[ch] /= Double(n * s) }
                for p in 0..<(n * c) {
                    let m = mean[p % c]
                    for i in (p * s)..<((p + 1) * s) { let d = Double(xb[i]) - m; variance[p % c] += d * d }
                }
                for ch in 0..<c { variance[ch] /= Double(n * s) }
            }
            lastBatch = BatchMoments(mean: mean, variance: variance, count: n * s, perInstance: false)
            if mode == .train, let running = runningStatistics {
                running.update(batchMean: mean, biasedVariance: variance, count: n * s)
            }
        } else {
            let running = runningStatistics!
            (mean, variance) = (running.mean.value.scalars.map(Double.init), running.variance.value.scalars.map(Double.init))
        }
        return (mean, variance.map { 1 / ($0 + batchEps).squareRoot() }, batch)
    }

    /// The BN stage's output in float64, so stage 2 never sees float32 rounding of large values.
    private func batchStageOutput(_ x: Tensor, _ bn: (mean: [Double], invStd: [Double], batch: Bool)) -> [Double] {
        let c = channels, s = x.spatialCount
        let w = batchAffine.weight.value.scalars, b = batchAffine.bias.value.scalars
        var u = [Double](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in
            for p in 0..<(x.shape[0] * c) {
                let ch = p % c, m = bn.mean[ch], scale = Double(w[ch]) * bn.invStd[ch], shift = Double(b[ch])
                for i in (p * s)..<((p + 1) * s) { u[i] = (Double(xb[i]) - m) * scale + shift }
            }
        }
        return u
    }

    /// dL/dx of the BN stage from dL/du in float64 (BatchNorm's backward: through the batch
    /// statistics in train mode, the running statistics constant in eval), and its affine gradients.
    private func batchStageBackward(_ gu: [Double], _ st: Cache) -> Tensor {
        let x = st.x, n = x.shape[0], c = channels, s = x.spatialCount, count = Double(n * s)
        let affine = batchAffine, w = affine.weight.value.scalars
        var gradW = [Double](repeating: 0, count: c), gradB = gradW
        var gx = [Double](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in
            for p in 0..<(n * c) {
                let ch = p % c, m = st.bn.mean[ch], inv = st.bn.invStd[ch]
                for i in (p * s)..<((p + 1) * s) {
                    gradW[ch] += gu[i] * (Double(xb[i]) - m) * inv
                    gradB[ch] += gu[i]
                }
            }
            for p in 0..<(n * c) {
                let ch = p % c, m = st.bn.mean[ch], inv = st.bn.invStd[ch], wc = Double(w[ch])
                // Σ ĝ = w·Σ dL/du and Σ ĝ·x̂ = w·dL/dw over the channel (ĝ = dL/du·w).
                let meanG = st.bn.batch ? wc * gradB[ch] / count : 0, meanGX = st.bn.batch ? wc * gradW[ch] / count : 0
                for i in (p * s)..<((p + 1) * s) {
                    let xhat = (Double(xb[i]) - m) * inv
                    gx[i] = inv * (gu[i] * wc - meanG - xhat * meanGX)
                }
            }
        }
        affine.weight.gradient = affine.weight.requiresGrad ? Tensor(shape: [c], doubles: gradW) : nil
        affine.bias.gradient = affine.bias.requiresGrad ? Tensor(shape: [c], doubles: gradB) : nil
        return Tensor(shape: x.shape, doubles: gx)
    }
}
