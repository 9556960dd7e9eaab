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
    /// Backward's Σ_spatial g·x per (n, c), kept between calls (every entry is rewritten).
    private var planeDot: [Double] = []

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
        // Short planes ((N, C) above all): the gain expanded to the row, one vectorizable loop per row.
        let rowGain: [Float]? = s < Self.shortPlane ? ChannelColumns.repeated(w.map(Float.init), spatial: s) : nil
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in inv.withUnsafeMutableBufferPointer { iv in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                Parallel.forEach(rows, work: rows * m) { range in
                    for n in range {
                        let row = xp + n * m, out = yp + n * m
                        let r = 1 / (Self.sumOfSquares(row, length: m) / Double(m) + eps).squareRoot()
                        iv[n] = r
                        if let rowGain {
                            let rf = Float(r)
                            rowGain.withUnsafeBufferPointer { wg in for i in 0..<m { out[i] = row[i] * (rf * wg[i]) } }
                            continue
                        }
                        for ch in 0..<c {
                            let scale = Float(r * w[ch]), base = ch * s
                            for j in 0..<s { out[base + j] = row[base + j] * scale }
                        }
                    }
                }
            }}
        }
        cache = (x, inv)
        return y
    }

    /// Planes shorter than this take the row-wise loops.
    private static let shortPlane = 16

    /// `Σ x²` over a row: four float32 vector accumulators for rows up to 4096 values (short
    /// rows would be latency-bound in the one-accumulator short path), else ``Reductions``'s
    /// blocked float64 sum.
    private static func sumOfSquares(_ p: UnsafePointer<Float>, length: Int) -> Double {
        guard length <= 4096 else { return Reductions.sumOfSquares(p, length: length) }
        var a = SIMD8<Float>(), b = a, c = a, d = a
        var i = 0
        while i + 32 <= length {
            let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            let v = UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            let w = UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD8<Float>.self)
            let z = UnsafeRawPointer(p + i + 24).loadUnaligned(as: SIMD8<Float>.self)
            a += u * u; b += v * v; c += w * w; d += z * z
            i += 32
        }
        var total = Double(((a + c) + (b + d)).sum())
        while i < length { total += Double(p[i]) * Double(p[i]); i += 1 }
        return total
    }

    /// `Σ a[i]·b[i]` in float64 with two vector accumulators (the per-row dot product over channels).
    private static func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, count: Int) -> Double {
        var s0 = SIMD4<Double>(), s1 = SIMD4<Double>()
        var i = 0
        while i + 8 <= count {
            s0 += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD4<Double>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD4<Double>.self)
            s1 += UnsafeRawPointer(a + i + 4).loadUnaligned(as: SIMD4<Double>.self) * UnsafeRawPointer(b + i + 4).loadUnaligned(as: SIMD4<Double>.self)
            i += 8
        }
        var total = (s0 + s1).sum()
        while i < count { total += a[i] * b[i]; i += 1 }
        return total
    }

    /// With `u = g·w[c]` and `r = 1/√(ν² + eps)` per sample: `dx = r·u − x·r³·Σ(u·x)/M`,
    /// `dweight[c] = Σ_{n, spatial} g·x·r`.
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let inv = cache!.inv
        let rows = x.shape[0], s = x.spatialCount, c = channels, m = c * s
        let w = weight.map { $0.value.scalars.map(Double.init) } ?? [Double](repeating: 1, count: c)
        if s == 1 { return backwardRows(gradOutput, x: x, inv: inv, w: w) }
        // Σ_spatial g·x per (n, c): the one reduction both gradients need.
        if planeDot.count != rows * c { planeDot = [Double](repeating: 0, count: rows * c) }
        let rowGain: [Float]? = s < Self.shortPlane ? ChannelColumns.repeated(w.map(Float.init), spatial: s) : nil
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in planeDot.withUnsafeMutableBufferPointer { pd in
            w.withUnsafeBufferPointer { wb in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, op = ob.baseAddress!
                Parallel.forEach(rows, work: 2 * rows * m) { range in
                    for n in range {
                        let o = n * m, d = pd.baseAddress! + n * c
                        if s == 1 {
                            for ch in 0..<c { d[ch] = Double(gp[o + ch]) * Double(xp[o + ch]) }
                        } else {
                            for ch in 0..<c { d[ch] = Reductions.gradientSums(x: xp + o + ch * s, g: gp + o + ch * s, length: s, mu: 0).1 }
                        }
                        let r = inv[n], b = Float(r * r * r * Self.dot(wb.baseAddress!, d, count: c) / Double(m))
                        if let rowGain {
                            let rf = Float(r)
                            rowGain.withUnsafeBufferPointer { wg in
                                for i in 0..<m { op[o + i] = gp[o + i] * (rf * wg[i]) - xp[o + i] * b }
                            }
                            continue
                        }
                        for ch in 0..<c {
                            let a = Float(r * w[ch]), base = o + ch * s
                            for j in 0..<s { op[base + j] = gp[base + j] * a - xp[base + j] * b }
                        }
                    }
                }
            }}}}
        }
        if let weight {
            if weight.requiresGrad {
                var gw = [Double](repeating: 0, count: c)
                planeDot.withUnsafeBufferPointer { pd in gw.withUnsafeMutableBufferPointer { g in
                    for n in 0..<rows {
                        let r = inv[n], d = pd.baseAddress! + n * c
                        for ch in 0..<c { g[ch] += d[ch] * r }
                    }
                }}
                weight.gradient = Tensor(shape: [c], doubles: gw)
            } else {
                weight.gradient = nil
            }
        }
        return gx
    }
}

