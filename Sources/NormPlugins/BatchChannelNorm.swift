import NormCore

/// Batch-Channel Normalization (Qiao, Wang, Liu, Shen & Yuille, "Micro-Batch Training with
/// Batch-Channel Normalization and Weight Standardization", arXiv:1903.10520), following the
/// structure of the reference implementation (joe-siyuan-qiao/Batch-Channel-Normalization,
/// `BCNorm` / `imagenet/models/layers.py`).
///
/// Stage 1 is a PyTorch `nn.BatchNorm2d(C)`: per-channel batch statistics over (N, spatial)
/// in train mode, running statistics in eval mode, per-channel affine `weight`, `bias`
/// (``BatchNorm``'s conventions: `bn_eps = 1e-5`, momentum 0.1, unbiased `running_var`,
/// the same running-statistics options). Both stages are per-plane affine maps of `x`, so the
/// layer never materializes the stage-1 output: every statistic of either stage follows in
/// float64 from the per-plane mean and variance of `x` (without cancellation), and one float32
/// pass applies the combined map — stage 2 would otherwise amplify the rounding of a float32
/// stage-1 output when the values of a group are close.
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
    /// Output blocks reused across calls once the caller dropped the previous result.
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    /// What backward needs. Both stages are per-plane affine maps of `x` whose coefficients
    /// come from float64 plane moments: stage 1 `u = a_c·(x − m_c) + b_c`, stage 2
    /// `û = (u − M_g)·inv_g = α_p·(x − μ_p) + β_p`.
    private struct Cache {
        let x: Tensor
        /// Stage 1 used batch statistics (gradients flow through them).
        let batch: Bool
        /// Per channel: stage-1 mean and 1/σ.
        let channelMean: [Double], channelInvStd: [Double]
        /// Per plane `(n, c)`: mean and biased variance of x, and stage 2's α, β.
        let planeMean: [Double], planeVariance: [Double], alpha: [Double], beta: [Double]
        /// Per run `(n, g)`: stage 2's 1/σ.
        let runInvStd: [Double]
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
        let n = x.shape[0], c = channels, s = x.spatialCount, planes = n * c, perGroup = c / groups
        guard perGroup * s > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each channel group would be normalized over one value (input \(x.shape.shapeText), num_groups=\(groups))")
        }
        let batch = mode == .train || runningStatistics == nil
        if batch, n * s < 2 {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "expected more than 1 value per channel when using batch statistics, got input of shape \(x.shape.shapeText)")
        }
        // One value per plane ((N, C) inputs): the plane mean is the value, its variance 0.
        let (pm, pv) = s == 1 ? (x.scalars.map(Double.init), [Double](repeating: 0, count: planes))
            : RunKernels.planeMoments(x, planes: planes, length: s)
        let (m1, inv1) = batchStageStatistics(pm, pv, n: n, s: s, mode: mode, batch: batch)
        let w = batchAffine.weight.value.scalars, b = batchAffine.bias.value.scalars
        let gw = groupWeight.value.scalars, gb = groupBias.value.scalars
        // Stage 2 from the plane moments: u's plane mean is a_c(μ_p − m_c) + b_c and its plane
        // variance a_c²·σ²_p; a group's variance is the mean of (plane variance + squared offset
        // of the plane mean), a sum of non-negative terms (no cancellation, no rounding of u).
        var alpha = [Double](repeating: 0, count: planes), beta = alpha, scale = alpha, shift = alpha, heads = [Float](repeating: 0, count: planes)
        var runInvStd = [Double](repeating: 0, count: n * groups)
        for r in 0..<(n * groups) {
            let first = (r / groups) * c + (r % groups) * perGroup
            var mean = 0.0
            for p in first..<(first + perGroup) { let ch = p % c; mean += Double(w[ch]) * inv1[ch] * (pm[p] - m1[ch]) + Double(b[ch]) }
            mean /= Double(perGroup)
            var variance = 0.0
            for p in first..<(first + perGroup) {
                let ch = p % c, a = Double(w[ch]) * inv1[ch], d = a * (pm[p] - m1[ch]) + Double(b[ch]) - mean
                variance += a * a * pv[p] + d * d
            }
            let inv = 1 / (variance / Double(perGroup) + eps).squareRoot()
            runInvStd[r] = inv
            let gwr = Double(gw[r % groups]), gbr = Double(gb[r % groups])
            for p in first..<(first + perGroup) {
                let ch = p % c, a = Double(w[ch]) * inv1[ch]
                alpha[p] = a * inv
                beta[p] = (a * (pm[p] - m1[ch]) + Double(b[ch]) - mean) * inv
                // y = (x − μ_p)·α·gw + β·gw + gb, with μ_p as a float32 head and a float64 tail.
                heads[p] = Float(pm[p])
                scale[p] = alpha[p] * gwr
                shift[p] = beta[p] * gwr + gbr - (pm[p] - Double(heads[p])) * scale[p]
            }
        }
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in
                let xp = xb.baseAddress!, op = out.baseAddress!
                let heads = heads, scale = scale, shift = shift
                if s == 1 {
                    for p in 0..<planes { op[p] = Float(shift[p]) }      // x − head = 0 exactly
                    return
                }
                Parallel.forEach(planes, work: planes * s) { range in
                    for p in range {
                        RunKernels.affine(xp + p * s, op + p * s, length: s, head: heads[p], scale: Float(scale[p]), shift: Float(shift[p]))
                    }
                }
            }
        }
        cache = Cache(x: x, batch: batch, channelMean: m1, channelInvStd: inv1, planeMean: pm, planeVariance: pv,
                      alpha: alpha, beta: beta, runInvStd: runInvStd)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        _ = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let st = cache!, x = st.x
        let n = x.shape[0], c = channels, s = x.spatialCount, planes = n * c, perGroup = c / groups
        let pm = st.planeMean, heads = pm.map { Float($0) }
        // Per plane: S0 = Σ g, S1 = Σ g·(x − μ_p).
        var sums = [(Double, Double)](repeating: (0, 0), count: planes)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in sums.withUnsafeMutableBufferPointer { sb in
            let xp = xb.baseAddress!, gp = gyb.baseAddress!, sp = sb.baseAddress!
            if s == 1 {
                for p in 0..<planes { sp[p] = (Double(gp[p]), 0) }
                return
            }
            Parallel.forEach(planes, work: 2 * planes * s) { range in
                for p in range {
                    let (s0, s1h) = RunKernels.gradientSums(xp + p * s, gp + p * s, length: s, head: heads[p])
                    sp[p] = (s0, s1h - (pm[p] - Double(heads[p])) * s0)
                }
            }
        }}}
        let w = batchAffine.weight.value.scalars, gw = groupWeight.value.scalars
        var gradGW = [Double](repeating: 0, count: groups), gradGB = gradGW
        // dL/du = gS·g + xS·(x − μ_p) + c0 per plane (stage 2's backward through its statistics).
        var gS = [Double](repeating: 0, count: planes), xS = gS, c0 = gS
        let length = Double(perGroup * s)
        for r in 0..<(n * groups) {
            let first = (r / groups) * c + (r % groups) * perGroup, g = r % groups, gwr = Double(gw[g]), inv = st.runInvStd[r]
            var sumG = 0.0, sumGU = 0.0
            for p in first..<(first + perGroup) {
                let (s0, s1) = sums[p]
                sumG += s0; sumGU += st.alpha[p] * s1 + st.beta[p] * s0
            }
            gradGW[g] += sumGU; gradGB[g] += sumG
            let meanG = gwr * sumG / length, meanGU = gwr * sumGU / length
            for p in first..<(first + perGroup) {
                gS[p] = inv * gwr
                xS[p] = -inv * meanGU * st.alpha[p]
                c0[p] = -inv * (meanG + meanGU * st.beta[p])
            }
        }
        // Stage 1: per channel Σ dL/du and Σ dL/du·(x − m_c), from the plane sums.
        var sumU = [Double](repeating: 0, count: c), sumUX = sumU
        for p in 0..<planes {
            let ch = p % c, (s0, s1) = sums[p], e = pm[p] - st.channelMean[ch]
            let total = gS[p] * s0 + c0[p] * Double(s)
            sumU[ch] += total
            sumUX[ch] += gS[p] * s1 + xS[p] * Double(s) * st.planeVariance[p] + e * total
        }
        let gradW = (0..<c).map { sumUX[$0] * st.channelInvStd[$0] }, gradB = sumU
        let count = Double(n * s)
        var k1 = [Double](repeating: 0, count: planes), k2 = k1, k3 = k1
        for p in 0..<planes {
            let ch = p % c, inv = st.channelInvStd[ch], wc = Double(w[ch]), e = pm[p] - st.channelMean[ch]
            let meanG = st.batch ? wc * gradB[ch] / count : 0, meanGX = st.batch ? wc * gradW[ch] / count : 0
            // dL/dx = inv·(w·du − meanG − x̂·meanGX), x̂ = (x − m_c)·inv = ((x − μ_p) + e)·inv.
            let a2 = inv * wc * xS[p] - inv * inv * meanGX
            let a3 = inv * wc * c0[p] - inv * meanG - inv * inv * meanGX * e
            k1[p] = inv * wc * gS[p]; k2[p] = a2; k3[p] = a3
        }
        let gx = gradInput.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in
                let xp = xb.baseAddress!, gp = gyb.baseAddress!, op = out.baseAddress!
                let k1 = k1, k2 = k2, k3 = k3
                Parallel.forEach(planes, work: 2 * planes * s) { range in
                    for p in range {
                        if s < 8 {
                            // Short planes (e.g. (N, C) inputs): the terms can cancel strongly when both
                            // stages normalize a handful of values; combine them in float64.
                            for i in (p * s)..<((p + 1) * s) {
                                op[i] = Float(k1[p] * Double(gp[i]) + k2[p] * (Double(xp[i]) - pm[p]) + k3[p])
                            }
                        } else {
                            RunKernels.gradient(xp + p * s, gp + p * s, op + p * s, length: s, gScale: Float(k1[p]), head: heads[p],
                                                xScale: Float(k2[p]), shift: Float(k3[p] - k2[p] * (pm[p] - Double(heads[p]))))
                        }
                    }
                }
            }}
        }
        let affine = batchAffine
        affine.weight.gradient = affine.weight.requiresGrad ? Tensor(shape: [c], doubles: gradW) : nil
        affine.bias.gradient = affine.bias.requiresGrad ? Tensor(shape: [c], doubles: gradB) : nil
        groupWeight.gradient = groupWeight.requiresGrad ? Tensor(shape: [groups], doubles: gradGW) : nil
        groupBias.gradient = groupBias.requiresGrad ? Tensor(shape: [groups], doubles: gradGB) : nil
        return gx
    }

    /// Stage 1's per-channel mean and 1/σ: from the plane moments (mean of means, mean of
    /// plane variance + squared offset) when it uses batch statistics (then also recorded and
    /// folded into the running statistics in train mode), else the running statistics.
    private func batchStageStatistics(_ pm: [Double], _ pv: [Double], n: Int, s: Int, mode: Mode, batch: Bool) -> ([Double], [Double]) {
        let c = channels
        var mean = [Double](repeating: 0, count: c), variance = mean
        if batch {
            for p in 0..<(n * c) { mean[p % c] += pm[p] }
            for ch in 0..<c { mean[ch] /= Double(n) }
            for p in 0..<(n * c) { let d = pm[p] - mean[p % c]; variance[p % c] += pv[p] + d * d }
            for ch in 0..<c { variance[ch] /= Double(n) }
            lastBatch = BatchMoments(mean: mean, variance: variance, count: n * s, perInstance: false)
            if mode == .train, let running = runningStatistics {
                running.update(batchMean: mean, biasedVariance: variance, count: n * s)
            }
        } else {
            let running = runningStatistics!
            (mean, variance) = (running.mean.value.scalars.map(Double.init), running.variance.value.scalars.map(Double.init))
        }
        return (mean, variance.map { 1 / ($0 + batchEps).squareRoot() })
    }
}
