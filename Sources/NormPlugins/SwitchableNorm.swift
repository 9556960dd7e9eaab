import Foundation
import NormCore

/// Switchable Normalization (Luo, Ren, Peng, Zhang & Li, 2019), following the reference
/// implementation's `SwitchNorm2d` (switchablenorms/Switchable-Normalization,
/// `devkit/ops/switchable_norm.py`) with the moving-average variant.
///
/// Per sample and channel `(n, c)` over the spatial axes: `μ_IN` and the **unbiased**
/// `σ²_IN` (`torch.var`'s default, as the repository). With `T = σ²_IN + μ_IN²`:
/// `μ_LN[n] = mean_c μ_IN`, `σ²_LN[n] = mean_c T − μ_LN²`, and in train mode
/// `μ_BN[c] = mean_n μ_IN`, `σ²_BN[c] = mean_n T − μ_BN²` (so the LN/BN variances inherit the
/// unbiased instance variances, exactly as the repository computes them). Eval mode replaces
/// `μ_BN`, `σ²_BN` by `running_mean`, `running_var`; IN and LN still use the sample.
/// `μ = Σ_k softmax(mean_weight)_k μ_k`, `σ² = Σ_k softmax(var_weight)_k σ²_k` over
/// `k = (IN, LN, BN)`, `y = (x − μ)/√(σ² + eps) · weight + bias`. Gradients flow through the
/// softmax weights and every statistic (the running statistics are constants in eval).
///
/// Running statistics (repository: buffers start at **zeros**, Keras-style
/// `running = 0.9·running + 0.1·batch`, `σ²_BN` stored as computed, no n/(n−1)) map onto
/// normlab's PyTorch-style `momentum = 0.1` (= decay 0.9); `keras_decay` gives the Keras form
/// (e.g. 0.997 of the repository's `SwitchNorm1d`/`SwitchNorm3d`) and `momentum: none` a
/// cumulative average (a normlab extension).
public final class SwitchableNorm: NormalizationPlugin, RunningStatisticsProviding {
    public static let descriptor = NormDescriptor(
        name: "switchable_norm", aliases: ["sn", "switchnorm"],
        summary: "Switchable Normalization: softmax-weighted IN, LN and BN means and variances, BN branch with running statistics",
        reference: "Luo et al. 2019, arXiv:1806.10779; switchablenorms/Switchable-Normalization SwitchNorm2d (devkit/ops)",
        options: [CommonOptions.eps(), CommonOptions.momentum, CommonOptions.kerasDecay],
        ranks: 3...5,
        notes: ["IN: per (n, c) over spatial, UNBIASED variance (torch.var, as the repository); T = var_IN + mean_IN^2",
                "LN: per n, mean_c mean_IN and mean_c T - mean_LN^2; BN (train): per c, mean_n mean_IN and mean_n T - mean_BN^2",
                "mean = softmax(mean_weight) . (IN, LN, BN), var = softmax(var_weight) . (IN, LN, BN); mean_weight, var_weight (3,) init ones",
                "y = (x - mean) / sqrt(var + eps) * weight + bias; weight, bias (C,) init 1, 0; eps 1e-5",
                "eval: BN branch = running_mean, running_var (init ZEROS, as the repository); IN and LN use the sample",
                "running = (1 - momentum) * running + momentum * BN statistic; var_BN stored as computed (no n/(n-1)); "
                    + "default momentum 0.1 = the repository's Keras decay 0.9; num_batches_tracked (normlab) serves momentum=none",
                "rank 3-5 (the repository's SwitchNorm1d for (N, C) is a different LN+BN layer and is not provided)"],
        constraints: [.exclusive("momentum", "keras_decay")],
        reduction: .spatial)

