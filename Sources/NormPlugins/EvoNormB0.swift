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
        let (instanceMean, instanceVariance) = Self.planeMoments(x, planes: n * c, length: s)
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
        let w = weight.value.scalars, b = bias.value.scalars, vs = v.value.scalars
        let y = Tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in
                for p in 0..<(n * c) {
                    let ch = p % c, l = left[ch], std = instanceStd[p], vc = Double(vs[ch])
                    let wc = Double(w[ch]), bc = Double(b[ch])
                    for i in (p * s)..<((p + 1) * s) {
                        let xi = Double(xb[i])
                        out[i] = Float(xi / max(l, vc * xi + std) * wc + bc)
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
        var gw = [Double](repeating: 0, count: c), gb = gw, gv = gw, gLeft = gw
        var gStd = [Double](repeating: 0, count: n * c)
        var gx = [Double](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in
            for p in 0..<(n * c) {
                let ch = p % c, l = st.left[ch], std = st.instanceStd[p], vc = Double(vs[ch]), wc = Double(w[ch])
                for i in (p * s)..<((p + 1) * s) {
                    let xi = Double(xb[i]), g = Double(gyb[i]), r = vc * xi + std
                    let d = max(l, r)
                    gw[ch] += g * xi / d
                    gb[ch] += g
                    let gz = g * wc
                    let gd = -gz * xi / (d * d)                     // dL/d(max)
                    // PyTorch's maximum: the winner gets it all, a tie half each.
                    let toRight = r > l ? gd : r == l ? gd / 2 : 0
                    gLeft[ch] += gd - toRight
                    gv[ch] += toRight * xi
                    gStd[p] += toRight
                    gx[i] = gz / d + toRight * vc
                }
            }
            // Through the statistics: d√(var + eps)/dvar = 1/(2σ), dvar/dx_i = 2(x_i − μ)/M.
            let batchCount = Double(n * s)
            for p in 0..<(n * c) {
                let ch = p % c
                let kInstance = gStd[p] / st.instanceStd[p] / Double(s), mu = st.instanceMean[p]
                let kBatch = st.train ? gLeft[ch] / st.left[ch] / batchCount : 0, muB = st.batchMean[ch]
                for i in (p * s)..<((p + 1) * s) {
                    let xi = Double(xb[i])
                    gx[i] += kInstance * (xi - mu) + kBatch * (xi - muB)
                }
            }
        }}
        for (p, g) in [(weight, gw), (bias, gb), (v, gv)] {
            p.gradient = p.requiresGrad ? Tensor(shape: [c], doubles: g) : nil
        }
        return Tensor(shape: x.shape, doubles: gx)
    }

    /// Mean and biased variance of each contiguous run of `length` values (two passes, float64).
    static func planeMoments(_ x: Tensor, planes: Int, length: Int) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: planes), variance = mean
        x.withUnsafeBufferPointer { xb in
            for p in 0..<planes {
                let range = (p * length)..<((p + 1) * length)
                var sum = 0.0
                for i in range { sum += Double(xb[i]) }
                let m = sum / Double(length)
                var sq = 0.0
                for i in range { let d = Double(xb[i]) - m; sq += d * d }
                mean[p] = m
                variance[p] = sq / Double(length)
            }
        }
        return (mean, variance)
    }
}
