/// Kernels for per-sample normalization with an elementwise affine (LayerNorm): each of
/// the `N` rows of `M` values has its own statistics, and element `i` of every row has its
/// own weight and bias.
///
/// A row may be cut into `segments` equal runs, each with its own statistics (GroupNorm on
/// `(N, C)` inputs: `G` runs of `C/G` channels, the affine per channel = per element).
/// Statistics arrays (`head`, `inv`, `k`) are indexed by `row · segments + segment`.
public enum RowKernels {
    /// Per run mean and M2 (``Reductions/moments(_:segments:stride:length:)``), runs split
    /// across threads.
    public static func moments(x: UnsafePointer<Float>, rows: Int, length m: Int, segments: Int = 1) -> (mean: [Double], m2: [Double]) {
        let runs = rows * segments, len = m / segments
        var mean = [Double](repeating: 0, count: runs), m2 = mean
        mean.withUnsafeMutableBufferPointer { mb in m2.withUnsafeMutableBufferPointer { vb in
            Parallel.forEach(runs, work: rows * m) { range in
                for r in range {
                    let (a, b) = Reductions.moments(x + r * len, segments: 1, stride: 0, length: len)
                    mb[r] = a; vb[r] = b
                }
            }
        }}
        return (mean, m2)
    }

    /// `y[n, i] = ((x − head[n])·inv[n] − k[n])·w[i] + b[i]`, where `k` folds the float64 tail
    /// of the mean. `w`/`b` may be absent (no affine).
    public static func normalize(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, length m: Int,
                                 head: [Float], inv: [Float], k: [Float],
                                 w: UnsafePointer<Float>?, b: UnsafePointer<Float>?) {
        normalize(x: x, y: y, rows: rows, length: m, segments: 1, head: head, inv: inv, k: k, w: w, b: b)
    }

    /// ``normalize(x:y:rows:length:head:inv:k:w:b:)`` with `segments` runs per row.
    public static func normalize(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, length m: Int, segments: Int,
                                 head: [Float], inv: [Float], k: [Float],
                                 w: UnsafePointer<Float>?, b: UnsafePointer<Float>?) {
        let len = m / segments
        head.withUnsafeBufferPointer { head in inv.withUnsafeBufferPointer { inv in k.withUnsafeBufferPointer { k in
            // Rows in the reverse of the moments' order: start with the rows still in cache.
            Parallel.forEach(rows, work: rows * m, descending: true) { range in
                for n in range.reversed() {
                    for s in 0..<segments {
                        let r = n * segments + s, off = s * len
                        let xp = x + n * m + off, yp = y + n * m + off
                        let wp = w.map { $0 + off }, bp = b.map { $0 + off }
                        let h = head[r], iv = inv[r], kk = k[r]
                        let hv = SIMD16<Float>(repeating: h), ivv = SIMD16<Float>(repeating: iv), kv = SIMD16<Float>(repeating: kk)
                        var i = 0
                        if let wp, let bp {
                            while i + 16 <= len {
                                let v = ((UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv)
                                    * UnsafeRawPointer(wp + i).loadUnaligned(as: SIMD16<Float>.self)
                                    + UnsafeRawPointer(bp + i).loadUnaligned(as: SIMD16<Float>.self)
                                UnsafeMutableRawPointer(yp + i).storeBytes(of: v, as: SIMD16<Float>.self)
                                i += 16
                            }
                        } else {
                            while i + 16 <= len {
                                var v = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv
                                if let wp { v *= UnsafeRawPointer(wp + i).loadUnaligned(as: SIMD16<Float>.self) }
                                if let bp { v += UnsafeRawPointer(bp + i).loadUnaligned(as: SIMD16<Float>.self) }
                                UnsafeMutableRawPointer(yp + i).storeBytes(of: v, as: SIMD16<Float>.self)
                                i += 16
                            }
                        }
                        while i < len {
                            var v = (xp[i] - h) * iv - kk
                            if let wp { v *= wp[i] }
                            if let bp { v += bp[i] }
                            yp[i] = v
                            i += 1
                        }
                    }
                }
            }
        }}}
    }

    /// Backward of ``normalize(x:y:rows:length:head:inv:k:w:b:)`` with batch statistics:
    /// writes dL/dx and, if given, accumulates dL/dw and dL/db (length `m`, float64).
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                rows: Int, length m: Int, head: [Float], inv: [Float], k: [Float],
                                w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Double>?, gradB: UnsafeMutablePointer<Double>?) {
        backward(x: x, g: g, gx: gx, rows: rows, length: m, segments: 1, head: head, inv: inv, k: k,
                 w: w, gradW: gradW, gradB: gradB)
    }

