import Foundation
import NormCore

/// Local Response Normalization across channels (Krizhevsky, Sutskever & Hinton, 2012, §3.3),
/// with PyTorch's `nn.LocalResponseNorm(size, alpha, beta, k)` semantics.
///
/// For every sample and spatial position, channel `c` is divided by a power of the sum of
/// squares over a window of `size` neighbouring channels:
/// `b_c = a_c / (k + alpha/size · Σ_{c' ∈ W(c)} a_{c'}²)^beta` with
/// `W(c) = [c − size/2, c + (size−1)/2]` (integer halves), channels outside `0..<C` counting
/// as zeros (PyTorch pads `size/2` before and `(size−1)/2` after, then average-pools with the
/// padding included, hence `alpha/size`). No parameters, no state: train and eval are
/// identical. Needs at least one spatial axis (PyTorch needs a 3-D input).
///
/// Defaults are PyTorch's (`alpha = 1e-4`, `beta = 0.75`, `k = 1`) except that PyTorch requires
/// `size`; here it defaults to AlexNet's `n = 5` (the paper uses `k = 2`).
public final class LocalResponseNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "local_response_norm", aliases: ["lrn"],
        summary: "Local Response Normalization: a_c / (k + alpha/size * sum of a^2 over size neighbouring channels)^beta",
        reference: "Krizhevsky, Sutskever & Hinton 2012 (AlexNet, section 3.3); PyTorch nn.LocalResponseNorm conventions",
        options: [OptionSpec("size", .integer(1...Int.max), default: .integer(5),
                             "channels in the window (PyTorch requires it; AlexNet's n = 5)", samples: [.integer(1), .integer(2), .integer(8)]),
                  OptionSpec("alpha", .real(0...Double.greatestFiniteMagnitude), default: .real(1e-4),
                             "scale of the windowed sum of squares (divided by size, as PyTorch)", samples: [.real(1), .real(0)]),
                  OptionSpec("beta", .real(0...Double.greatestFiniteMagnitude), default: .real(0.75),
                             "exponent of the denominator", samples: [.real(0.5), .real(2)]),
                  OptionSpec("k", .real(0...Double.greatestFiniteMagnitude), default: .real(1),
                             "additive constant of the denominator; must be > 0 (AlexNet: 2)", samples: [.real(2), .real(0.5)])],
        ranks: 3...5,
        notes: ["per (n, spatial position) across channels: b_c = a_c / (k + alpha/size * sum_{c'=c-size//2}^{c+(size-1)//2} a_c'^2)^beta",
                "channels outside 0..C-1 count as zeros (PyTorch's zero padding; alpha is divided by size, not by the channels present)",
                "no parameters, no state: train and eval are identical; rank 3 to 5 (PyTorch needs >= 3-D)",
                "defaults alpha=1e-4, beta=0.75, k=1 (PyTorch); size defaults to 5 (AlexNet; PyTorch has no default)"])

    let channels: Int
    /// Channels in the window.
    public let size: Int
    let alpha: Double, beta: Double, k: Double
    /// What backward needs: the input, each element's denominator base `d` and `d^(−beta)`.
    private var cache: (x: Tensor, base: Tensor, scale: Tensor)?
    private var output = ReusableStorage()
    /// Blocks for `d` and `d^(−beta)`, reused once the previous forward's are dropped.
    private var baseStorage = ReusableStorage()
    private var scaleStorage = ReusableStorage()
    private var gradInput = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        size = options.integer("size")
        alpha = options.real("alpha")
        beta = options.real("beta")
        k = options.real("k")
        guard k > 0 else {
            throw NormError.invalidOption(method: Self.descriptor.name, option: "k", value: "\(k)",
                                          expected: "a number > 0 (the denominator k + ... would vanish on zero inputs)")
        }
    }

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }

    /// Channels of the window before and after `c`.
    private var before: Int { size / 2 }
    private var after: Int { (size - 1) / 2 }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let n = x.shape[0], s = x.spatialCount, per = channels * s
        cache = nil   // lets this forward reuse the previous d and d^(−beta) blocks
        let base = baseStorage.tensor(shape: x.shape), scale = scaleStorage.tensor(shape: x.shape)
        let coefficient = Float(alpha / Double(size)), kf = Float(k)
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in base.withUnsafeOutputBuffer { bb in scale.withUnsafeOutputBuffer { sb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!, bp = bb.baseAddress!, sp = sb.baseAddress!
                Parallel.forEach(n, work: n * per * (size + 4)) { range in
                    withScratch(count: per) { q in
                        for o in range.lazy.map({ $0 * per }) {
                            normalizeSample(xp + o, base: bp + o, scale: sp + o, y: yp + o, squares: q, s: s, k: kf, coefficient: coefficient)
                        }
                    }
                }
            }}}
        }
        cache = (x, base, scale)
        return y
    }

    /// `dx_j = g_j·d_j^(−β) − 2β·alpha/size · a_j · Σ_{c : j ∈ W(c)} g_c·a_c·d_c^(−β−1)`, where
    /// `j ∈ W(c)` ⇔ `c ∈ [j − (size−1)/2, j + size/2]`.
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let (base, scale) = (cache!.base, cache!.scale)
        let n = x.shape[0], s = x.spatialCount, per = channels * s
        let factor = Float(2 * beta * alpha / Double(size))
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in
            base.withUnsafeBufferPointer { bb in scale.withUnsafeBufferPointer { sb in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, bp = bb.baseAddress!, sp = sb.baseAddress!, op = ob.baseAddress!
                Parallel.forEach(n, work: n * per * (size + 5)) { range in
                    withScratch(count: per) { t in
                        for o in range.lazy.map({ $0 * per }) {
                            gradientSample(gp + o, x: xp + o, base: bp + o, scale: sp + o, out: op + o, terms: t, s: s, factor: factor)
                        }
                    }
                }
            }}}}
        }
        return gx
    }

    /// A per-thread scratch block of `count` floats.
    private func withScratch(count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) {
        var scratch = [Float](repeating: 0, count: count)
        scratch.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// The forward of one sample (pointers at its first element), channel rows in order; each
    /// row of squares `a²` is made just before the first window that needs it, so rows stay in
    /// cache between their uses.
    private func normalizeSample(_ x: UnsafePointer<Float>, base: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>,
                                 y: UnsafeMutablePointer<Float>, squares q: UnsafeMutablePointer<Float>, s: Int,
                                 k: Float, coefficient: Float) {
        var made = 0
        for ch in 0..<channels {
            while made <= min(ch + after, channels - 1) {
                let m = made * s
                for i in 0..<s { q[m + i] = x[m + i] * x[m + i] }
                made += 1
            }
            let r = ch * s
            normalizeRow(squares: q, channel: ch, from: -before, to: after, s: s, k: k, coefficient: coefficient,
                         x: x + r, base: base + r, scale: scale + r, y: y + r)
        }
    }

    /// The backward of one sample: rows of `t = g·a·d^(−β)/d` made just before the first window
    /// that needs them, then each channel row's gradient.
    private func gradientSample(_ g: UnsafePointer<Float>, x: UnsafePointer<Float>, base: UnsafePointer<Float>,
                                scale: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, terms t: UnsafeMutablePointer<Float>,
                                s: Int, factor: Float) {
        var made = 0
        for ch in 0..<channels {
            while made <= min(ch + before, channels - 1) {
                let m = made * s
                for i in 0..<s { t[m + i] = g[m + i] * x[m + i] * scale[m + i] / base[m + i] }
                made += 1
            }
            let r = ch * s
            gradientRow(terms: t, channel: ch, from: -after, to: before, s: s, factor: factor,
                        g: g + r, x: x + r, scale: scale + r, out: out + r)
        }
    }

    /// One channel row of the forward, 16 positions at a time: `d = k + coefficient·Σ a²` over the
    /// window (the window's rows added in channel order), `d^(−β)` and `y = x·d^(−β)`, each
    /// written once.
    private func normalizeRow(squares q: UnsafePointer<Float>, channel ch: Int, from lo: Int, to hi: Int, s: Int,
                              k: Float, coefficient: Float, x: UnsafePointer<Float>, base d: UnsafeMutablePointer<Float>,
                              scale sc: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let first = max(ch + lo, 0), last = min(ch + hi, channels - 1)
        let exponent = NegativePower(beta: beta)
        var i = 0
        while i + 16 <= s {
            let v = k + coefficient * Self.windowSum(q + i, first: first, last: last, s: s)
            let p = exponent.apply(v)
            Self.store(v, d + i); Self.store(p, sc + i); Self.store(Self.load(x + i) * p, y + i)
            i += 16
        }
        while i < s {
            var acc = q[first * s + i]
            if first < last { for j in (first + 1)...last { acc += q[j * s + i] } }
            let v = k + coefficient * acc, p = exponent.apply(v)
            d[i] = v; sc[i] = p; y[i] = x[i] * p
            i += 1
        }
    }

    /// One channel row of the backward: `out = g·d^(−β) − factor·x·Σ t` over the window of `t`.
    private func gradientRow(terms t: UnsafePointer<Float>, channel ch: Int, from lo: Int, to hi: Int, s: Int, factor: Float,
                             g: UnsafePointer<Float>, x: UnsafePointer<Float>, scale sc: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>) {
        let first = max(ch + lo, 0), last = min(ch + hi, channels - 1)
        var i = 0
        while i + 16 <= s {
            let w = Self.windowSum(t + i, first: first, last: last, s: s)
            Self.store(Self.load(g + i) * Self.load(sc + i) - factor * Self.load(x + i) * w, out + i)
            i += 16
        }
        while i < s {
            var acc = t[first * s + i]
            if first < last { for j in (first + 1)...last { acc += t[j * s + i] } }
            out[i] = g[i] * sc[i] - factor * x[i] * acc
            i += 1
        }
    }

    /// `Σ_{j = first}^{last} values[j·s ..< j·s + 16]`, added in channel order.
    @inline(__always)
    private static func windowSum(_ values: UnsafePointer<Float>, first: Int, last: Int, s: Int) -> SIMD16<Float> {
        var acc = load(values + first * s)
        var j = first + 1
        while j <= last { acc += load(values + j * s); j += 1 }
        return acc
    }

    @inline(__always) private static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always) private static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    /// `d^(−β)`, with square roots for the common exponents (correctly rounded, so the 16-lane
    /// and the scalar forms give the same bits).
    private enum NegativePower {
        case threeQuarters, half, one, general(Float)

        init(beta: Double) {
            switch beta {
            case 0.75: self = .threeQuarters
            case 0.5: self = .half
            case 1: self = .one
            default: self = .general(Float(-beta))
            }
        }

        @inline(__always) func apply(_ d: SIMD16<Float>) -> SIMD16<Float> {
            switch self {
            case .threeQuarters: let r = d.squareRoot(); return 1 / (r * r.squareRoot())
            case .half: return 1 / d.squareRoot()
            case .one: return 1 / d
            case let .general(e):
                var out = SIMD16<Float>()
                for lane in 0..<16 { out[lane] = powf(d[lane], e) }
                return out
            }
        }

        @inline(__always) func apply(_ d: Float) -> Float {
            switch self {
            case .threeQuarters: let r = d.squareRoot(); return 1 / (r * r.squareRoot())
            case .half: return 1 / d.squareRoot()
            case .one: return 1 / d
            case let .general(e): return powf(d, e)
            }
        }
    }
}
