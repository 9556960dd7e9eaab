import NormCore

/// Root Mean Square Layer Normalization (Zhang & Sennrich, 2019), per sample over every
/// non-batch axis, with a per-channel gain.
///
/// For each sample `n`, `ν² = mean(x²)` over `(C, spatial...)` (no mean subtraction) and
/// `y = x / √(ν² + eps) · weight[c]`. There is no bias (the paper's RMSNorm has only the gain
/// `g`) and no running statistics: train and eval are identical. `eps` defaults to `1e-6`
/// inside the square root, as timm's `RmsNorm` and the example Python plugin (PyTorch's
/// `nn.RMSNorm` defaults to `eps=None`, i.e. the dtype's machine epsilon). The gain is per
/// channel, shape `(C,)` (PyTorch's `nn.RMSNorm(x.shape[1:])` would be elementwise).
/// A sample of a single value is valid (no centering happens): `y = x/√(x² + eps)·w`.
public final class RMSNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "rms_norm", aliases: ["rms", "rmsnorm"],
        summary: "RMSNorm: per-sample root mean square over (C, spatial), no centering, per-channel gain",
        reference: "Zhang & Sennrich 2019, arXiv:1910.07467; eps 1e-6 as timm RmsNorm (PyTorch nn.RMSNorm: eps=None -> finfo.eps)",
        options: [OptionSpec("eps", .real(0...Double.greatestFiniteMagnitude), default: .real(1e-6),
                             "added to the mean square before the square root", samples: [.real(1.0), .real(1e-10)]),
                  OptionSpec("affine", .bool, default: .bool(true), "learnable per-channel gain weight of shape (C,), no bias")],
        ranks: 2...5,
        notes: ["per sample over (C, spatial...): nu2 = mean(x^2), no mean subtraction; y = x / sqrt(nu2 + eps) * weight[c]",
                "eps inside the square root, default 1e-6 (timm RmsNorm; PyTorch nn.RMSNorm defaults to finfo(dtype).eps)",
                "affine: gain weight of shape (C,) initialized 1, no bias (the paper's RMSNorm)",
                "no running statistics: train and eval are identical; a single value per sample is valid"])

    let channels: Int
    let eps: Double
    /// The per-channel gain, when `affine=true`.
    public let weight: Parameter?
    /// What backward needs: the input and each sample's `1/√(ν² + eps)`.
    private var cache: (x: Tensor, inv: [Double])?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        eps = options.real("eps")
        weight = options.bool("affine") ? Parameter(name: "weight", value: .ones([channels])) : nil
    }

    public var parameters: [Parameter] { weight.map { [$0] } ?? [] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let rows = x.shape[0], s = x.spatialCount, m = channels * s, c = channels, eps = eps
        var inv = [Double](repeating: 0, count: rows)
        let w = weight.map { $0.value.scalars.map(Double.init) } ?? [Double](repeating: 1, count: c)
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in inv.withUnsafeMutableBufferPointer { iv in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                Parallel.forEach(rows, work: rows * m) { range in
                    for n in range {
                        let row = xp + n * m
                        let r = 1 / (Reductions.sumOfSquares(row, length: m) / Double(m) + eps).squareRoot()
                        iv[n] = r
                        for ch in 0..<c {
                            let scale = Float(r * w[ch]), base = n * m + ch * s
                            for j in 0..<s { yp[base + j] = xp[base + j] * scale }
                        }
                    }
                }
            }}
        }
        cache = (x, inv)
        return y
    }

    /// With `u = g·w[c]` and `r = 1/√(ν² + eps)` per sample: `dx = r·u − x·r³·Σ(u·x)/M`,
    /// `dweight[c] = Σ_{n, spatial} g·x·r`.
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let inv = cache!.inv
        let rows = x.shape[0], s = x.spatialCount, c = channels, m = c * s
        let w = weight.map { $0.value.scalars.map(Double.init) } ?? [Double](repeating: 1, count: c)
        // Σ_spatial g·x per (n, c): the one reduction both gradients need.
        var planeDot = [Double](repeating: 0, count: rows * c)
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in planeDot.withUnsafeMutableBufferPointer { pd in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, op = ob.baseAddress!
                Parallel.forEach(rows, work: 2 * rows * m) { range in
                    for n in range {
                        var dot = 0.0
                        for ch in 0..<c {
                            let base = n * m + ch * s
                            let (_, gxSum) = Reductions.gradientSums(x: xp + base, g: gp + base, length: s, mu: 0)
                            pd[n * c + ch] = gxSum
                            dot += w[ch] * gxSum
                        }
                        let r = inv[n], b = Float(r * r * r * dot / Double(m))
                        for ch in 0..<c {
                            let a = Float(r * w[ch]), base = n * m + ch * s
                            for j in 0..<s { op[base + j] = gp[base + j] * a - xp[base + j] * b }
                        }
                    }
                }
            }}}
        }
        if let weight {
            if weight.requiresGrad {
                var gw = [Double](repeating: 0, count: c)
                for n in 0..<rows { for ch in 0..<c { gw[ch] += planeDot[n * c + ch] * inv[n] } }
                weight.gradient = Tensor(shape: [c], doubles: gw)
            } else {
                weight.gradient = nil
            }
        }
        return gx
    }
}