    /// Backward with `segments` runs per row, in two passes over `x` and `dL/dy`.
    ///
    /// Pass 1 walks column tiles (split across threads) and, for every row, takes each
    /// block's `Σ ĝ` and `Σ ĝ·x̂` (ĝ = g·w, blocks of ``Reductions/block`` elements within a
    /// run, float32 lanes flushed to float64) and adds `g·x̂`, `g` to the parameter
    /// gradients of the tile's columns (float32 over ``paramRowBlock`` rows, then float64;
    /// rows in order). Pass 2 (rows split across
    /// threads) sums each run's blocks in order and writes
    /// `dL/dx = inv·(ĝ − mean ĝ − x̂·mean(ĝ·x̂))`. The blocks and the order of every sum are
    /// fixed, so the result does not depend on the thread count.
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                rows: Int, length m: Int, segments: Int, head: [Float], inv: [Float], k: [Float],
                                w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Double>?, gradB: UnsafeMutablePointer<Double>?) {
        let len = m / segments
        let block = Reductions.block
        let perRun = (len + block - 1) / block
        let perRow = segments * perRun
        let blockLength = min(len, block)
        // Tiles of about 4096 columns, at least one per thread.
        let threads = max(1, Parallel.threadCount)
        let perTile = max(1, min(max(1, 4096 / blockLength), (perRow + threads - 1) / threads))
        let tiles = (perRow + perTile - 1) / perTile
        var partial = [Double](repeating: 0, count: 2 * rows * perRow)
        head.withUnsafeBufferPointer { head in inv.withUnsafeBufferPointer { inv in k.withUnsafeBufferPointer { k in
        partial.withUnsafeMutableBufferPointer { partial in
            let pp = partial.baseAddress!
            Parallel.forEach(tiles, work: 2 * rows * m) { range in
                let b0 = range.lowerBound * perTile, b1 = min(range.upperBound * perTile, perRow)
                // The tile's columns [c0, c1) (its blocks are consecutive in a row).
                let c0 = (b0 / perRun) * len + (b0 % perRun) * block
                let c1 = min(((b1 - 1) / perRun) * len + ((b1 - 1) % perRun) * block + block, ((b1 - 1) / perRun + 1) * len)
                let width = c1 - c0
                let wantParams = gradW != nil || gradB != nil
                // Parameter gradients: float32 over blocks of `paramRowBlock` rows, then float64.
                let accW = UnsafeMutablePointer<Float>.allocate(capacity: wantParams ? width : 0)
                let accB = UnsafeMutablePointer<Float>.allocate(capacity: wantParams ? width : 0)
                defer { accW.deallocate(); accB.deallocate() }
                if wantParams { accW.initialize(repeating: 0, count: width); accB.initialize(repeating: 0, count: width) }
                for n in 0..<rows {
                    for bi in b0..<b1 {
                        let s = bi / perRun, j = bi % perRun
                        let start = s * len + j * block, end = min(start + block, (s + 1) * len)
                        let r = n * segments + s
                        let sums = blockSums(x + n * m, g + n * m, start, end, head[r], inv[r], k[r], w,
                                             wantParams ? accW - c0 : nil, wantParams ? accB - c0 : nil)
                        pp[2 * (n * perRow + bi)] = sums.0
                        pp[2 * (n * perRow + bi) + 1] = sums.1
                    }
                    if wantParams, (n + 1) % paramRowBlock == 0 || n == rows - 1 {
                        for i in 0..<width {
                            gradW?[c0 + i] += Double(accW[i])
                            gradB?[c0 + i] += Double(accB[i])
                        }
                        accW.update(repeating: 0, count: width)
                        accB.update(repeating: 0, count: width)
                    }
                }
            }
            Parallel.forEach(rows, work: 3 * rows * m) { range in
                for n in range {
                    for s in 0..<segments {
                        var s1 = 0.0, s2 = 0.0
                        for j in 0..<perRun {
                            s1 += pp[2 * (n * perRow + s * perRun + j)]
                            s2 += pp[2 * (n * perRow + s * perRun + j) + 1]
                        }
                        let r = n * segments + s, off = s * len
                        let m1 = Float(s1 / Double(len)), m2 = Float(s2 / Double(len))
                        writeGradient(x + n * m + off, g + n * m + off, gx + n * m + off, len, head[r], inv[r], k[r],
                                      w.map { $0 + off }, m1, m2)
                    }
                }
            }
        }}}}
    }

    /// Rows per float32 block of the parameter-gradient column sums before they are added
    /// to the float64 totals (blocks start at row 0: the same for any thread count).
    @usableFromInline static let paramRowBlock = 16

    /// `(Σ ĝ, Σ ĝ·x̂)` over `[start, end)` of one row; with the float32 parameter-gradient
    /// accumulators `accW`, `accB` (indexed by column) also adds `g·x̂` and `g` to them.
    @inline(__always)
    static func blockSums(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ start: Int, _ end: Int,
                          _ h: Float, _ iv: Float, _ kk: Float, _ w: UnsafePointer<Float>?,
                          _ accW: UnsafeMutablePointer<Float>?, _ accB: UnsafeMutablePointer<Float>?) -> (Double, Double) {
        let hv = SIMD8<Float>(repeating: h), ivv = SIMD8<Float>(repeating: iv), kv = SIMD8<Float>(repeating: kk)
        var a = SIMD8<Float>(), c = SIMD8<Float>()
        var i = start
        while i + 8 <= end {
            let graw = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD8<Float>.self)
            var gv = graw
            if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD8<Float>.self) }
            let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD8<Float>.self) - hv) * ivv - kv
            a += gv; c += gv * xh
            if let accW, let accB {
                let cw = UnsafeRawPointer(accW + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(accW + i).storeBytes(of: cw + graw * xh, as: SIMD8<Float>.self)
                let cb = UnsafeRawPointer(accB + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(accB + i).storeBytes(of: cb + graw, as: SIMD8<Float>.self)
            }
            i += 8
        }
        var t1 = Double(Reductions.hsum(a)), t2 = Double(Reductions.hsum(c))
        while i < end {
            let graw = gp[i]
            let gv = graw * (w?[i] ?? 1)
            let xh = (xp[i] - h) * iv - kk
            t1 += Double(gv); t2 += Double(gv * xh)
            if let accW, let accB { accW[i] += graw * xh; accB[i] += graw }
            i += 1
        }
        return (t1, t2)
    }

    /// `gx = inv·(ĝ − m1 − x̂·m2)` over one run.
    @inline(__always)
    static func writeGradient(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, _ len: Int,
                              _ h: Float, _ iv: Float, _ kk: Float, _ w: UnsafePointer<Float>?, _ m1: Float, _ m2: Float) {
        let hv = SIMD16<Float>(repeating: h), ivv = SIMD16<Float>(repeating: iv), kv = SIMD16<Float>(repeating: kk)
        let m1v = SIMD16<Float>(repeating: m1), m2v = SIMD16<Float>(repeating: m2)
        var i = 0
        while i + 16 <= len {
            var gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
            if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self) }
            let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv
            UnsafeMutableRawPointer(op + i).storeBytes(of: ivv * (gv - m1v - xh * m2v), as: SIMD16<Float>.self)
            i += 16
        }
        while i < len {
            let gv = gp[i] * (w?[i] ?? 1)
            let xh = (xp[i] - h) * iv - kk
            op[i] = iv * (gv - m1 - xh * m2)
            i += 1
        }
    }
}
