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
        /// Per run `(n, g)`: stage 2's 1/σ (and, for `(N, C)` inputs, stage 2's mean; empty otherwise).
        let runInvStd: [Double]
        var runMean: [Double] = []
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
        if s == 1 { return forwardColumns(x, mode: mode, batch: batch) }
        let (pm, pv) = RunKernels.planeMoments(x, planes: planes, length: s)
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
        if s == 1 { return backwardColumns(gradOutput, st) }
        let pm = st.planeMean, heads = pm.map { Float($0) }
        // Per plane: S0 = Σ g, S1 = Σ g·(x − μ_p).
        var sums = [(Double, Double)](repeating: (0, 0), count: planes)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in sums.withUnsafeMutableBufferPointer { sb in
            let xp = xb.baseAddress!, gp = gyb.baseAddress!, sp = sb.baseAddress!
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
                            // Short planes: the terms can cancel strongly when both stages normalize
                            // a handful of values; combine them in float64.
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
    /// plane variance + squared offset) when it uses batch statistics, else the running statistics.
    private func batchStageStatistics(_ pm: [Double], _ pv: [Double], n: Int, s: Int, mode: Mode, batch: Bool) -> ([Double], [Double]) {
        let c = channels
        var mean = [Double](repeating: 0, count: c), variance = mean
        if batch {
            for p in 0..<(n * c) { mean[p % c] += pm[p] }
            for ch in 0..<c { mean[ch] /= Double(n) }
            for p in 0..<(n * c) { let d = pm[p] - mean[p % c]; variance[p % c] += pv[p] + d * d }
            for ch in 0..<c { variance[ch] /= Double(n) }
        }
        return stageOne(mean: mean, variance: variance, count: n * s, mode: mode, batch: batch)
    }

    /// Stage 1's per-channel mean and 1/σ from the batch moments (then also recorded and folded
    /// into the running statistics in train mode) or, when it does not use batch statistics,
    /// the running statistics.
    private func stageOne(mean batchMean: [Double], variance batchVariance: [Double], count: Int, mode: Mode, batch: Bool)
        -> ([Double], [Double]) {
        var (mean, variance) = (batchMean, batchVariance)
        if batch {
            lastBatch = BatchMoments(mean: mean, variance: variance, count: count, perInstance: false)
            if mode == .train, let running = runningStatistics {
                running.update(batchMean: mean, biasedVariance: variance, count: count)
            }
        } else {
            let running = runningStatistics!
            (mean, variance) = (running.mean.value.scalars.map(Double.init), running.variance.value.scalars.map(Double.init))
        }
        return (mean, variance.map { 1 / ($0 + batchEps).squareRoot() })
    }
}

/// `(N, C)` inputs: every plane is one value, so the per-plane passes above would run over
/// planes of one element. Here stage 1's statistics are column reductions
/// (``ChannelKernels``), and each sample's groups are normalized along the row: the stage-1
/// values `u = a_c·(x − m_c) + b_c` (`a_c = w_c/σ_c`) and stage 2's group mean and variance
/// are float64 (four lanes), so stage 2 sees `u` unrounded, as the per-plane path does.
extension BatchChannelNorm {
    /// Stage 1's per-channel `a_c = w_c·inv_c`, `m_c`, `b_c` in float64.
    private func stageOneCoefficients(_ m1: [Double], _ inv1: [Double]) -> (a: [Double], b: [Double]) {
        let w = batchAffine.weight.value.scalars, b = batchAffine.bias.value.scalars
        return ((0..<channels).map { Double(w[$0]) * inv1[$0] }, b.map(Double.init))
    }

