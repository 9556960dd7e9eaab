import NormCore

/// EvoNorm-B0 (Liu, Brock, Simonyan & Le, 2020), a batch-dependent normalization-activation
/// layer, with timm's `EvoNorm2dB0` conventions.
///
/// `y = x / max(√(var_B + eps), v·x + √(var_I + eps)) · weight + bias`, where `var_B` is the
/// per-channel **biased** variance over (N, spatial) in train mode and the `running_var`
/// buffer in eval mode, and `var_I` is the per-(sample, channel) **biased** variance over the
/// spatial axes (timm's `instance_std`) in both modes. `v`, `weight`, `bias` are per channel,
/// initialized 1, 1, 0. The max with `v·x` is the nonlinearity: the output includes the
/// activation (``Normalization/includesActivation``), as timm uses it (a norm-act layer).
///
/// Train mode updates `running_var = (1 − momentum)·running_var + momentum·var_B·n/(n−1)`
/// (`n = N·spatial`: the **unbiased** batch variance, exactly timm's update); there is no
/// running mean (no mean is subtracted anywhere). The gradient flows through the branch of
/// the max that won; on a tie it is split evenly between both (PyTorch's `maximum`).
/// Defaults follow timm: `eps = 1e-3`, `momentum = 0.1`.
public final class EvoNormB0: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "evonorm_b0", aliases: ["evonormb0", "evonorm-b0"],
        summary: "EvoNorm-B0: x / max(sqrt(batch var + eps), v*x + instance std), per-channel affine; includes its activation",
        reference: "Liu et al. 2020, arXiv:2004.02967 (EvoNorm-B0); timm EvoNorm2dB0 conventions",
        options: [CommonOptions.eps(default: 1e-3),
                  OptionSpec("momentum", .real(0...1), default: .real(0.1),
                             "PyTorch convention (timm): running_var = (1 - m) * running_var + m * unbiased batch var",
                             samples: [.real(0.3), .real(1)])],
        ranks: 3...5,
        notes: ["train: var_B per channel over (N, spatial), biased; eval: var_B = running_var",
                "var_I per (n, c) over spatial, biased, in both modes; eps inside both square roots (timm default 1e-3)",
                "y = x / max(sqrt(var_B + eps), v * x + sqrt(var_I + eps)) * weight + bias; v, weight, bias (C,) init 1, 1, 0",
                "running_var (init 1) <- (1 - momentum) * running_var + momentum * var_B * n/(n-1) (timm; no running mean)",
                "gradient through the winning branch of the max; a tie splits it evenly (PyTorch maximum)",
                "the output includes the activation (timm: norm-act layer, nothing after it)"],
        reduction: .spatial)

    let channels: Int
    let eps: Double
    let momentum: Double
    public let weight: Parameter
    public let bias: Parameter
    /// The per-channel slope `v` of the instance branch.
    public let v: Parameter
    /// The per-channel running variance eval mode divides by (timm's only buffer).
    public let runningVariance: Buffer
    private var cache: Cache?
    /// Output blocks reused across calls once the caller dropped the previous result.
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    /// What backward needs from the last forward.
    private struct Cache {
        let x: Tensor
        let train: Bool
        /// Per channel: the batch branch `√(var + eps)` and (train) the batch mean.
        let left: [Double]
        let batchMean: [Double]
        /// Per plane `(n, c)`: the instance std and mean.
        let instanceStd: [Double]
        let instanceMean: [Double]
    }

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        eps = options.real("eps")
        momentum = options.real("momentum")
        weight = Parameter(name: "weight", value: .ones([channels]))
        bias = Parameter(name: "bias", value: .zeros([channels]))
        v = Parameter(name: "v", value: .ones([channels]))
        runningVariance = Buffer(name: "running_var", value: .ones([channels]))
    }

    public var parameters: [Parameter] { [weight, bias, v] }
    public var buffers: [Buffer] { [runningVariance] }
    public var tracksRunningStatistics: Bool { true }
    public var includesActivation: Bool { true }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let n = x.shape[0], c = channels, s = x.spatialCount
        guard s > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each instance variance would be taken over one value (input \(x.shape.shapeText)); needs a spatial size > 1")
        }
        let (instanceMean, instanceVariance) = RunKernels.planeMoments(x, planes: n * c, length: s)
        let instanceStd = instanceVariance.map { ($0 + eps).squareRoot() }
        var left = [Double](repeating: 0, count: c), batchMean = left
        if mode == .train {
            var batchVariance = left
            // Per channel over (N, spatial): the mean of plane means, and the biased variance
            // as the mean over samples of (plane variance + squared offset of the plane mean).
            for ch in 0..<c {
                var m = 0.0
                for i in 0..<n { m += instanceMean[i * c + ch] }
                m /= Double(n)
                var varSum = 0.0
                for i in 0..<n {
                    let d = instanceMean[i * c + ch] - m
                    varSum += instanceVariance[i * c + ch] + d * d
                }
                batchMean[ch] = m
                batchVariance[ch] = varSum / Double(n)
                left[ch] = (batchVariance[ch] + eps).squareRoot()
            }
            let count = Double(n * s), correction = count / (count - 1)
            runningVariance.value = Tensor(shape: [c], doubles: zip(runningVariance.value.scalars, batchVariance).map {
                (1 - momentum) * Double($0) + momentum * $1 * correction
            })
        } else {
            let rv = runningVariance.value.scalars
            for ch in 0..<c { left[ch] = (Double(rv[ch]) + eps).squareRoot() }
        }
        let w = weight.value.scalars, b = bias.value.scalars, vs = v.value.scalars, leftRoots = left
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in
                let xp = xb.baseAddress!, op = out.baseAddress!
                Parallel.forEach(n * c, work: n * c * s) { range in
                    for p in range {
                        let ch = p % c
                        EvoNormB0Kernels.forward(xp + p * s, op + p * s, length: s, left: Float(leftRoots[ch]), std: Float(instanceStd[p]),
                                                 v: vs[ch], w: w[ch], b: b[ch])
                    }
                }
            }
        }
        cache = Cache(x: x, train: mode == .train, left: left, batchMean: batchMean,
                      instanceStd: instanceStd, instanceMean: instanceMean)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let st = cache!
        let n = x.shape[0], c = channels, s = x.spatialCount
        let w = weight.value.scalars, vs = v.value.scalars
        let planes = n * c
        // Per-plane sums (Σ g·z, Σ g, Σ g_right·x, Σ g_left, Σ g_right), then per channel in plane order.
        var sums = [Double](repeating: 0, count: planes * 5)
        let gx = gradInput.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in sums.withUnsafeMutableBufferPointer { sb in
                let xp = xb.baseAddress!, gp = gyb.baseAddress!, op = out.baseAddress!, sp = sb.baseAddress!
                Parallel.forEach(planes, work: 2 * planes * s) { range in
                    for p in range {
                        let ch = p % c
                        let t = EvoNormB0Kernels.backwardDirect(xp + p * s, gp + p * s, op + p * s, length: s, left: Float(st.left[ch]),
                                                                std: Float(st.instanceStd[p]), v: vs[ch], w: w[ch])
                        (sp[5 * p], sp[5 * p + 1], sp[5 * p + 2], sp[5 * p + 3], sp[5 * p + 4]) = t
                    }
                }
                // Through the statistics: d√(var + eps)/dvar = 1/(2σ), dvar/dx_i = 2(x_i − μ)/M.
                var leftSums = [Double](repeating: 0, count: c)
                for p in 0..<planes { leftSums[p % c] += sp[5 * p + 3] }
                let gLeft = leftSums
                let batchCount = Double(n * s)
                Parallel.forEach(planes, work: planes * s) { range in
                    for p in range {
                        let ch = p % c
                        let kInstance = sp[5 * p + 4] / st.instanceStd[p] / Double(s), mu = st.instanceMean[p]
                        let kBatch = st.train ? gLeft[ch] / st.left[ch] / batchCount : 0, muB = st.batchMean[ch]
                        // gx += kI (x − μ_I) + kB (x − μ_B), the means split into a float32 head
                        // (x − head is exact for x near it) and a float64 tail folded into the shift.
                        let headI = Float(mu), headB = Float(muB)
                        let shift = -(kInstance * (mu - Double(headI)) + kBatch * (muB - Double(headB)))
                        EvoNormB0Kernels.addCentered(xp + p * s, op + p * s, length: s, k1: Float(kInstance), head1: headI,
                                                     k2: Float(kBatch), head2: headB, shift: Float(shift))
                    }
                }
            }}}
        }
        var gw = [Double](repeating: 0, count: c), gb = gw, gv = gw
        for p in 0..<planes {
            gw[p % c] += sums[5 * p]; gb[p % c] += sums[5 * p + 1]; gv[p % c] += sums[5 * p + 2]
        }
        for (p, g) in [(weight, gw), (bias, gb), (v, gv)] {
            p.gradient = p.requiresGrad ? Tensor(shape: [c], doubles: g) : nil
        }
        return gx
    }
}