extension RMSNorm {
    /// Rows per block of the `(N, C)` backward: each block's column sums of `g·x·r` are taken by
    /// one thread in row order and the blocks added in order (the same sums for any thread count).
    private static let rowBlock = 64

    /// `(N, C)` inputs: per row `Σ_c w_c·g·x` (float64 lanes) and `dx = g·r·w − x·r³·Σ/C`, with
    /// the column sums of `g·x·r` for dL/dweight taken per block of rows in the same visit.
    private func backwardRows(_ gradOutput: Tensor, x: Tensor, inv: [Double], w: [Double]) -> Tensor {
        let rows = x.shape[0], c = channels, blocks = (rows + Self.rowBlock - 1) / Self.rowBlock
        let wantW = weight?.requiresGrad ?? false
        let wf = w.map { Float($0) }
        var partial = [Double](repeating: 0, count: wantW ? blocks * c : 0)
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in w.withUnsafeBufferPointer { wb in
            wf.withUnsafeBufferPointer { wfb in partial.withUnsafeMutableBufferPointer { pb in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, op = ob.baseAddress!, wp = wb.baseAddress!, wfp = wfb.baseAddress!
                let pp = wantW ? pb.baseAddress : nil   // an empty array may still have a base address
                Parallel.forEach(blocks, work: 3 * rows * c) { range in
                    for k in range {
                        let acc = pp.map { $0 + k * c }
                        if let acc { acc.update(repeating: 0, count: c) }
                        for n in (k * Self.rowBlock)..<min((k + 1) * Self.rowBlock, rows) {
                            let o = n * c, r = inv[n]
                            let dot = RMSRowKernels.weightedDot(x: xp + o, g: gp + o, w: wp, count: c, r: r, columnSums: acc)
                            RMSRowKernels.gradient(x: xp + o, g: gp + o, gx: op + o, w: wfp, count: c,
                                                   r: Float(r), b: Float(r * r * r * dot / Double(c)))
                        }
                    }
                }
            }}}}}
        }
        if let weight {
            if wantW {
                var gw = [Double](repeating: 0, count: c)
                for k in 0..<blocks { for ch in 0..<c { gw[ch] += partial[k * c + ch] } }
                weight.gradient = Tensor(shape: [c], doubles: gw)
            } else {
                weight.gradient = nil
            }
        }
        return gx
    }
}

/// RMSNorm's row kernels for `(N, C)` inputs.
private enum RMSRowKernels {
    typealias D = SIMD4<Double>

    @inline(__always) static func widen(_ p: UnsafePointer<Float>) -> D { D(UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)) }
    @inline(__always) static func load(_ p: UnsafePointer<Double>) -> D { UnsafeRawPointer(p).loadUnaligned(as: D.self) }

    /// `Σ w·g·x` over one row in float64 (four lanes), adding `g·x·r` into `columnSums` when given.
    @inline(__always)
    static func weightedDot(x: UnsafePointer<Float>, g: UnsafePointer<Float>, w: UnsafePointer<Double>, count: Int, r: Double,
                            columnSums: UnsafeMutablePointer<Double>?) -> Double {
        var a = D(), b = D(), tail = 0.0
        let rv = D(repeating: r)
        var i = 0
        if let cs = columnSums {
            while i + 8 <= count {
                let p0 = widen(g + i) * widen(x + i), p1 = widen(g + i + 4) * widen(x + i + 4)
                a += load(w + i) * p0; b += load(w + i + 4) * p1
                UnsafeMutableRawPointer(cs + i).storeBytes(of: load(cs + i) + p0 * rv, as: D.self)
                UnsafeMutableRawPointer(cs + i + 4).storeBytes(of: load(cs + i + 4) + p1 * rv, as: D.self)
                i += 8
            }
            while i < count { let p = Double(g[i]) * Double(x[i]); tail += w[i] * p; cs[i] += p * r; i += 1 }
        } else {
            while i + 8 <= count {
                a += load(w + i) * (widen(g + i) * widen(x + i)); b += load(w + i + 4) * (widen(g + i + 4) * widen(x + i + 4))
                i += 8
            }
            while i < count { tail += w[i] * (Double(g[i]) * Double(x[i])); i += 1 }
        }
        return (a + b).sum() + tail
    }

    /// `gx = g·(r·w) − x·b` over one row.
    @inline(__always)
    static func gradient(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>,
                         count: Int, r: Float, b: Float) {
        let rv = SIMD8<Float>(repeating: r), bv = SIMD8<Float>(repeating: b)
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self) * (rv * UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float>.self))
                - UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) * bv
            UnsafeMutableRawPointer(gx + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count { gx[i] = g[i] * (r * w[i]) - x[i] * b; i += 1 }
    }
}
