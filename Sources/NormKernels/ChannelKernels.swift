/// Kernels over a row-major `(rows, cols)` matrix whose *columns* carry the coefficients:
/// BatchNorm on `(N, C)` inputs (or `(N, C, S)` with a short `S`, as `cols = C·S` with
/// per-channel coefficients repeated `S` times), where the per-plane loops would run over
/// planes of one element. Vectorized across columns with `SIMD16<Float>`.
///
/// Reductions cut the matrix into tiles of ``rowBlock`` rows (and, when there are few of
/// them, slabs of columns): each tile's float32 column sums are taken by one thread,
/// over its rows in order, and the tiles' sums are added in row order in float64. Elementwise
/// passes split the rows. Every value is therefore computed in a fixed order: bit-identical
/// results for any thread count.
public enum ChannelKernels {
    /// Rows per float32 block of a column reduction before it is flushed to float64 (each
    /// float32 accumulator adds at most this many values, as ``Reductions`` does per lane).
    @usableFromInline static let rowBlock = 64

    /// Per column `Σ (x − k[c])` and `Σ (x − k[c])²` over the rows (shifted data, float32
    /// blocks of ``rowBlock`` rows flushed to float64), into `s1`, `s2` (length `cols`).
    /// `parallel: false` keeps the work on the calling thread (for callers that split their own
    /// work across threads; the result is the same).
    public static func shiftedSums(x: UnsafePointer<Float>, rows: Int, cols: Int, pilot k: UnsafePointer<Float>,
                                   s1: UnsafeMutablePointer<Double>, s2: UnsafeMutablePointer<Double>, parallel: Bool = true) {
        pairedSums(rows: rows, cols: cols, work: parallel ? rows * cols : 0, sumA: s1, sumAB: s2, terms: ShiftedTerms(x: x, k: k))
    }

