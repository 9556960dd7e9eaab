import NormKernelsC
/// Elementwise passes over the `N·C` planes of an `(N, C, S)` tensor, each plane with
/// its own coefficients. Written with `SIMD16<Float>`; split across threads by plane.
///
/// Coefficient arrays are indexed by `p % period`: `period = planes` for one coefficient
/// per plane, `period = C` for one per channel (BatchNorm), without per-plane arrays.
public enum PlaneKernels {
    /// The order a pass visits the planes in. A pass that follows a reduction pass over the
    /// same data visits the planes in the reverse of the reduction's order (parts handed out
    /// from the end, each walked backwards), so it starts with the data the reduction read
    /// last, which is still in the last-level cache.
    public enum Order: Sendable, Equatable {
        /// `0, 1, …`.
        case forward
        /// The reverse of `forward`, within each thread's range.
        case reverse
        /// The reverse of a channel-major walk (channel `c` for all `n`, then `c + 1`, …), as
        /// BatchNorm's per-channel reductions walk.
        case channelMajorReverse(channels: Int)
    }

    /// Calls `body(plane)` for every plane in `order`, split across threads.
    @inline(__always)
    static func forEachPlane(_ planes: Int, work: Int, order: Order, _ body: (Int) -> Void) {
        switch order {
        case .forward:
            Parallel.forEach(planes, work: work) { range in for p in range { body(p) } }
        case .reverse:
            Parallel.forEach(planes, work: work, descending: true) { range in for p in range.reversed() { body(p) } }
        case let .channelMajorReverse(c):
            let n = planes / c
            Parallel.forEach(c, work: work, descending: true) { range in
                for ch in range.reversed() {
                    var p = (n - 1) * c + ch
                    for _ in 0..<n { body(p); p -= c }
                }
            }
        }
    }
    /// `y = (x − mu[p]) · scale[p] + shift[p]`, then `max(y, floor[p])` when `floor` is given
    /// (FRN's TLU).
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int,
                              mu: [Float], scale: [Float], shift: [Float], floor: [Float]? = nil) {
        if let floor {
            affine(x: x, y: y, planes: planes, length: length, period: planes, mu: mu, scale: scale, shift: shift, floor: floor,
                   order: .reverse)
        } else {
            affine(x: x, y: y, planes: planes, length: length, period: planes, mu: mu, scale: scale, shift: shift, floor: nil,
                   order: .reverse)
        }
    }

    /// ``affine(x:y:planes:length:mu:scale:shift:floor:)`` with coefficients indexed by
    /// `p % period`, visiting the planes in `order`.
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int, period: Int,
                              mu: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                              floor: UnsafePointer<Float>?, order: Order = .forward) {
        forEachPlane(planes, work: planes * length, order: order) { p in
            let u = period == planes ? p : p % period
            affinePlane(x + p * length, y + p * length, length, mu[u], scale[u], shift[u], floor?[u])
        }
    }

    @inline(__always)
    static func affinePlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                            _ mu: Float, _ s: Float, _ t: Float, _ floor: Float?) {
        let mv = SIMD16<Float>(repeating: mu), sv = SIMD16<Float>(repeating: s), tv = SIMD16<Float>(repeating: t)
        var i = 0
        if let f = floor {
            // max(v, f) as `Swift.max` computes it (`f >= v ? f : v`: NaN stays NaN), lane-wise.
            let fv = SIMD16<Float>(repeating: f)
            while i + 16 <= n {
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: v.replacing(with: fv, where: fv .>= v), as: SIMD16<Float>.self)
                i += 16
            }
            while i < n { y[i] = Swift.max((x[i] - mu) * s + t, f); i += 1 }
        } else {
            while i + 16 <= n {
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD16<Float>.self)
                i += 16
            }
            while i < n { y[i] = (x[i] - mu) * s + t; i += 1 }
        }
    }

    /// Most runs in a block of the fused kernels.
    @usableFromInline static let maxBlockRuns = 32

    /// Runs per block of the fused kernels: a block's reductions are taken first (independent
    /// chains the CPU overlaps), then its per-run float64 terms (divisions, square roots, also
    /// independent), then its outputs, while its values are still in the L1/L2 cache.
    @inline(__always)
    static func runsPerBlock(_ length: Int, budget: Int = 4096) -> Int { max(1, min(maxBlockRuns, budget / max(length, 1))) }

    /// Calls `body(r0, r1, scratch)` for consecutive blocks of runs (`block` runs each), blocks
    /// split across threads; `scratch` holds `4 · maxBlockRuns` doubles for the block's terms.
    @inline(__always)
    static func forEachBlock(_ runs: Int, block: Int, work: Int, _ body: (Int, Int, UnsafeMutablePointer<Double>) -> Void) {
        Parallel.forEach(runs, work: work) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 4 * maxBlockRuns) { tmp in
                let t = tmp.baseAddress!
                var r0 = range.lowerBound
                while r0 < range.upperBound {
                    let r1 = min(r0 + block, range.upperBound)
                    body(r0, r1, t)
                    r0 = r1
                }
            }
        }
    }

    /// Mean and M2 (``Reductions/contiguousMoments(_:length:)``, the same arithmetic) of the
    /// runs `r0..<r1` of `length` values at `x + r·length` into `t[i]`, `t[maxBlockRuns + i]`:
    /// all the block's sums first, then the divisions.
    @inline(__always)
    static func blockMoments(_ x: UnsafePointer<Float>, _ r0: Int, _ r1: Int, _ length: Int, _ t: UnsafeMutablePointer<Double>) {
        let nb = r1 - r0, S = maxBlockRuns
        if length <= Reductions.block {
            // The path chosen once per block, so each loop holds one kind of summation.
            if length <= Reductions.shortRun {
                var i = 0
                while i + 2 <= nb {
                    let p = x + (r0 + i) * length
                    let (u, v) = Reductions.shortRunSumsPair(p, p + length, length: length)
                    t[i] = Double(u.pilot); t[S + i] = u.s1; t[2 * S + i] = u.s2
                    t[i + 1] = Double(v.pilot); t[S + i + 1] = v.s1; t[2 * S + i + 1] = v.s2
                    i += 2
                }
                if i < nb {
                    let (k, s1, s2) = Reductions.shortRunSums(x + (r0 + i) * length, length: length)
                    t[i] = Double(k); t[S + i] = s1; t[2 * S + i] = s2
                }
            } else {
                for i in 0..<nb {
                    let (k, s1, s2) = Reductions.longRunSums(x + (r0 + i) * length, length: length)
                    t[i] = Double(k); t[S + i] = s1; t[2 * S + i] = s2
                }
            }
            let n = Reductions.Divisor(Double(length))
            for i in 0..<nb {
                let (m, m2) = Reductions.finishMoments(pilot: Float(t[i]), s1: t[S + i], s2: t[2 * S + i], count: n)
                t[i] = m; t[S + i] = m2
            }
        } else {
            for i in 0..<nb {
                let (m, m2) = Reductions.moments(x + (r0 + i) * length, segments: 1, stride: 0, length: length)
                t[i] = m; t[S + i] = m2
            }
        }
    }

    /// The moments of `runs` contiguous runs of `length` values (run `r` at `x + r·length`),
    /// handed out a block of runs at a time while the block is cached: for every block
    /// (``runsPerBlock(_:budget:)`` runs, blocks split across threads)
    /// `body(r0, r1, mean, m2)` gets run `r`'s mean in `mean[r − r0]` and its M2 in `m2[r − r0]`
    /// (``blockMoments(_:_:_:_:_:)``: the arithmetic of ``Reductions/contiguousMoments(_:length:)``).
    /// For a layer that fuses its own per-run output pass with the shared statistics (EvoNorm-S0):
    /// the sums are compiled here, in 8-lane registers, rather than inlined into the caller's
    /// closure (there the compiler split the accumulators into 2-lane pieces, half the speed).
    /// `work` is the elements the caller's whole pass touches (``Parallel/forEach(_:work:descending:_:)``).
    public static func forEachRunBlock(x: UnsafePointer<Float>, runs: Int, length: Int, work: Int,
                                       _ body: (_ r0: Int, _ r1: Int, _ mean: UnsafePointer<Double>, _ m2: UnsafePointer<Double>) -> Void) {
        forEachBlock(runs, block: runsPerBlock(length), work: work) { r0, r1, t in
            blockMoments(x, r0, r1, length, t)
            body(r0, r1, t, t + maxBlockRuns)
        }
    }

    /// Fused forward with statistics of the input (GroupNorm, InstanceNorm): `runs` contiguous
    /// runs of `length` values, each normalized with its own mean and biased variance, each
    /// made of `length / segment` segments of `segment` values with per-channel affine
    /// coefficients (segment `j` of run `r` is channel `(r·length/segment + j) % channels`).
    ///
    /// For every block of runs (blocks split across threads): the shifted-data moments
    /// (``Reductions/contiguousMoments(_:length:)``), `mean[r]`, `variance[r] = M2/length`,
    /// `invstd[r] = 1/√(variance + eps)`; then, while the runs are cached,
    /// `y = (x − head)·scale + shift` per segment with `head = Float(mean)`,
    /// `scale = invstd·w_c` and `shift = b_c − (mean − head)·scale` (`w = 1`, `b = 0` when absent).
    public static func normalizeRuns(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, runs: Int, length: Int,
                                     segment: Int, channels: Int, eps: Double,
                                     weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                                     mean: UnsafeMutablePointer<Double>, variance: UnsafeMutablePointer<Double>,
                                     invstd: UnsafeMutablePointer<Double>) {
        let segs = length / segment, size = Reductions.Divisor(Double(length)), S = maxBlockRuns
        forEachBlock(runs, block: runsPerBlock(length), work: runs * length) { r0, r1, t in
            blockMoments(x, r0, r1, length, t)
            for r in r0..<r1 {
                let v = size.divide(t[S + r - r0])
                mean[r] = t[r - r0]; variance[r] = v; invstd[r] = 1 / (v + eps).squareRoot()
            }
            var c = (r0 * segs) % channels
            var off = r0 * length
            for r in r0..<r1 {
                let mu = mean[r], iv = invstd[r]
                let head = Float(mu), tail = mu - Double(head)
                for _ in 0..<segs {
                    let sc = iv * (weight.map { Double($0[c]) } ?? 1)
                    let b = bias.map { Double($0[c]) } ?? 0
                    affinePlane(x + off, y + off, segment, head, Float(sc), Float(b - tail * sc), nil)
                    off += segment
                    c += 1
                    if c == channels { c = 0 }
                }
            }
        }
    }

    /// Backward of ``normalizeRuns(x:y:runs:length:segment:channels:eps:weight:bias:mean:variance:invstd:)``
    /// (batch statistics, gradient through them), fused per block of runs: every segment's
    /// `Σ g` → `sumG[p]` and `Σ g·(x − mean)` → `sumGX[p]` (taken about `head = Float(mean)`,
    /// then corrected by the tail), the run's `s1 = Σ w_c·Σg`, `s2 = Σ w_c·invstd·Σg(x − mean)`,
    /// and, while the runs are cached, `dL/dx = a·g + b·(x − head) + c` with `a = invstd·w_c`,
    /// `b = −invstd²·s2/length`, `c = −invstd·s1/length − b·(mean − head)`.
    /// `p = r·length/segment + j` indexes segments; the per-channel parameter gradients are
    /// left to the caller (sums over `sumG`, `sumGX` in a fixed order).
    public static func normalizeRunsBackward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                             runs: Int, length: Int, segment: Int, channels: Int,
                                             mean: UnsafePointer<Double>, invstd: UnsafePointer<Double>,
                                             weight: UnsafePointer<Float>?,
                                             sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>) {
        let segs = length / segment, size = Reductions.Divisor(Double(length)), S = maxBlockRuns
        let streaming = StreamingStores.pay(arrays: 3, count: runs * length)
        forEachBlock(runs, block: runsPerBlock(length, budget: 2048), work: 2 * runs * length) { r0, r1, t in
            var c = (r0 * segs) % channels
            var p = r0 * segs
            for r in r0..<r1 {
                let mu = mean[r], iv = invstd[r]
                let head = Float(mu), tail = mu - Double(head)
                var s1 = 0.0, s2 = 0.0
                for _ in 0..<segs {
                    let off = p * segment
                    let (a, b) = Reductions.runGradientSums(x: x + off, g: g + off, length: segment, mu: head)
                    let bc = b - tail * a
                    sumG[p] = a; sumGX[p] = bc
                    let gain = weight.map { Double($0[c]) } ?? 1
                    s1 += gain * a
                    s2 += gain * iv * bc
                    p += 1; c += 1
                    if c == channels { c = 0 }
                }
                t[r - r0] = s1; t[S + r - r0] = s2
            }
            for r in r0..<r1 {
                let mu = mean[r], iv = invstd[r]
                let tail = mu - Double(Float(mu))
                let bb = size.divide(-iv * iv * t[S + r - r0])
                t[2 * S + r - r0] = Double(Float(size.divide(-iv * t[r - r0]) - bb * tail))
                t[3 * S + r - r0] = Double(Float(bb))
            }
            c = (r0 * segs) % channels
            p = r0 * segs
            for r in r0..<r1 {
                let iv = invstd[r], head = Float(mean[r])
                let cc = Float(t[2 * S + r - r0]), bv = Float(t[3 * S + r - r0])
                for _ in 0..<segs {
                    let av = Float(iv * (weight.map { Double($0[c]) } ?? 1))
                    let off = p * segment
                    linearPlane(x + off, g + off, gx + off, segment, head, av, bv, cc, streaming: streaming)
                    p += 1; c += 1
                    if c == channels { c = 0 }
                }
            }
            StreamingStores.fence(streaming)
        }
    }

    /// `out = a·g + b·(x − mu) + c` over one plane; `streaming`: non-temporal stores
    /// (``StreamingStores``), the same values; `prefetch`: the planes to request while this
    /// one is computed (one hint per 16 values; a write hint measured no faster).
    @inline(__always)
    static func linearPlane(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, _ n: Int,
                            _ m: Float, _ av: Float, _ bv: Float, _ cv: Float, streaming: Bool = false,
                            prefetch: (x: UnsafePointer<Float>, g: UnsafePointer<Float>)? = nil) {
        let mv = SIMD16<Float>(repeating: m), aa = SIMD16<Float>(repeating: av)
        let bb = SIMD16<Float>(repeating: bv), cc = SIMD16<Float>(repeating: cv)
        var i = 0
        if streaming {
            let head = StreamingStores.unalignedHead(op, n)
            while i < head { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
        }
        while i + 16 <= n {
            if let prefetch { nk_prefetch_read(prefetch.x + i); nk_prefetch_read(prefetch.g + i) }
            let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
            let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - mv
            StreamingStores.store(aa * gv + bb * xv + cc, at: op + i, streaming: streaming)
            i += 16
        }
        while i < n { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
    }

    /// Per plane `(Σ g, Σ g·(x − mu[p]))`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int,
                                    mu: [Float]) -> (sumG: [Double], sumGX: [Double]) {
        var sg = [Double](repeating: 0, count: planes), sgx = [Double](repeating: 0, count: planes)
        sg.withUnsafeMutableBufferPointer { sg in sgx.withUnsafeMutableBufferPointer { sgx in
            gradientSums(x: x, g: g, planes: planes, length: length, period: planes, mu: mu, sumG: sg.baseAddress!, sumGX: sgx.baseAddress!)
        }}
        return (sg, sgx)
    }

    /// Per plane `(Σ g, Σ g·(x − mu[p % period]))` into `sumG`, `sumGX` (length `planes`).
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int, period: Int,
                                    mu: UnsafePointer<Float>, sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>) {
        Parallel.forEach(planes, work: 2 * planes * length) { range in
            var u = range.lowerBound % period
            for p in range {
                let (a, b) = Reductions.gradientSums(x: x + p * length, g: g + p * length, length: length, mu: mu[u])
                sumG[p] = a; sumGX[p] = b
                u += 1
                if u == period { u = 0 }
            }
        }
    }

    /// `gx = a[p]·g + b[p]·(x − mu[p]) + c[p]`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         planes: Int, length: Int, mu: [Float], a: [Float], b: [Float], c: [Float]) {
        linearCombination(x: x, g: g, out: out, planes: planes, length: length, period: planes, mu: mu, a: a, b: b, c: c,
                          order: .reverse)
    }

    /// ``linearCombination(x:g:out:planes:length:mu:a:b:c:)`` with coefficients indexed by
    /// `p % period`, visiting the planes in `order`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         planes: Int, length: Int, period: Int, mu: UnsafePointer<Float>,
                                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>,
                                         order: Order = .forward) {
        forEachPlane(planes, work: 3 * planes * length, order: order) { p in
            let xp = x + p * length, gp = g + p * length, op = out + p * length
            let u = period == planes ? p : p % period
            let m = mu[u], av = a[u], bv = b[u], cv = c[u]
            let mv = SIMD16<Float>(repeating: m), aa = SIMD16<Float>(repeating: av)
            let bb = SIMD16<Float>(repeating: bv), cc = SIMD16<Float>(repeating: cv)
            var i = 0
            while i + 16 <= length {
                let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - mv
                UnsafeMutableRawPointer(op + i).storeBytes(of: aa * gv + bb * xv + cc, as: SIMD16<Float>.self)
                i += 16
            }
            while i < length { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
        }
    }
}