    private func forwardColumns(_ x: Tensor, mode: Mode, batch: Bool) -> Tensor {
        let n = x.shape[0], c = channels, perGroup = c / groups, runs = n * groups
        var mean = [Double](repeating: 0, count: c), variance = mean
        if batch {
            // Exact float64 column moments: with small groups stage 2 amplifies any error of u
            // (two channels per group: y = ±d/√(d² + 4 eps) for their difference d).
            x.withUnsafeBufferPointer { xb in mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
                BatchChannelColumns.columnMoments(x: xb.baseAddress!, rows: n, cols: c, mean: mb.baseAddress!, variance: vb.baseAddress!)
            }}}
        }
        let (m1, inv1) = stageOne(mean: mean, variance: variance, count: n, mode: mode, batch: batch)
        let (a, b) = stageOneCoefficients(m1, inv1)
        let gw = groupWeight.value.scalars.map(Double.init), gb = groupBias.value.scalars.map(Double.init)
        var runMean = [Double](repeating: 0, count: runs), runInv = runMean
        let eps = eps, groups = groups
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in a.withUnsafeBufferPointer { ab in m1.withUnsafeBufferPointer { mb in b.withUnsafeBufferPointer { bb in
            runMean.withUnsafeMutableBufferPointer { rmb in runInv.withUnsafeMutableBufferPointer { rib in
                let xp = xb.baseAddress!, op = out.baseAddress!, ap = ab.baseAddress!, mp = mb.baseAddress!, bp = bb.baseAddress!
                let rmp = rmb.baseAddress!, rip = rib.baseAddress!
                gw.withUnsafeBufferPointer { gwb in gb.withUnsafeBufferPointer { gbb in
                    Parallel.forEach(n, work: 4 * n * c) { range in
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: c) { u in
                            for row in range {
                                BatchChannelColumns.normalizeRow(xp + row * c, op + row * c, u.baseAddress!, groups: groups, count: perGroup,
                                                                 a: ap, m: mp, b: bp, eps: eps, scale: gwb.baseAddress!, shift: gbb.baseAddress!,
                                                                 mean: rmp + row * groups, inv: rip + row * groups)
                            }
                        }
                    }
                }}
            }}}}}}
        }
        cache = Cache(x: x, batch: batch, channelMean: m1, channelInvStd: inv1, planeMean: [], planeVariance: [],
                      alpha: [], beta: [], runInvStd: runInv, runMean: runMean)
        return y
    }

    /// Stage 2's backward per (sample, group) along the rows writes `dL/du` (float64 scratch);
    /// stage 1's column sums `Σ dL/du`, `Σ dL/du·(x − m_c)` are taken over it, and one pass
    /// gives `dL/dx = a_c·dL/du + k_c·(x − m_c) + c_c`, all in float64: with few samples the
    /// terms cancel strongly (both stages normalize a handful of values).
    private func backwardColumns(_ gradOutput: Tensor, _ st: Cache) -> Tensor {
        let x = st.x, n = x.shape[0], c = channels, perGroup = c / groups, runs = n * groups
        let (a, b) = stageOneCoefficients(st.channelMean, st.channelInvStd)
        let gw = groupWeight.value.scalars.map(Double.init)
        var runSumG = [Double](repeating: 0, count: runs), runSumGU = runSumG
        var sumU = [Double](repeating: 0, count: c), sumUX = sumU
        let groups = groups, m1 = st.channelMean, inv1 = st.channelInvStd
        let w = batchAffine.weight.value.scalars
        let gx = gradInput.tensor(shape: x.shape) { out in
            ScratchBuffers.withBuffer(of: Double.self, count: n * c) { du in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in
            a.withUnsafeBufferPointer { ab in m1.withUnsafeBufferPointer { mb in b.withUnsafeBufferPointer { bb in
            runSumG.withUnsafeMutableBufferPointer { sgb in runSumGU.withUnsafeMutableBufferPointer { sub in
            sumU.withUnsafeMutableBufferPointer { sub1 in sumUX.withUnsafeMutableBufferPointer { sub2 in
                let xp = xb.baseAddress!, gp = gyb.baseAddress!, op = out.baseAddress!
                let ap = ab.baseAddress!, mp = mb.baseAddress!, bp = bb.baseAddress!, sgp = sgb.baseAddress!, sup = sub.baseAddress!
                st.runMean.withUnsafeBufferPointer { rmb in st.runInvStd.withUnsafeBufferPointer { rib in gw.withUnsafeBufferPointer { gwb in
                    let rmp = rmb.baseAddress!, rip = rib.baseAddress!
                    Parallel.forEach(n, work: 4 * n * c) { range in
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: c) { u in
                            for row in range {
                                let off = row * c, r = row * groups
                                BatchChannelColumns.rowGradient(xp + off, gp + off, du + off, u.baseAddress!, groups: groups, count: perGroup,
                                                                a: ap, m: mp, b: bp, mean: rmp + r, inv: rip + r, scale: gwb.baseAddress!,
                                                                sumG: sgp + r, sumGU: sup + r)
                            }
                        }
                    }
                }}}
                BatchChannelColumns.columnSums(x: xp, du: du, rows: n, cols: c, m: mp, sum: sub1.baseAddress!, sumX: sub2.baseAddress!)
                var ka = [Double](repeating: 0, count: c), kb = ka, kc = ka
                let count = Double(n)
                for ch in 0..<c {
                    let inv = inv1[ch], wc = Double(w[ch])
                    let meanG = st.batch ? wc * sub1[ch] / count : 0, meanGX = st.batch ? wc * sub2[ch] * inv / count : 0
                    ka[ch] = inv * wc
                    kb[ch] = -inv * inv * meanGX
                    kc[ch] = -inv * meanG
                }
                ka.withUnsafeBufferPointer { kab in kb.withUnsafeBufferPointer { kbb in kc.withUnsafeBufferPointer { kcb in
                    BatchChannelColumns.combine(x: xp, du: du, gx: op, rows: n, cols: c, m: mp,
                                                a: kab.baseAddress!, k: kbb.baseAddress!, shift: kcb.baseAddress!)
                }}}
            }}}}}}}}}}
        }
        var gradGW = [Double](repeating: 0, count: groups), gradGB = gradGW
        for r in 0..<runs { gradGW[r % groups] += runSumGU[r]; gradGB[r % groups] += runSumG[r] }
        let gradW = (0..<c).map { sumUX[$0] * inv1[$0] }
        let affine = batchAffine
        affine.weight.gradient = affine.weight.requiresGrad ? Tensor(shape: [c], doubles: gradW) : nil
        affine.bias.gradient = affine.bias.requiresGrad ? Tensor(shape: [c], doubles: sumU) : nil
        groupWeight.gradient = groupWeight.requiresGrad ? Tensor(shape: [groups], doubles: gradGW) : nil
        groupBias.gradient = groupBias.requiresGrad ? Tensor(shape: [groups], doubles: gradGB) : nil

        return gx
    }
}