    /// Per column `Σ g` and `Σ g·(x − mu[c])` over the rows (the backward's two reductions in
    /// one pass), into `sumG`, `sumGX`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, rows: Int, cols: Int,
                                    mu: UnsafePointer<Float>, sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>,
                                    parallel: Bool = true) {
        pairedSums(rows: rows, cols: cols, work: parallel ? 2 * rows * cols : 0, sumA: sumG, sumAB: sumGX,
                   terms: GradientTerms(x: x, g: g, mu: mu))
    }

    /// The `(a, b)` terms of a paired column reduction at flat index `i` of column `c`
    /// (a generic parameter, not a closure: the kernel is specialized for each).
    protocol PairedTerms {
        func vector(_ i: Int, _ c: Int) -> (SIMD16<Float>, SIMD16<Float>)
        func scalar(_ i: Int, _ c: Int) -> (Float, Float)
    }

    /// `a = b = x − k[c]` (shifted moments).
    struct ShiftedTerms: PairedTerms {
        let x: UnsafePointer<Float>, k: UnsafePointer<Float>
        @inline(__always) func vector(_ i: Int, _ c: Int) -> (SIMD16<Float>, SIMD16<Float>) {
            let u = load(x + i) - load(k + c)
            return (u, u)
        }
        @inline(__always) func scalar(_ i: Int, _ c: Int) -> (Float, Float) {
            let u = x[i] - k[c]
            return (u, u)
        }
    }

    /// `a = g`, `b = x − mu[c]` (the backward's sums).
    struct GradientTerms: PairedTerms {
        let x: UnsafePointer<Float>, g: UnsafePointer<Float>, mu: UnsafePointer<Float>
        @inline(__always) func vector(_ i: Int, _ c: Int) -> (SIMD16<Float>, SIMD16<Float>) {
            (load(g + i), load(x + i) - load(mu + c))
        }
        @inline(__always) func scalar(_ i: Int, _ c: Int) -> (Float, Float) { (g[i], x[i] - mu[c]) }
    }

    /// Rows visited together before moving to the next columns in ``pairedSums(rows:cols:work:sumA:sumAB:terms:)``:
    /// that many sequential streams through memory, and that long a chain of adds per chunk.
    @usableFromInline static let rowPanel = 4

    /// Per column `Σ a` and `Σ a·b` over the rows, where `terms.vector(i, c)` gives `(a, b)` for
    /// the 16 values at flat index `i` of column `c` (`terms.scalar`: one value). Each column is summed
    /// over the rows in order, float32 blocks of ``rowBlock`` rows flushed to float64 in order.
    ///
    /// Tiles of ``rowBlock`` rows (by slabs of columns when the blocks are few) go to the threads; a tile's rows are
    /// read in panels of ``rowPanel`` that sweep its columns left to right (sequential streams
    /// the prefetcher follows, not one column chunk down all rows at a stride of a row), with
    /// the float32 sums kept in the tile's row of a scratch block between panels.
    @inline(__always)
    static func pairedSums<Terms: PairedTerms>(rows: Int, cols: Int, work: Int,
                                               sumA: UnsafeMutablePointer<Double>, sumAB: UnsafeMutablePointer<Double>,
                                               terms: Terms) {
        // Full-width row blocks are the best streams; columns are cut into slabs only when
        // there are too few blocks to occupy the threads (which thread sums which column of
        // a block never changes a result).
        let blocks = (rows + rowBlock - 1) / rowBlock
        let chunks = (cols + 15) / 16
        let wanted = min(chunks, max(1, (2 * Parallel.threadCount + blocks - 1) / blocks))
        let chunksPerSlab = (chunks + wanted - 1) / wanted
        let slabs = (chunks + chunksPerSlab - 1) / chunksPerSlab, slabWidth = chunksPerSlab * 16
        ScratchBuffers.withBuffer(of: Float.self, count: 2 * blocks * cols) { partial in
            Parallel.forEach(blocks * slabs, work: work) { tiles in
                for tile in tiles {
                    let block = tile / slabs, c0 = (tile % slabs) * slabWidth, c1 = min(c0 + slabWidth, cols)
                    let n0 = block * rowBlock, n1 = min(n0 + rowBlock, rows)
                    let accA = partial + 2 * block * cols, accAB = accA + cols
                    (accA + c0).update(repeating: 0, count: c1 - c0)
                    (accAB + c0).update(repeating: 0, count: c1 - c0)
                    var r0 = n0
                    while r0 < n1 {
                        let r1 = min(r0 + rowPanel, n1)
                        var c = c0
                        while c + 16 <= c1 {
                            var a1 = load(accA + c), a2 = load(accAB + c)
                            for n in r0..<r1 {
                                let (p, q) = terms.vector(n * cols + c, c)
                                a1 += p; a2 += p * q
                            }
                            store(a1, accA + c); store(a2, accAB + c)
                            c += 16
                        }
                        while c < c1 {
                            var a1 = accA[c], a2 = accAB[c]
                            for n in r0..<r1 { let (p, q) = terms.scalar(n * cols + c, c); a1 += p; a2 += p * q }
                            accA[c] = a1; accAB[c] = a2
                            c += 1
                        }
                        r0 = r1
                    }
                }
            }
            sumA.update(repeating: 0, count: cols)
            sumAB.update(repeating: 0, count: cols)
            for block in 0..<blocks {
                let accA = partial + 2 * block * cols, accAB = accA + cols
                for c in 0..<cols {
                    sumA[c] += Double(accA[c]); sumAB[c] += Double(accAB[c])
                }
            }
        }
    }

    @inline(__always)
    static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    /// `y[n, c] = (x[n, c] − mu[c])·scale[c] + shift[c]`.
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                              mu: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                              parallel: Bool = true) {
        Parallel.forEach(rows, work: parallel ? rows * cols : 0) { range in
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
                                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, cc: UnsafePointer<Float>,
                                         parallel: Bool = true) {
        Parallel.forEach(rows, work: parallel ? 3 * rows * cols : 0) { range in
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
}
