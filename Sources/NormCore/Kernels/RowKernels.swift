/// Kernels for per-sample normalization with an elementwise affine (LayerNorm): each of
/// the `N` rows of `M` values has its own statistics, and element `i` of every row has its
/// own weight and bias.
public enum RowKernels {
    /// `y[n, i] = ((x − head[n])·inv[n] − k[n])·w[i] + b[i]`, where `k` folds the float64 tail
    /// of the mean. `w`/`b` may be absent (no affine).
    public static func normalize(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, length m: Int,
                                 head: [Float], inv: [Float], k: [Float],
                                 w: UnsafePointer<Float>?, b: UnsafePointer<Float>?) {
        Parallel.forEach(rows, work: rows * m) { range in
            for n in range {
                let xp = x + n * m, yp = y + n * m
                let hv = SIMD16<Float>(repeating: head[n]), iv = SIMD16<Float>(repeating: inv[n]), kv = SIMD16<Float>(repeating: k[n])
                var i = 0
                while i + 16 <= m {
                    var v = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * iv - kv
                    if let w { v *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self) }
                    if let b { v += UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self) }
                    UnsafeMutableRawPointer(yp + i).storeBytes(of: v, as: SIMD16<Float>.self)
                    i += 16
                }
                while i < m {
                    var v = (xp[i] - head[n]) * inv[n] - k[n]
                    if let w { v *= w[i] }
                    if let b { v += b[i] }
                    yp[i] = v
                    i += 1
                }
            }
        }
    }

    /// Backward of ``normalize(x:y:rows:length:head:inv:k:w:b:)`` with batch statistics:
    /// writes dL/dx and, if given, accumulates dL/dw and dL/db (length `m`, float64).
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                rows: Int, length m: Int, head: [Float], inv: [Float], k: [Float],
                                w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Double>?, gradB: UnsafeMutablePointer<Double>?) {
        // Per row: Σ ĝ and Σ ĝ·x̂ with ĝ = g·w, then gx = inv·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)).
        Parallel.forEach(rows, work: 5 * rows * m) { range in
            for n in range {
                let xp = x + n * m, gp = g + n * m, op = gx + n * m
                let h = head[n], iv = inv[n], kk = k[n]
                var s1 = 0.0, s2 = 0.0
                var start = 0
                while start < m {
                    let end = min(start + Reductions.block, m)
                    var a = SIMD16<Float>(), c = SIMD16<Float>()
                    let hv = SIMD16<Float>(repeating: h), ivv = SIMD16<Float>(repeating: iv), kv = SIMD16<Float>(repeating: kk)
                    var i = start
                    while i + 16 <= end {
                        var gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                        if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self) }
                        let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv
                        a += gv; c += gv * xh
                        i += 16
                    }
                    var t1 = Double(a.sum()), t2 = Double(c.sum())
                    while i < end {
                        let gv = gp[i] * (w?[i] ?? 1)
                        t1 += Double(gv); t2 += Double(gv * ((xp[i] - h) * iv - kk))
                        i += 1
                    }
                    s1 += t1; s2 += t2
                    start = end
                }
                let m1 = Float(s1 / Double(m)), m2 = Float(s2 / Double(m))
                let hv = SIMD16<Float>(repeating: h), ivv = SIMD16<Float>(repeating: iv), kv = SIMD16<Float>(repeating: kk)
                let m1v = SIMD16<Float>(repeating: m1), m2v = SIMD16<Float>(repeating: m2)
                var i = 0
                while i + 16 <= m {
                    var gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                    if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self) }
                    let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv
                    UnsafeMutableRawPointer(op + i).storeBytes(of: ivv * (gv - m1v - xh * m2v), as: SIMD16<Float>.self)
                    i += 16
                }
                while i < m {
                    let gv = gp[i] * (w?[i] ?? 1)
                    let xh = (xp[i] - h) * iv - kk
                    op[i] = iv * (gv - m1 - xh * m2)
                    i += 1
                }
            }
        }
        guard gradW != nil || gradB != nil else { return }
        // Parameter gradients: reduce over rows, split across threads by element range.
        Parallel.forEach(m, work: 2 * rows * m) { range in
            for n in 0..<rows {
                let xp = x + n * m, gp = g + n * m
                let h = head[n], iv = inv[n], kk = k[n]
                for i in range {
                    if let gradW { gradW[i] += Double(gp[i]) * Double((xp[i] - h) * iv - kk) }
                    if let gradB { gradB[i] += Double(gp[i]) }
                }
            }
        }
    }
}
