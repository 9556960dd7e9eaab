import NormKernelsC
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
                    let (a, b) = Reductions.contiguousMoments(x + r * len, length: len)
                    mb[r] = a; vb[r] = b
                }
            }
        }}
        return (mean, m2)
    }

    /// Fused forward with statistics of the input: for every run (`rows · segments` runs of
    /// `length / segments` values, split across threads in blocks of a few runs) the
    /// shifted-data moments, `invstd = 1/√(M2/len + eps)`, the terms `head = Float(mean)`,
    /// `inv = Float(invstd)`, `k = Float((mean − head)·invstd)` (and, when given, `mean`,
    /// the biased `variance` and `invstd` in float64); then, while the run is cached,
    /// `y = ((x − head)·inv − k)·w + b` with the run's slice of `w`, `b` (length `length`; absent: 1, 0).
    public static func normalizeRuns(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, length m: Int, segments: Int,
                                     eps: Double, w: UnsafePointer<Float>?, b: UnsafePointer<Float>?,
                                     head: UnsafeMutablePointer<Float>, inv: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>,
                                     mean: UnsafeMutablePointer<Double>? = nil, variance: UnsafeMutablePointer<Double>? = nil,
                                     invstd: UnsafeMutablePointer<Double>? = nil) {
        let runs = rows * segments, len = m / segments, size = Reductions.Divisor(Double(len)), S = PlaneKernels.maxBlockRuns
        // Long LayerNorm rows go in pairs: both rows' statistics, then one pass over the
        // (row-sized) weight and bias for the two outputs.
        let pairs = segments == 1 && len >= pairedRowLength && w != nil && b != nil
        PlaneKernels.forEachBlock(runs, block: pairs ? 2 : PlaneKernels.runsPerBlock(len), work: runs * len) { r0, r1, t in
            PlaneKernels.blockMoments(x, r0, r1, len, t)
            // Variances, then the block's 1/σ four runs per vector step.
            let nb = r1 - r0
            for i in 0..<nb { t[2 * S + i] = size.divide(t[S + i]) }
            ChannelMath.inverseStandardDeviation(t + 2 * S, eps: eps, count: nb, into: t + 3 * S)
            for r in r0..<r1 {
                let mu = t[r - r0], v = t[2 * S + r - r0], iv = t[3 * S + r - r0]
                let h = Float(mu)
                head[r] = h; inv[r] = Float(iv); k[r] = Float((mu - Double(h)) * iv)
                mean?[r] = mu; variance?[r] = v; invstd?[r] = iv
            }
            if pairs, r1 - r0 == 2, let w, let b {
                normalizeRowPair(x + r0 * len, y + r0 * len, len, head[r0], inv[r0], k[r0], head[r0 + 1], inv[r0 + 1], k[r0 + 1], w, b)
                return
            }
            var seg = r0 % segments
            for r in r0..<r1 {
                let off = seg * len
                normalizeRun(x + r * len, y + r * len, len, head[r], inv[r], k[r], w.map { $0 + off }, b.map { $0 + off })
                seg += 1
                if seg == segments { seg = 0 }
            }
        }
    }

    /// Chunks of at most this many values take the backward's sums in 4-lane vectors, longer
    /// ones in 8 lanes (GroupNorm's groups of 32 channels: half the steps of 4 lanes).
    @usableFromInline static let shortGradientChunk = 16

    /// Rows at least this long (LayerNorm without segments) are normalized in pairs.
    @usableFromInline static let pairedRowLength = 1 << 16

    /// ``normalizeRun(_:_:_:_:_:_:_:_:)`` of two consecutive rows (`x`, `x + len`) with one read of `w`, `b`.
    @inline(__always)
    static func normalizeRowPair(_ xp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, _ len: Int,
                                 _ h0: Float, _ iv0: Float, _ k0: Float, _ h1: Float, _ iv1: Float, _ k1: Float,
                                 _ wp: UnsafePointer<Float>, _ bp: UnsafePointer<Float>) {
        let hv0 = SIMD8<Float>(repeating: h0), ivv0 = SIMD8<Float>(repeating: iv0), kv0 = SIMD8<Float>(repeating: k0)
        let hv1 = SIMD8<Float>(repeating: h1), ivv1 = SIMD8<Float>(repeating: iv1), kv1 = SIMD8<Float>(repeating: k1)
        let xq = xp + len, yq = yp + len
        var i = 0
        while i + 8 <= len {
            let wv = UnsafeRawPointer(wp + i).loadUnaligned(as: SIMD8<Float>.self)
            let bv = UnsafeRawPointer(bp + i).loadUnaligned(as: SIMD8<Float>.self)
            let v0 = ((UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD8<Float>.self) - hv0) * ivv0 - kv0) * wv + bv
            let v1 = ((UnsafeRawPointer(xq + i).loadUnaligned(as: SIMD8<Float>.self) - hv1) * ivv1 - kv1) * wv + bv
            UnsafeMutableRawPointer(yp + i).storeBytes(of: v0, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(yq + i).storeBytes(of: v1, as: SIMD8<Float>.self)
            i += 8
        }
        while i < len {
            yp[i] = ((xp[i] - h0) * iv0 - k0) * wp[i] + bp[i]
            yq[i] = ((xq[i] - h1) * iv1 - k1) * wp[i] + bp[i]
            i += 1
        }
    }

    /// `y = ((x − h)·iv − kk)·w + b` over one run (`w`, `b` already offset to the run).
    @inline(__always)
    static func normalizeRun(_ xp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, _ len: Int,
                             _ h: Float, _ iv: Float, _ kk: Float, _ wp: UnsafePointer<Float>?, _ bp: UnsafePointer<Float>?) {
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
        let len = m / segments, runs = rows * segments
        head.withUnsafeBufferPointer { head in inv.withUnsafeBufferPointer { inv in k.withUnsafeBufferPointer { k in
            // Runs in the reverse of the moments' order: start with the rows still in cache.
            Parallel.forEach(runs, work: rows * m, descending: true) { range in
                for r in range.reversed() {
                    let off = (r % segments) * len
                    normalizeRun(x + r * len, y + r * len, len, head[r], inv[r], k[r], w.map { $0 + off }, b.map { $0 + off })
                }
            }
        }}}
    }

    /// Backward of ``normalize(x:y:rows:length:head:inv:k:w:b:)`` with batch statistics:
    /// writes dL/dx and, if given, adds dL/dw and dL/db (length `m`) to `gradW`, `gradB`.
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                rows: Int, length m: Int, head: [Float], inv: [Float], k: [Float],
                                w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Double>?, gradB: UnsafeMutablePointer<Double>?) {
        backward(x: x, g: g, gx: gx, rows: rows, length: m, segments: 1, head: head, inv: inv, k: k,
                 w: w, gradW: gradW, gradB: gradB)
    }

    /// ``backwardRuns(x:g:gx:rows:length:segments:head:inv:k:w:gradW:gradB:)`` with the
    /// statistics as arrays, adding the parameter gradients to float64 `gradW`, `gradB`.
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                rows: Int, length m: Int, segments: Int, head: [Float], inv: [Float], k: [Float],
                                w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Double>?, gradB: UnsafeMutablePointer<Double>?) {
        let want = gradW != nil || gradB != nil
        var fw = [Float](repeating: 0, count: want ? m : 0), fb = fw
        fw.withUnsafeMutableBufferPointer { fw in fb.withUnsafeMutableBufferPointer { fb in
            backwardRuns(x: x, g: g, gx: gx, rows: rows, length: m, segments: segments, head: head, inv: inv, k: k, w: w,
                         gradW: gradW == nil ? nil : fw.baseAddress, gradB: gradB == nil ? nil : fb.baseAddress)
        }}
        for i in 0..<(want ? m : 0) {
            gradW?[i] += Double(fw[i])
            gradB?[i] += Double(fb[i])
        }
    }

    /// Rows per float32 block of the parameter-gradient column sums before they are added
    /// to the float64 totals (blocks start at row 0: the same for any thread count).
    @usableFromInline static let paramRowBlock = 16
    /// Columns per partial sum of a run (float32 lanes, then float64).
    @usableFromInline static let chunkColumns = 1024
    /// Columns per unit of work of the reduction pass (a tile of consecutive chunks).
    @usableFromInline static let tileColumns = 2048
    /// Columns per unit of work of the writing pass.
    @usableFromInline static let writeColumns = 16384
    /// Bytes of `x` and `dL/dy` a panel of rows may span: each panel's rows are reduced, then
    /// written back while they are still in the last-level cache. Small, because that cache is
    /// shared with other processes and machines: on the benchmark machine 2–4 MB panels were
    /// 20–30 % faster than 8 MB or unpanelled (4 MB lets two LayerNorm rows of (64, 56, 56)
    /// share one update of the column accumulators).
    @usableFromInline static let panelBytes = 4 << 20

    /// Backward with batch statistics, `segments` runs per row: writes dL/dx and, when given,
    /// dL/dw and dL/db (length `m`, float32).
    ///
    /// Rows are taken in panels (all rows when `x` and `dL/dy` fit in ``panelBytes``, else a
    /// power of two up to ``paramRowBlock`` rows). Pass 1 (units of a row block × a column
    /// tile, split across threads) takes every chunk's `Σ ĝ` and `Σ ĝ·x̂` (ĝ = g·w; chunks of
    /// ``chunkColumns`` within a run, float32 lanes flushed to float64) and adds `g·x̂`, `g` to
    /// float32 column accumulators of the row block (``paramRowBlock`` rows, in row order).
    /// Pass 2 (rows × column ranges, in the reverse order, so it starts with what pass 1 read
    /// last) sums each run's chunks in order and writes `dL/dx = inv·(ĝ − mean ĝ − x̂·mean(ĝ·x̂))`.
    /// Runs of at most one chunk skip pass 2: pass 1 writes each run's dL/dx right after its
    /// sums, from the first-level cache (the same values as pass 2 would write).
    /// Last, each column's row-block accumulators are added in float64 in row-block order.
    /// Chunks, row blocks and every sum's order are fixed by the shape alone, so the result
    /// does not depend on the thread count.
    public static func backwardRuns(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                    rows: Int, length m: Int, segments: Int,
                                    head: UnsafePointer<Float>, inv: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                    w: UnsafePointer<Float>?, gradW: UnsafeMutablePointer<Float>?, gradB: UnsafeMutablePointer<Float>?) {
        guard rows > 0, m > 0 else { return }
        let len = m / segments
        let chunk = min(len, chunkColumns)
        let perRun = (len + chunk - 1) / chunk
        let perRow = segments * perRun
        let perTile = max(1, tileColumns / chunk)
        let tiles = (perRow + perTile - 1) / perTile
        let rb = paramRowBlock
        let rowBlocks = (rows + rb - 1) / rb
        let wantParams = gradW != nil || gradB != nil
        // Runs of one chunk are finished as soon as their sums are taken: the run is still in
        // the first-level cache, and no second pass or partial sums are needed.
        let fused = perRun == 1
        var panel = rows
        if !fused && rows * m * 8 > panelBytes {
            panel = rb
            while panel > 1 && panel * m * 8 > panelBytes { panel /= 2 }
        }
        let writeUnits = max(1, m / writeColumns)
        // Panels smaller than a row block, and row blocks that share out evenly: each thread
        // takes whole row blocks (on a busy machine, a hand-off between the passes of every
        // panel waits for the slowest thread each time).
        let threads = min(Parallel.threadCount, rowBlocks)
        let byRowBlock = !fused && panel < rb && threads > 1 && rowBlocks % threads == 0
        // Pass 2's output is streamed past the caches when the tensors exceed the last-level
        // cache (``StreamingStores``): no read of gx's lines, and the panel pass 2 re-reads stays cached.
        let streaming = StreamingStores.pay(arrays: 3, count: rows * m)
        let count = Reductions.Divisor(Double(len))
        // Scratch: chunk partials (2 doubles per chunk), then the float32 accumulators (W and B,
        // `m` each per row block; a single row block accumulates straight into the outputs).
        let partialCount = fused ? 0 : 2 * rows * perRow
        let direct = rowBlocks == 1
        let paramCount = wantParams ? 2 * m * rowBlocks : 0
        let partialBytes = (partialCount * 8 + 63) & ~63

        @inline(__always) func chunkRange(_ bi: Int) -> (Int, Int) {
            let s = bi / perRun, start = s * len + (bi % perRun) * chunk
            return (start, min(start + chunk, (s + 1) * len))
        }

        ScratchBuffers.withBuffer(bytes: partialBytes + paramCount * 4) { raw in
            let pp = raw.bindMemory(to: Double.self, capacity: max(partialCount, 1))
            let acc = (raw + partialBytes).bindMemory(to: Float.self, capacity: max(paramCount, 1))
            // Accumulators of row block `b`: W at `accW(b)`, B at `accB(b)`, indexed by column.
            func accW(_ b: Int) -> UnsafeMutablePointer<Float> { direct ? (gradW ?? acc) : acc + b * 2 * m }
            func accB(_ b: Int) -> UnsafeMutablePointer<Float> { direct ? (gradB ?? acc + m) : acc + b * 2 * m + m }

            // Pass 1 for unit `u` of the panel `n0..<n1` (row block `rb0 + u / tiles`, tile `u % tiles`).
            func sumsUnit(_ u: Int, _ n0: Int, _ n1: Int, _ rb0: Int) {
                let b = rb0 + u / tiles, t = u % tiles
                let r0 = max(n0, b * rb), r1 = min(n1, b * rb + rb)
                let k0 = t * perTile, k1 = min(k0 + perTile, perRow)
                let aw: UnsafeMutablePointer<Float>? = wantParams ? accW(b) : nil
                let ab: UnsafeMutablePointer<Float>? = wantParams ? accB(b) : nil
                if let aw, let ab, r0 == b * rb {
                    let c0 = chunkRange(k0).0, c1 = chunkRange(k1 - 1).1
                    (aw + c0).update(repeating: 0, count: c1 - c0)
                    (ab + c0).update(repeating: 0, count: c1 - c0)
                }
                let s0 = k0 / perRun, j0 = k0 % perRun
                // Rows in pairs from the unit's first row (fixed by the shape): one update
                // of the column accumulators per pair.
                var n = r0
                while n < r1 {
                    let pair = wantParams && n + 1 < r1
                    let xr = x + n * m, gr = g + n * m
                    if fused {
                        let ri = n * segments
                        backwardShortRuns(xr, gr, gx + n * m, m, len, k0..<k1, pair,
                                          head + ri, inv + ri, k + ri, w, aw, ab, count)
                        n += pair ? 2 : 1
                        continue
                    }
                    let out = pp + 2 * n * perRow
                    // Chunk `bi` is chunk `j` of segment `s` (no divisions in the loop).
                    var s = s0, j = j0, ri = n * segments + s0
                    for bi in k0..<k1 {
                        let start = s * len + j * chunk, end = min(start + chunk, (s + 1) * len)
                        if pair, let aw, let ab {
                            let r2 = ri + segments
                            let (u, v) = pairBlockSums(xr, gr, xr + m, gr + m, start, end, head[ri], inv[ri], k[ri],
                                                       head[r2], inv[r2], k[r2], w, aw, ab, prefetch: panel < rows)
                            out[2 * bi] = u.0; out[2 * bi + 1] = u.1
                            out[2 * perRow + 2 * bi] = v.0; out[2 * perRow + 2 * bi + 1] = v.1
                        } else {
                            let sums = blockSums(xr, gr, start, end, head[ri], inv[ri], k[ri], w, aw, ab)
                            out[2 * bi] = sums.0
                            out[2 * bi + 1] = sums.1
                        }
                        j += 1
                        if j == perRun { j = 0; s += 1; ri += 1 }
                    }
                    n += pair ? 2 : 1
                }
            }
            // Pass 2 for unit `u` of the panel starting at row `n0` (row `n0 + u / writeUnits`, a column range).
            func writeUnit(_ u: Int, _ n0: Int) {
                let n = n0 + u / writeUnits, q = u % writeUnits
                let lo = m * q / writeUnits, hi = m * (q + 1) / writeUnits
                var s = lo / len
                while s < segments && s * len < hi {
                    var s1 = 0.0, s2 = 0.0
                    let base = 2 * (n * perRow + s * perRun)
                    for j in 0..<perRun { s1 += pp[base + 2 * j]; s2 += pp[base + 2 * j + 1] }
                    let ri = n * segments + s
                    let a = max(lo, s * len), e = min(hi, (s + 1) * len)
                    writeGradient(x + n * m + a, g + n * m + a, gx + n * m + a, e - a, head[ri], inv[ri], k[ri],
                                  w.map { $0 + a }, Float(count.divide(s1)), Float(count.divide(s2)), streaming: streaming)
                    s += 1
                }
            }

            if byRowBlock {
                // Each thread takes whole row blocks, panel by panel, both passes: no hand-off
                // between the passes (the same units, the same arithmetic).
                Parallel.forEach(rowBlocks, work: 5 * rows * m) { range in
                    defer { StreamingStores.fence(streaming) }
                    for b in range {
                        var n0 = b * rb
                        let end = min(rows, n0 + rb)
                        while n0 < end {
                            let n1 = min(n0 + panel, end)
                            for u in 0..<tiles { sumsUnit(u, n0, n1, b) }
                            for u in (0..<((n1 - n0) * writeUnits)).reversed() { writeUnit(u, n0) }
                            n0 = n1
                        }
                    }
                }
            } else {
                var n0 = 0
                while n0 < rows {
                    let n1 = min(n0 + panel, rows)
                    let rb0 = n0 / rb, rb1 = (n1 - 1) / rb + 1
                    Parallel.forEach((rb1 - rb0) * tiles, work: 2 * (n1 - n0) * m) { range in
                        for u in range { sumsUnit(u, n0, n1, rb0) }
                    }
                    if fused { n0 = n1; continue }
                    Parallel.forEach((n1 - n0) * writeUnits, work: 3 * (n1 - n0) * m, descending: true) { range in
                        defer { StreamingStores.fence(streaming) }
                        for u in range.reversed() { writeUnit(u, n0) }
                    }
                    n0 = n1
                }
            }

            // Parameter gradients: the row blocks' float32 sums added in float64, in order.
            guard wantParams, !direct else { return }
            let span = 512
            Parallel.forEach((m + span - 1) / span, work: 2 * rowBlocks * m) { range in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * span) { tmp in
                    let tw = tmp.baseAddress!, tb = tw + span
                    for q in range {
                        let c0 = q * span, width = min(span, m - c0)
                        for i in 0..<width { tw[i] = 0; tb[i] = 0 }
                        for b in 0..<rowBlocks {
                            let pw = acc + b * 2 * m + c0, pb = pw + m
                            for i in 0..<width { tw[i] += Double(pw[i]); tb[i] += Double(pb[i]) }
                        }
                        if let gradW { for i in 0..<width { gradW[c0 + i] = Float(tw[i]) } }
                        if let gradB { for i in 0..<width { gradB[c0 + i] = Float(tb[i]) } }
                    }
                }
            }
        }
    }

    /// The fused backward of runs `runs` of one row, or of two consecutive rows when `pair`,
    /// for runs of at most one chunk: each run's ``blockSums(_:_:_:_:_:_:_:_:_:_:)`` (or
    /// ``pairBlockSums(_:_:_:_:_:_:_:_:_:_:_:_:_:_:_:)``), then its dL/dx written while the run
    /// is in the first-level cache — the values the second pass would write (`0 + Σ` first).
    /// `head`, `inv`, `k` point at the row's first run.
    @inline(never)
    static func backwardShortRuns(_ xr: UnsafePointer<Float>, _ gr: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                  _ m: Int, _ len: Int, _ runs: Range<Int>, _ pair: Bool,
                                  _ head: UnsafePointer<Float>, _ inv: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                                  _ w: UnsafePointer<Float>?, _ accW: UnsafeMutablePointer<Float>?, _ accB: UnsafeMutablePointer<Float>?,
                                  _ count: Reductions.Divisor) {
        let segments = m / len
        for s in runs {
            let start = s * len, end = start + len
            let wr = w.map { $0 + start }
            if pair, let accW, let accB {
                let r2 = s + segments
                let (u, v) = pairBlockSums(xr, gr, xr + m, gr + m, start, end, head[s], inv[s], k[s],
                                           head[r2], inv[r2], k[r2], w, accW, accB)
                writeGradient(xr + start, gr + start, out + start, len, head[s], inv[s], k[s], wr,
                              Float(count.divide(0.0 + u.0)), Float(count.divide(0.0 + u.1)))
                writeGradient(xr + m + start, gr + m + start, out + m + start, len, head[r2], inv[r2], k[r2], wr,
                              Float(count.divide(0.0 + v.0)), Float(count.divide(0.0 + v.1)))
            } else {
                let sums = blockSums(xr, gr, start, end, head[s], inv[s], k[s], w, accW, accB)
                writeGradient(xr + start, gr + start, out + start, len, head[s], inv[s], k[s], wr,
                              Float(count.divide(0.0 + sums.0)), Float(count.divide(0.0 + sums.1)))
            }
        }
    }

    /// `(Σ ĝ, Σ ĝ·x̂)` over `[start, end)` of one row; with the float32 parameter-gradient
    /// accumulators `accW`, `accB` (indexed by column) also adds `g·x̂` and `g` to them.
    /// Chunks of at most ``shortGradientChunk`` values are summed in 4 lanes, others in 8.
    @inline(__always)
    static func blockSums(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ start: Int, _ end: Int,
                          _ h: Float, _ iv: Float, _ kk: Float, _ w: UnsafePointer<Float>?,
                          _ accW: UnsafeMutablePointer<Float>?, _ accB: UnsafeMutablePointer<Float>?) -> (Double, Double) {
        end - start <= shortGradientChunk
            ? blockSums(SIMD4<Float>.self, xp, gp, start, end, h, iv, kk, w, accW, accB)
            : blockSums(SIMD8<Float>.self, xp, gp, start, end, h, iv, kk, w, accW, accB)
    }

    /// ``blockSums(_:_:_:_:_:_:_:_:_:_:)`` in vectors of `V`: one accumulator per sum, its
    /// lanes added at the end, then the values past the last whole vector in `Double`.
    @inline(__always)
    static func blockSums<V: FloatLanes>(_: V.Type, _ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ start: Int, _ end: Int,
                                         _ h: Float, _ iv: Float, _ kk: Float, _ w: UnsafePointer<Float>?,
                                         _ accW: UnsafeMutablePointer<Float>?, _ accB: UnsafeMutablePointer<Float>?) -> (Double, Double) {
        let hv = V(repeating: h), ivv = V(repeating: iv), kv = V(repeating: kk)
        var a = V(), c = V()
        var i = start
        while i + V.scalarCount <= end {
            let graw = UnsafeRawPointer(gp + i).loadUnaligned(as: V.self)
            var gv = graw
            if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: V.self) }
            let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: V.self) - hv) * ivv - kv
            a += gv; c += gv * xh
            if let accW, let accB {
                let cw = UnsafeRawPointer(accW + i).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(accW + i).storeBytes(of: cw + graw * xh, as: V.self)
                let cb = UnsafeRawPointer(accB + i).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(accB + i).storeBytes(of: cb + graw, as: V.self)
            }
            i += V.scalarCount
        }
        var t1 = Double(a.laneSum), t2 = Double(c.laneSum)
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

    /// ``blockSums(_:_:_:_:_:_:_:_:_:_:)`` of two rows (`x0`, `g0` and `x1`, `g1`, each with its
    /// own terms): each row's sums exactly as for one row; the accumulators get
    /// `g0·x̂0 + g1·x̂1` and `g0 + g1` in one update.
    @inline(__always)
    static func pairBlockSums(_ x0: UnsafePointer<Float>, _ g0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ g1: UnsafePointer<Float>,
                              _ start: Int, _ end: Int, _ h0: Float, _ iv0: Float, _ kk0: Float, _ h1: Float, _ iv1: Float, _ kk1: Float,
                              _ w: UnsafePointer<Float>?, _ accW: UnsafeMutablePointer<Float>, _ accB: UnsafeMutablePointer<Float>,
                              prefetch: Bool = false)
        -> ((Double, Double), (Double, Double)) {
        end - start <= shortGradientChunk
            ? pairBlockSums(SIMD4<Float>.self, x0, g0, x1, g1, start, end, h0, iv0, kk0, h1, iv1, kk1, w, accW, accB, prefetch: false)
            : pairBlockSums(SIMD8<Float>.self, x0, g0, x1, g1, start, end, h0, iv0, kk0, h1, iv1, kk1, w, accW, accB, prefetch: prefetch)
    }

    /// Floats ahead of the pair pass's loads that it asks for (one hint per row and 64-byte line)
    /// when the rows come from memory (panelled: more rows than the last-level cache panel holds;
    /// for rows already cached the hints only cost, 12 % at (8, 256, 14, 14)).
    @usableFromInline static let pairPrefetchDistance = 1024

    /// ``pairBlockSums(_:_:_:_:_:_:_:_:_:_:_:_:_:_:_:)`` in vectors of `V`.
    @inline(__always)
    static func pairBlockSums<V: FloatLanes>(_: V.Type, _ x0: UnsafePointer<Float>, _ g0: UnsafePointer<Float>,
                                             _ x1: UnsafePointer<Float>, _ g1: UnsafePointer<Float>, _ start: Int, _ end: Int,
                                             _ h0: Float, _ iv0: Float, _ kk0: Float, _ h1: Float, _ iv1: Float, _ kk1: Float,
                                             _ w: UnsafePointer<Float>?, _ accW: UnsafeMutablePointer<Float>, _ accB: UnsafeMutablePointer<Float>,
                                             prefetch: Bool)
        -> ((Double, Double), (Double, Double)) {
        let hv0 = V(repeating: h0), ivv0 = V(repeating: iv0), kv0 = V(repeating: kk0)
        let hv1 = V(repeating: h1), ivv1 = V(repeating: iv1), kv1 = V(repeating: kk1)
        var a0 = V(), c0 = V(), a1 = V(), c1 = V()
        var i = start
        while i + V.scalarCount <= end {
            if prefetch && i & 15 == 0 {
                let d = i + pairPrefetchDistance
                nk_prefetch_read(x0 + d); nk_prefetch_read(x1 + d); nk_prefetch_read(g0 + d); nk_prefetch_read(g1 + d)
            }
            let gr0 = UnsafeRawPointer(g0 + i).loadUnaligned(as: V.self)
            let gr1 = UnsafeRawPointer(g1 + i).loadUnaligned(as: V.self)
            var gv0 = gr0, gv1 = gr1
            if let w {
                let wv = UnsafeRawPointer(w + i).loadUnaligned(as: V.self)
                gv0 *= wv; gv1 *= wv
            }
            let xh0 = (UnsafeRawPointer(x0 + i).loadUnaligned(as: V.self) - hv0) * ivv0 - kv0
            let xh1 = (UnsafeRawPointer(x1 + i).loadUnaligned(as: V.self) - hv1) * ivv1 - kv1
            a0 += gv0; c0 += gv0 * xh0
            a1 += gv1; c1 += gv1 * xh1
            let cw = UnsafeRawPointer(accW + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(accW + i).storeBytes(of: cw + (gr0 * xh0 + gr1 * xh1), as: V.self)
            let cb = UnsafeRawPointer(accB + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(accB + i).storeBytes(of: cb + (gr0 + gr1), as: V.self)
            i += V.scalarCount
        }
        var t01 = Double(a0.laneSum), t02 = Double(c0.laneSum)
        var t11 = Double(a1.laneSum), t12 = Double(c1.laneSum)
        while i < end {
            let gr0 = g0[i], gr1 = g1[i], wi = w?[i] ?? 1
            let gv0 = gr0 * wi, gv1 = gr1 * wi
            let xh0 = (x0[i] - h0) * iv0 - kk0, xh1 = (x1[i] - h1) * iv1 - kk1
            t01 += Double(gv0); t02 += Double(gv0 * xh0)
            t11 += Double(gv1); t12 += Double(gv1 * xh1)
            accW[i] += gr0 * xh0 + gr1 * xh1; accB[i] += gr0 + gr1
            i += 1
        }
        return ((t01, t02), (t11, t12))
    }

    /// `gx = inv·(ĝ − m1 − x̂·m2)` over one run; `streaming`: non-temporal stores
    /// (``StreamingStores``, the same values; the caller fences).
    @inline(__always)
    static func writeGradient(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, _ len: Int,
                              _ h: Float, _ iv: Float, _ kk: Float, _ w: UnsafePointer<Float>?, _ m1: Float, _ m2: Float,
                              streaming: Bool = false) {
        let hv = SIMD16<Float>(repeating: h), ivv = SIMD16<Float>(repeating: iv), kv = SIMD16<Float>(repeating: kk)
        let m1v = SIMD16<Float>(repeating: m1), m2v = SIMD16<Float>(repeating: m2)
        var i = 0
        if streaming {
            let head = StreamingStores.unalignedHead(op, len)
            while i < head {
                let gv = gp[i] * (w?[i] ?? 1)
                let xh = (xp[i] - h) * iv - kk
                op[i] = iv * (gv - m1 - xh * m2)
                i += 1
            }
        }
        while i + 16 <= len {
            var gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
            if let w { gv *= UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self) }
            let xh = (UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - hv) * ivv - kv
            StreamingStores.store(ivv * (gv - m1v - xh * m2v), at: op + i, streaming: streaming)
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
