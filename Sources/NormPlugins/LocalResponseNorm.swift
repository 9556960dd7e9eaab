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
    private var cache: (x: Tensor, base: [Float], scale: [Float])?
    private var output = ReusableStorage()
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
        let n = x.shape[0], c = channels, s = x.spatialCount, per = c * s
        var base = [Float](repeating: 0, count: x.count), scale = base
        let coefficient = Float(alpha / Double(size)), kf = Float(k)
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in base.withUnsafeMutableBufferPointer { bb in scale.withUnsafeMutableBufferPointer { sb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!, bp = bb.baseAddress!, sp = sb.baseAddress!
                Parallel.forEach(n, work: n * per * (size + 2)) { range in
                    for sample in range {
                        let o = sample * per
                        // Σ a² over each channel's window, then d = k + alpha/size·Σ.
                        windowSums(of: { j, i in xp[o + j * s + i] * xp[o + j * s + i] }, from: -before, to: after, s: s, into: bp + o)
                        for i in 0..<per { bp[o + i] = kf + coefficient * bp[o + i] }
                        negativePower(bp + o, count: per, into: sp + o)
                        for i in 0..<per { yp[o + i] = xp[o + i] * sp[o + i] }
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
        let n = x.shape[0], c = channels, s = x.spatialCount, per = c * s
        let factor = Float(2 * beta * alpha / Double(size))
        var t = [Float](repeating: 0, count: x.count), sums = t
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in
            base.withUnsafeBufferPointer { bb in scale.withUnsafeBufferPointer { sb in
            t.withUnsafeMutableBufferPointer { tb in sums.withUnsafeMutableBufferPointer { wb in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, bp = bb.baseAddress!, sp = sb.baseAddress!
                let tp = tb.baseAddress!, wp = wb.baseAddress!, op = ob.baseAddress!
                Parallel.forEach(n, work: n * per * (size + 3)) { range in
                    for sample in range {
                        let o = sample * per
                        for i in 0..<per { tp[o + i] = gp[o + i] * xp[o + i] * sp[o + i] / bp[o + i] }
                        windowSums(of: { j, i in tp[o + j * s + i] }, from: -after, to: before, s: s, into: wp + o)
                        for i in 0..<per { op[o + i] = gp[o + i] * sp[o + i] - factor * xp[o + i] * wp[o + i] }
                    }
                }
            }}}}}}
        }
        return gx
    }

    /// `out[c·s + i] = Σ_{j = c+lo}^{c+hi} value(j, i)` over the channels `0..<C` (others are
    /// zeros), one sample; the inner loop runs over the contiguous spatial positions.
    private func windowSums(of value: (Int, Int) -> Float, from lo: Int, to hi: Int, s: Int, into out: UnsafeMutablePointer<Float>) {
        for ch in 0..<channels {
            let row = out + ch * s
            row.update(repeating: 0, count: s)
            for j in max(ch + lo, 0)...min(ch + hi, channels - 1) {   // lo <= 0 <= hi: never empty
                for i in 0..<s { row[i] += value(j, i) }
            }
        }
    }

    /// `out[i] = d[i]^(−beta)`, with square roots for the common exponents.
    private func negativePower(_ d: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch beta {
        case 0.75: for i in 0..<count { let r = d[i].squareRoot(); out[i] = 1 / (r * r.squareRoot()) }
        case 0.5: for i in 0..<count { out[i] = 1 / d[i].squareRoot() }
        case 1: for i in 0..<count { out[i] = 1 / d[i] }
        default:
            let e = Float(-beta)
            for i in 0..<count { out[i] = powf(d[i], e) }
        }
    }
}