/// EvoNorm-B0's per-plane float32 passes, eight lanes at a time with a scalar tail.
private enum EvoNormB0Kernels {
    typealias V = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// `y = x / max(left, v·x + std) · w + b`.
    static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, length: Int,
                        left: Float, std: Float, v: Float, w: Float, b: Float) {
        let lv = V(repeating: left), sv = V(repeating: std), vv = V(repeating: v), wv = V(repeating: w), bv = V(repeating: b)
        var i = 0
        while i + 8 <= length {
            let xi = load(x + i)
            let r = vv * xi + sv
            store(xi / r.replacing(with: lv, where: lv .> r) * wv + bv, y + i)
            i += 8
        }
        while i < length { y[i] = x[i] / max(left, v * x[i] + std) * w + b; i += 1 }
    }

    /// Writes the direct part of dL/dx (`g·w/d + g_right·v`) into `gx` and returns the plane's
    /// (Σ g·x/d, Σ g, Σ g_right·x, Σ g_left, Σ g_right), with `g_max = −g·w·x/d²` given to the
    /// larger branch, half to each on a tie (PyTorch's `maximum`).
    static func backwardDirect(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, length: Int,
                               left: Float, std: Float, v: Float, w: Float) -> (Double, Double, Double, Double, Double) {
        let lv = V(repeating: left), sv = V(repeating: std), vv = V(repeating: v), wv = V(repeating: w)
        let zero = V(), half = V(repeating: 0.5), one = V(repeating: 1)
        var aZ = V(), aG = V(), aV = V(), aL = V(), aR = V()
        var i = 0
        while i + 8 <= length {
            let xi = load(x + i), gi = load(g + i)
            let r = vv * xi + sv, d = r.replacing(with: lv, where: lv .> r)
            let z = xi / d, gz = gi * wv
            let gMax = -gz * z / d
            var share = zero.replacing(with: one, where: r .> lv)
            share = share.replacing(with: half, where: r .== lv)
            let toRight = gMax * share
            aZ += gi * z; aG += gi; aV += toRight * xi; aL += gMax - toRight; aR += toRight
            store(gz / d + toRight * vv, gx + i)
            i += 8
        }
        var sZ = Double(Reductions.hsum(aZ)), sG = Double(Reductions.hsum(aG)), sV = Double(Reductions.hsum(aV))
        var sL = Double(Reductions.hsum(aL)), sR = Double(Reductions.hsum(aR))
        while i < length {
            let xi = x[i], gi = g[i], r = v * xi + std, d = max(left, r)
            let z = xi / d, gz = gi * w, gMax = -gz * z / d
            let toRight = r > left ? gMax : r == left ? gMax / 2 : 0
            sZ += Double(gi * z); sG += Double(gi); sV += Double(toRight * xi); sL += Double(gMax - toRight); sR += Double(toRight)
            gx[i] = gz / d + toRight * v
            i += 1
        }
        return (sZ, sG, sV, sL, sR)
    }

    /// `gx += k1·(x − head1) + k2·(x − head2) + shift`.
    static func addCentered(_ x: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, length: Int,
                            k1: Float, head1: Float, k2: Float, head2: Float, shift: Float) {
        let a1 = V(repeating: k1), h1 = V(repeating: head1), a2 = V(repeating: k2), h2 = V(repeating: head2), b = V(repeating: shift)
        var i = 0
        while i + 8 <= length {
            let xi = load(x + i)
            store(load(gx + i) + a1 * (xi - h1) + a2 * (xi - h2) + b, gx + i)
            i += 8
        }
        while i < length { gx[i] += k1 * (x[i] - head1) + k2 * (x[i] - head2) + shift; i += 1 }
    }
}