    let channels: Int
    let eps: Double
    public let weight: Parameter
    public let bias: Parameter
    /// Importance logits of the (IN, LN, BN) means.
    public let meanWeight: Parameter
    /// Importance logits of the (IN, LN, BN) variances.
    public let varWeight: Parameter
    /// The BN branch's running mean and variance (and batch counter).
    public let runningStatistics: RunningStatistics?
    private var cache: Cache?
    /// Output blocks reused across calls once the caller dropped the previous result.
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    /// Per-plane and per-sample statistics of the last forward.
    private struct Cache {
        let x: Tensor
        let train: Bool
        let meanIN: [Double], meanLN: [Double], meanBN: [Double]
        let varIN: [Double], varLN: [Double], varBN: [Double]
        /// Per plane `(n, c)`: the mixed mean and 1/√(var + eps).
        let mean: [Double], invStd: [Double]
        let meanSoftmax: [Double], varSoftmax: [Double]
    }

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        eps = options.real("eps")
        weight = Parameter(name: "weight", value: .ones([channels]))
        bias = Parameter(name: "bias", value: .zeros([channels]))
        meanWeight = Parameter(name: "mean_weight", value: .ones([3]))
        varWeight = Parameter(name: "var_weight", value: .ones([3]))
        let running = RunningStatistics(channels: channels, rule: try MomentumRule.decode(options), estimator: .biased)
        running.variance.value = .zeros([channels])
        runningStatistics = running
    }

    public var parameters: [Parameter] { [weight, bias, meanWeight, varWeight] }
    public var buffers: [Buffer] { runningStatistics?.buffers ?? [] }
    public var tracksRunningStatistics: Bool { true }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let n = x.shape[0], c = channels, s = x.spatialCount
        guard s > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "the unbiased instance variance needs a spatial size > 1, got input \(x.shape.shapeText)")
        }
        let (meanIN, biasedIN) = RunKernels.planeMoments(x, planes: n * c, length: s)
        let varIN = biasedIN.map { $0 * Double(s) / Double(s - 1) }
        // mean_c(T) − μ_LN² computed without its cancellation: mean_c(σ²_IN) + mean_c((μ_IN − μ_LN)²)
        // (the same quantity; for |μ| ≫ σ the subtraction would cost the float32 plane means'
        // accuracy). BN likewise over n.
        var meanLN = [Double](repeating: 0, count: n), varLN = meanLN
        for i in 0..<n {
            var m = 0.0
            for ch in 0..<c { m += meanIN[i * c + ch] }
            m /= Double(c)
            var q = 0.0
            for ch in 0..<c { let d = meanIN[i * c + ch] - m; q += varIN[i * c + ch] + d * d }
            meanLN[i] = m
            varLN[i] = q / Double(c)
        }
        var meanBN = [Double](repeating: 0, count: c), varBN = meanBN
        let running = runningStatistics!
        if mode == .train {
            for ch in 0..<c {
                var m = 0.0
                for i in 0..<n { m += meanIN[i * c + ch] }
                m /= Double(n)
                var q = 0.0
                for i in 0..<n { let d = meanIN[i * c + ch] - m; q += varIN[i * c + ch] + d * d }
                meanBN[ch] = m
                varBN[ch] = q / Double(n)
            }
        } else {
            meanBN = running.mean.value.scalars.map(Double.init)
            varBN = running.variance.value.scalars.map(Double.init)
        }
        let pm = Self.softmax(meanWeight.value.scalars.map(Double.init)), pv = Self.softmax(varWeight.value.scalars.map(Double.init))
        var mixedMean = [Double](repeating: 0, count: n * c), mixedInvStd = mixedMean
        for p in 0..<(n * c) {
            let i = p / c, ch = p % c
            mixedMean[p] = pm[0] * meanIN[p] + pm[1] * meanLN[i] + pm[2] * meanBN[ch]
            mixedInvStd[p] = 1 / (pv[0] * varIN[p] + pv[1] * varLN[i] + pv[2] * varBN[ch] + eps).squareRoot()
        }
        // Constants for the parallel pass (a captured `var` would be accessed through a box).
        let mean = mixedMean, invStd = mixedInvStd
        let w = weight.value.scalars, b = bias.value.scalars
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in
                let xp = xb.baseAddress!, op = out.baseAddress!
                Parallel.forEach(n * c, work: n * c * s) { range in
                    for p in range {
                        let ch = p % c, head = Float(mean[p]), scale = invStd[p] * Double(w[ch])
                        RunKernels.affine(xp + p * s, op + p * s, length: s, head: head, scale: Float(scale),
                                          shift: Float(Double(b[ch]) - (mean[p] - Double(head)) * scale))
                    }
                }
            }
        }
        if mode == .train {
            running.update(batchMean: meanBN, biasedVariance: varBN, count: n * s)
        }
        cache = Cache(x: x, train: mode == .train, meanIN: meanIN, meanLN: meanLN, meanBN: meanBN,
                      varIN: varIN, varLN: varLN, varBN: varBN, mean: mean, invStd: invStd, meanSoftmax: pm, varSoftmax: pv)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let st = cache!
        let n = x.shape[0], c = channels, s = x.spatialCount, planes = n * c
        let w = weight.value.scalars
        var gw = [Double](repeating: 0, count: c), gb = gw
        // Per plane: dL/dμ and dL/dσ² of the mixed statistics.
        var gMean = [Double](repeating: 0, count: planes), gVar = gMean
        var planeSums = [(Double, Double)](repeating: (0, 0), count: planes)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in planeSums.withUnsafeMutableBufferPointer { ps in
            let xp = xb.baseAddress!, gp = gyb.baseAddress!, sp = ps.baseAddress!
            Parallel.forEach(planes, work: planes * s) { range in
                for p in range {
                    let head = Float(st.mean[p])
                    let (sg, sgh) = RunKernels.gradientSums(xp + p * s, gp + p * s, length: s, head: head)
                    sp[p] = (sg, sgh - (st.mean[p] - Double(head)) * sg)      // Σ g·(x − μ)
                }
            }
        }}}
        for p in 0..<planes {
            let ch = p % c, inv = st.invStd[p], wc = Double(w[ch])
            let (sumG, sumGC) = planeSums[p]
            gw[ch] += sumGC * inv
            gb[ch] += sumG
            gMean[p] = -sumG * wc * inv
            gVar[p] = -0.5 * sumGC * wc * inv * inv * inv
        }
        let pm = st.meanSoftmax, pv = st.varSoftmax
        // dL/d(branch statistic), summed per branch for the softmax weights.
        var gMeanLN = [Double](repeating: 0, count: n), gVarLN = gMeanLN
        var gMeanBN = [Double](repeating: 0, count: c), gVarBN = gMeanBN
        var gLogitsM = [0.0, 0.0, 0.0], gLogitsV = [0.0, 0.0, 0.0]
        for p in 0..<planes {
            let i = p / c, ch = p % c
            gLogitsM[0] += gMean[p] * st.meanIN[p]; gLogitsM[1] += gMean[p] * st.meanLN[i]; gLogitsM[2] += gMean[p] * st.meanBN[ch]
            gLogitsV[0] += gVar[p] * st.varIN[p]; gLogitsV[1] += gVar[p] * st.varLN[i]; gLogitsV[2] += gVar[p] * st.varBN[ch]
            gMeanLN[i] += pm[1] * gMean[p]; gVarLN[i] += pv[1] * gVar[p]
            gMeanBN[ch] += pm[2] * gMean[p]; gVarBN[ch] += pv[2] * gVar[p]
        }
        // Back to the instance statistics: μ_LN = mean_c μ_IN, σ²_LN = mean_c T − μ_LN²
        // (and BN likewise over n, train only), T = σ²_IN + μ_IN².
        var gMeanIN = [Double](repeating: 0, count: planes), gVarIN = gMeanIN
        for p in 0..<planes {
            let i = p / c, ch = p % c
            var gT = gVarLN[i] / Double(c)
            var gm = pm[0] * gMean[p] + (gMeanLN[i] - 2 * st.meanLN[i] * gVarLN[i]) / Double(c)
            if st.train {
                gT += gVarBN[ch] / Double(n)
                gm += (gMeanBN[ch] - 2 * st.meanBN[ch] * gVarBN[ch]) / Double(n)
            }
            gVarIN[p] = pv[0] * gVar[p] + gT
            gMeanIN[p] = gm + 2 * st.meanIN[p] * gT
        }
        // x: direct through (x − μ)·inv, then through μ_IN (1/S) and the unbiased σ²_IN (2(x − μ_IN)/(S − 1)).
        let gx = gradInput.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in
                let xp = xb.baseAddress!, gp = gyb.baseAddress!, op = out.baseAddress!
                Parallel.forEach(planes, work: planes * s) { range in
                    for p in range {
                        let ch = p % c, direct = Double(w[ch]) * st.invStd[p]
                        let a = gMeanIN[p] / Double(s), k = 2 * gVarIN[p] / Double(s - 1), head = Float(st.meanIN[p])
                        RunKernels.gradient(xp + p * s, gp + p * s, op + p * s, length: s, gScale: Float(direct), head: head,
                                            xScale: Float(k), shift: Float(a - k * (st.meanIN[p] - Double(head))))
                    }
                }
            }}
        }
        let grads: [(Parameter, [Double])] = [(weight, gw), (bias, gb),
                                              (meanWeight, Self.softmaxBackward(pm, gLogitsM)),
                                              (varWeight, Self.softmaxBackward(pv, gLogitsV))]
        for (p, g) in grads {
            p.gradient = p.requiresGrad ? Tensor(shape: p.value.shape, doubles: g) : nil
        }
        return gx
    }

    /// Softmax of the importance logits (max subtracted first).
    static func softmax(_ z: [Double]) -> [Double] {
        let top = z.max()!
        let e = z.map { Foundation.exp($0 - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }

    /// dL/dz of `p = softmax(z)` from dL/dp: `p_j (g_j − Σ_k p_k g_k)`.
    static func softmaxBackward(_ p: [Double], _ g: [Double]) -> [Double] {
        let dotted = zip(p, g).reduce(0) { $0 + $1.0 * $1.1 }
        return zip(p, g).map { $0 * ($1 - dotted) }
    }
}