/// Batch-Channel Norm's float64 row kernels for `(N, C)` inputs, four lanes at a time.
private enum BatchChannelColumns {
    typealias D = SIMD4<Double>

    @inline(__always) static func load(_ p: UnsafePointer<Double>) -> D { UnsafeRawPointer(p).loadUnaligned(as: D.self) }
    @inline(__always) static func widen(_ p: UnsafePointer<Float>) -> D { D(UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)) }
    @inline(__always) static func store(_ v: D, _ p: UnsafeMutablePointer<Double>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: D.self) }
    @inline(__always) static func sum(_ v: D) -> Double { (v[0] + v[2]) + (v[1] + v[3]) }

    /// One sample's `groups` groups of `count` channels (`x`, `y`, `u` and the per-channel `a`,
    /// `m`, `b` of the whole row): per group `u = a·(x − m) + b` into `u`, its mean `M` into
    /// `mean[g]` and `inv = 1/√(biased variance + eps)` into `inv[g]`, and
    /// `y = (u − M)·inv·scale[g] + shift[g]`. Each step is taken for every group of the row before
    /// the next one: the groups' sums, divisions and square roots are independent chains the
    /// CPU overlaps (group by group, each group waited for its own divisions).
    static func normalizeRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Double>,
                             groups: Int, count: Int, a: UnsafePointer<Double>, m: UnsafePointer<Double>, b: UnsafePointer<Double>,
                             eps: Double, scale: UnsafePointer<Double>, shift: UnsafePointer<Double>,
                             mean: UnsafeMutablePointer<Double>, inv: UnsafeMutablePointer<Double>) {
        // Division by the group size, a multiplication when it is a power of two (the same values).
        let size = Reductions.Divisor(Double(count))
        for g in 0..<groups {
            let o = g * count
            var acc = D(), tail = 0.0, i = o
            while i + 4 <= o + count {
                let v = load(a + i) * (widen(x + i) - load(m + i)) + load(b + i)
                UnsafeMutableRawPointer(u + i).storeBytes(of: v, as: D.self)
                acc += v
                i += 4
            }
            while i < o + count { u[i] = a[i] * (Double(x[i]) - m[i]) + b[i]; tail += u[i]; i += 1 }
            mean[g] = size.divide(sum(acc) + tail)
        }
        for g in 0..<groups {
            let o = g * count, mu = mean[g]
            var q = D(), qt = 0.0, i = o
            while i + 4 <= o + count { let d = load(u + i) - mu; q += d * d; i += 4 }
            while i < o + count { let d = u[i] - mu; qt += d * d; i += 1 }
            inv[g] = 1 / (size.divide(sum(q) + qt) + eps).squareRoot()
        }
        for g in 0..<groups {
            let o = g * count, mu = mean[g], k = inv[g] * scale[g], t = shift[g]
            var i = o
            while i + 4 <= o + count {
                UnsafeMutableRawPointer(y + i).storeBytes(of: SIMD4<Float>((load(u + i) - mu) * k + t), as: SIMD4<Float>.self)
                i += 4
            }
            while i < o + count { y[i] = Float((u[i] - mu) * k + t); i += 1 }
        }
    }

    /// Stage 2's backward for one sample's `groups` groups of `count` channels (row pointers as
    /// in ``normalizeRow``): with `û = (u − M)·inv` per group, `(Σ g, Σ g·û)` into `sumG[g]`,
    /// `sumGU[g]` and `dL/du = inv·scale·(g − Σg/count − û·Σg·û/count)`; every group's sums are
    /// taken before any group's `dL/du` (independent chains, as in ``normalizeRow``).
    static func rowGradient(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ du: UnsafeMutablePointer<Double>,
                            _ u: UnsafeMutablePointer<Double>, groups: Int, count: Int,
                            a: UnsafePointer<Double>, m: UnsafePointer<Double>, b: UnsafePointer<Double>,
                            mean: UnsafePointer<Double>, inv: UnsafePointer<Double>, scale: UnsafePointer<Double>,
                            sumG: UnsafeMutablePointer<Double>, sumGU: UnsafeMutablePointer<Double>) {
        let size = Reductions.Divisor(Double(count))
        for j in 0..<groups {
            let o = j * count, mu = mean[j], iv = inv[j]
            var sg = D(), sgu = D(), tg = 0.0, tgu = 0.0, i = o
            while i + 4 <= o + count {
                let uh = (load(a + i) * (widen(x + i) - load(m + i)) + load(b + i) - mu) * iv
                UnsafeMutableRawPointer(u + i).storeBytes(of: uh, as: D.self)
                let gv = widen(g + i)
                sg += gv; sgu += gv * uh
                i += 4
            }
            while i < o + count {
                u[i] = (a[i] * (Double(x[i]) - m[i]) + b[i] - mu) * iv
                tg += Double(g[i]); tgu += Double(g[i]) * u[i]
                i += 1
            }
            sumG[j] = sum(sg) + tg; sumGU[j] = sum(sgu) + tgu
        }
        for j in 0..<groups {
            let o = j * count
            let k = inv[j] * scale[j], mg = size.divide(sumG[j]), mgu = size.divide(sumGU[j])
            var i = o
            while i + 4 <= o + count {
                let v = (widen(g + i) - mg - load(u + i) * mgu) * k
                UnsafeMutableRawPointer(du + i).storeBytes(of: v, as: D.self)
                i += 4
            }
            while i < o + count { du[i] = (Double(g[i]) - mg - u[i] * mgu) * k; i += 1 }
        }
    }

    /// Columns a block of the column passes holds in registers (four 4-lane sums of each kind).
    static let registerColumns = 16

    /// Per column mean and biased variance over the rows in float64 (sum, then the squared
    /// deviations from the mean), column blocks of 64 split across threads; whole blocks of
    /// ``registerColumns`` keep their sums in registers (the same additions, in the same order).
    static func columnMoments(x: UnsafePointer<Float>, rows: Int, cols: Int,
                              mean: UnsafeMutablePointer<Double>, variance: UnsafeMutablePointer<Double>) {
        let block = 64, blocks = (cols + block - 1) / block
        Parallel.forEach(blocks, work: 2 * rows * cols) { range in
            for k in range {
                var c0 = k * block
                let c1 = min(c0 + block, cols)
                while c0 + registerColumns <= c1 {
                    registerMoments(x + c0, rows: rows, cols: cols, mean: mean + c0, variance: variance + c0)
                    c0 += registerColumns
                }
                for c in c0..<c1 { mean[c] = 0; variance[c] = 0 }
                for r in 0..<rows {
                    let xr = x + r * cols
                    var c = c0
                    while c + 4 <= c1 {
                        UnsafeMutableRawPointer(mean + c).storeBytes(of: load(UnsafePointer(mean + c)) + widen(xr + c), as: D.self)
                        c += 4
                    }
                    while c < c1 { mean[c] += Double(xr[c]); c += 1 }
                }
                for c in c0..<c1 { mean[c] /= Double(rows) }
                for r in 0..<rows {
                    let xr = x + r * cols
                    var c = c0
                    while c + 4 <= c1 {
                        let d = widen(xr + c) - load(UnsafePointer(mean + c))
                        UnsafeMutableRawPointer(variance + c).storeBytes(of: load(UnsafePointer(variance + c)) + d * d, as: D.self)
                        c += 4
                    }
                    while c < c1 { let d = Double(xr[c]) - mean[c]; variance[c] += d * d; c += 1 }
                }
                for c in c0..<c1 { variance[c] /= Double(rows) }
            }
        }
    }

    /// ``columnMoments(x:rows:cols:mean:variance:)`` of ``registerColumns`` columns starting at `x`.
    @inline(__always)
    static func registerMoments(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                mean: UnsafeMutablePointer<Double>, variance: UnsafeMutablePointer<Double>) {
        var s0 = D(), s1 = D(), s2 = D(), s3 = D()
        for r in 0..<rows {
            let xr = x + r * cols
            s0 += widen(xr); s1 += widen(xr + 4); s2 += widen(xr + 8); s3 += widen(xr + 12)
        }
        let count = D(repeating: Double(rows))
        let m0 = s0 / count, m1 = s1 / count, m2 = s2 / count, m3 = s3 / count
        var q0 = D(), q1 = D(), q2 = D(), q3 = D()
        for r in 0..<rows {
            let xr = x + r * cols
            let d0 = widen(xr) - m0, d1 = widen(xr + 4) - m1, d2 = widen(xr + 8) - m2, d3 = widen(xr + 12) - m3
            q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3
        }
        store(m0, mean); store(m1, mean + 4); store(m2, mean + 8); store(m3, mean + 12)
        store(q0 / count, variance); store(q1 / count, variance + 4); store(q2 / count, variance + 8); store(q3 / count, variance + 12)
    }

    /// Per column `Σ du` and `Σ du·(x − m_c)` over the rows, in row order; column blocks of
    /// 64 split across threads (each column summed by one thread: the same order for any count);
    /// whole blocks of ``registerColumns`` keep their sums in registers (the same arithmetic).
    static func columnSums(x: UnsafePointer<Float>, du: UnsafePointer<Double>, rows: Int, cols: Int, m: UnsafePointer<Double>,
                           sum: UnsafeMutablePointer<Double>, sumX: UnsafeMutablePointer<Double>) {
        let block = 64, blocks = (cols + block - 1) / block
        Parallel.forEach(blocks, work: 2 * rows * cols) { range in
            for k in range {
                var c0 = k * block
                let c1 = min(c0 + block, cols)
                while c0 + registerColumns <= c1 {
                    registerSums(x + c0, du + c0, rows: rows, cols: cols, m: m + c0, sum: sum + c0, sumX: sumX + c0)
                    c0 += registerColumns
                }
                for c in c0..<c1 { sum[c] = 0; sumX[c] = 0 }
                for r in 0..<rows {
                    let xr = x + r * cols, dr = du + r * cols
                    var c = c0
                    while c + 4 <= c1 {
                        let d = load(dr + c)
                        let s = load(UnsafePointer(sum + c)) + d, sx = load(UnsafePointer(sumX + c)) + d * (widen(xr + c) - load(m + c))
                        UnsafeMutableRawPointer(sum + c).storeBytes(of: s, as: D.self)
                        UnsafeMutableRawPointer(sumX + c).storeBytes(of: sx, as: D.self)
                        c += 4
                    }
                    while c < c1 { sum[c] += dr[c]; sumX[c] += dr[c] * (Double(xr[c]) - m[c]); c += 1 }
                }
            }
        }
    }

    /// ``columnSums(x:du:rows:cols:m:sum:sumX:)`` of ``registerColumns`` columns starting at `x`, `du`.
    @inline(__always)
    static func registerSums(_ x: UnsafePointer<Float>, _ du: UnsafePointer<Double>, rows: Int, cols: Int, m: UnsafePointer<Double>,
                             sum: UnsafeMutablePointer<Double>, sumX: UnsafeMutablePointer<Double>) {
        let m0 = load(m), m1 = load(m + 4), m2 = load(m + 8), m3 = load(m + 12)
        var s0 = D(), s1 = D(), s2 = D(), s3 = D(), t0 = D(), t1 = D(), t2 = D(), t3 = D()
        for r in 0..<rows {
            let xr = x + r * cols, dr = du + r * cols
            let d0 = load(dr), d1 = load(dr + 4), d2 = load(dr + 8), d3 = load(dr + 12)
            s0 += d0; s1 += d1; s2 += d2; s3 += d3
            t0 += d0 * (widen(xr) - m0); t1 += d1 * (widen(xr + 4) - m1)
            t2 += d2 * (widen(xr + 8) - m2); t3 += d3 * (widen(xr + 12) - m3)
        }
        store(s0, sum); store(s1, sum + 4); store(s2, sum + 8); store(s3, sum + 12)
        store(t0, sumX); store(t1, sumX + 4); store(t2, sumX + 8); store(t3, sumX + 12)
    }

    /// `gx = Float(a_c·du + k_c·(x − m_c) + shift_c)`, rows split across threads.
    static func combine(x: UnsafePointer<Float>, du: UnsafePointer<Double>, gx: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                        m: UnsafePointer<Double>, a: UnsafePointer<Double>, k: UnsafePointer<Double>, shift: UnsafePointer<Double>) {
        Parallel.forEach(rows, work: 3 * rows * cols) { range in
            for r in range {
                let xr = x + r * cols, dr = du + r * cols, gr = gx + r * cols
                var c = 0
                while c + 4 <= cols {
                    let v = load(a + c) * load(dr + c) + load(k + c) * (widen(xr + c) - load(m + c)) + load(shift + c)
                    UnsafeMutableRawPointer(gr + c).storeBytes(of: SIMD4<Float>(v), as: SIMD4<Float>.self)
                    c += 4
                }
                while c < cols { gr[c] = Float(a[c] * dr[c] + k[c] * (Double(xr[c]) - m[c]) + shift[c]); c += 1 }
            }
        }
    }
}
