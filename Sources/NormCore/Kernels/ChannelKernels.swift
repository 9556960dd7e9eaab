/// Kernels over a row-major `(rows, cols)` matrix whose *columns* carry the coefficients:
/// BatchNorm on `(N, C)` inputs (or `(N, C, S)` with a short `S`, as `cols = C·S` with
/// per-channel coefficients repeated `S` times), where the per-plane loops would run over
/// planes of one element. Vectorized across columns with `SIMD16<Float>`.
///
/// Reductions split the columns across threads (each column's sum is taken by one thread,
/// over the rows in order); elementwise passes split the rows. Every value is therefore
/// computed by one thread in a fixed order: bit-identical results for any thread count.
public enum ChannelKernels {
    /// Rows per float32 block of a column reduction before it is flushed to float64 (each
    /// float32 accumulator adds at most this many values, as ``Reductions`` does per lane).
    @usableFromInline static let rowBlock = 64

    /// Column chunks of 16 (one `SIMD16`) for the parallel split of reductions.
    @inline(__always)
    static func forEachColumnChunk(_ cols: Int, work: Int, _ body: (Int, Int) -> Void) {
        let chunks = (cols + 15) / 16
        Parallel.forEach(chunks, work: work) { range in
            body(range.lowerBound * 16, min(range.upperBound * 16, cols))
        }
    }

    /// Per column `Σ (x − k[c])` and `Σ (x − k[c])²` over the rows (shifted data, float32
    /// blocks of ``rowBlock`` rows flushed to float64), into `s1`, `s2` (length `cols`).
    public static func shiftedSums(x: UnsafePointer<Float>, rows: Int, cols: Int, pilot k: UnsafePointer<Float>,
                                   s1: UnsafeMutablePointer<Double>, s2: UnsafeMutablePointer<Double>) {
        forEachColumnChunk(cols, work: rows * cols) { c0, c1 in
            var c = c0
            while c + 16 <= c1 {
                let kv = UnsafeRawPointer(k + c).loadUnaligned(as: SIMD16<Float>.self)
                var t1 = SIMD16<Double>(), t2 = SIMD16<Double>()
                var n0 = 0
                while n0 < rows {
                    let n1 = min(n0 + rowBlock, rows)
                    var a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
                    for n in n0..<n1 {
                        let u = UnsafeRawPointer(x + n * cols + c).loadUnaligned(as: SIMD16<Float>.self) - kv
                        a1 += u; a2 += u * u
                    }
                    t1 += widen(a1); t2 += widen(a2)
                    n0 = n1
                }
                storeDoubles(t1, s1 + c); storeDoubles(t2, s2 + c)
                c += 16
            }
            while c < c1 {
                let kc = k[c]
                var t1 = 0.0, t2 = 0.0
                var n0 = 0
                while n0 < rows {
                    let n1 = min(n0 + rowBlock, rows)
                    var a1: Float = 0, a2: Float = 0
                    for n in n0..<n1 { let u = x[n * cols + c] - kc; a1 += u; a2 += u * u }
                    t1 += Double(a1); t2 += Double(a2)
                    n0 = n1
                }
                s1[c] = t1; s2[c] = t2
                c += 1
            }
        }
    }

    /// Per column `Σ g` and `Σ g·(x − mu[c])` over the rows (the backward's two reductions in
    /// one pass), into `sumG`, `sumGX`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, rows: Int, cols: Int,
                                    mu: UnsafePointer<Float>, sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>) {
        forEachColumnChunk(cols, work: 2 * rows * cols) { c0, c1 in
            var c = c0
            while c + 16 <= c1 {
                let mv = UnsafeRawPointer(mu + c).loadUnaligned(as: SIMD16<Float>.self)
                var t1 = SIMD16<Double>(), t2 = SIMD16<Double>()
                var n0 = 0
                while n0 < rows {
                    let n1 = min(n0 + rowBlock, rows)
                    var a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
                    for n in n0..<n1 {
                        let gv = UnsafeRawPointer(g + n * cols + c).loadUnaligned(as: SIMD16<Float>.self)
                        let xv = UnsafeRawPointer(x + n * cols + c).loadUnaligned(as: SIMD16<Float>.self) - mv
                        a1 += gv; a2 += gv * xv
                    }
                    t1 += widen(a1); t2 += widen(a2)
                    n0 = n1
                }
                storeDoubles(t1, sumG + c); storeDoubles(t2, sumGX + c)
                c += 16
            }
            while c < c1 {
                let m = mu[c]
                var t1 = 0.0, t2 = 0.0
                var n0 = 0
                while n0 < rows {
                    let n1 = min(n0 + rowBlock, rows)
                    var a1: Float = 0, a2: Float = 0
                    for n in n0..<n1 { let gv = g[n * cols + c]; a1 += gv; a2 += gv * (x[n * cols + c] - m) }
                    t1 += Double(a1); t2 += Double(a2)
                    n0 = n1
                }
                sumG[c] = t1; sumGX[c] = t2
                c += 1
            }
        }
    }

    /// `y[n, c] = (x[n, c] − mu[c])·scale[c] + shift[c]`.
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                              mu: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>) {
        Parallel.forEach(rows, work: rows * cols) { range in
            for n in range {
                let xp = x + n * cols, yp = y + n * cols
                var c = 0
                while c + 16 <= cols {
                    let v = (UnsafeRawPointer(xp + c).loadUnaligned(as: SIMD16<Float>.self) - UnsafeRawPointer(mu + c).loadUnaligned(as: SIMD16<Float>.self))
                        * UnsafeRawPointer(scale + c).loadUnaligned(as: SIMD16<Float>.self) + UnsafeRawPointer(shift + c).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(yp + c).storeBytes(of: v, as: SIMD16<Float>.self)
                    c += 16
                }
                while c < cols { yp[c] = (xp[c] - mu[c]) * scale[c] + shift[c]; c += 1 }
            }
        }
    }

    /// `out[n, c] = a[c]·g + b[c]·(x − mu[c]) + cc[c]`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         rows: Int, cols: Int, mu: UnsafePointer<Float>,
                                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, cc: UnsafePointer<Float>) {
        Parallel.forEach(rows, work: 3 * rows * cols) { range in
            for n in range {
                let xp = x + n * cols, gp = g + n * cols, op = out + n * cols
                var c = 0
                while c + 16 <= cols {
                    let gv = UnsafeRawPointer(gp + c).loadUnaligned(as: SIMD16<Float>.self)
                    let xv = UnsafeRawPointer(xp + c).loadUnaligned(as: SIMD16<Float>.self) - UnsafeRawPointer(mu + c).loadUnaligned(as: SIMD16<Float>.self)
                    let v = UnsafeRawPointer(a + c).loadUnaligned(as: SIMD16<Float>.self) * gv
                        + UnsafeRawPointer(b + c).loadUnaligned(as: SIMD16<Float>.self) * xv
                        + UnsafeRawPointer(cc + c).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(op + c).storeBytes(of: v, as: SIMD16<Float>.self)
                    c += 16
                }
                while c < cols { op[c] = a[c] * gp[c] + b[c] * (xp[c] - mu[c]) + cc[c]; c += 1 }
            }
        }
    }

    @inline(__always)
    static func widen(_ v: SIMD16<Float>) -> SIMD16<Double> {
        var d = SIMD16<Double>()
        for i in 0..<16 { d[i] = Double(v[i]) }
        return d
    }

    @inline(__always)
    static func storeDoubles(_ v: SIMD16<Double>, _ p: UnsafeMutablePointer<Double>) {
        for i in 0..<16 { p[i] = v[i] }
    }
}
