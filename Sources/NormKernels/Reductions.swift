import NormKernelsC

/// SIMD reductions the normalization layers are built from.
///
/// Statistics are numerically sound for inputs whose mean is far larger than their
/// spread: values are shifted by a pilot value (the first element) before squaring,
/// accumulated in float32 SIMD lanes over short blocks, and the block sums are added in
/// `Double` ("shifted data" algorithm with blocked float64 accumulation).
///
/// A block holds at most ``block`` values, counted across segments: short segments (the
/// `N` runs of one BatchNorm channel, or many small planes) share a block instead of each
/// paying a horizontal sum. Values that do not fill a whole SIMD step (segment tails) are
/// added in `Double` directly.
public enum Reductions {
    /// Elements per float32 block before flushing to float64.
    @usableFromInline static let block = 2048

    /// Sum of the 16 lanes as a balanced tree (8 + 8, 4 + 4, then pairs): a fixed order, and
    /// a few shuffles instead of `sum()`'s 15 dependent additions.
    @inlinable @inline(__always)
    public static func hsum(_ v: SIMD16<Float>) -> Float {
        let h = v.lowHalf + v.highHalf
        let q = h.lowHalf + h.highHalf
        return (q[0] + q[2]) + (q[1] + q[3])
    }

    /// ``hsum(_:)`` for 8 lanes.
    @inlinable @inline(__always)
    public static func hsum(_ v: SIMD8<Float>) -> Float {
        let q = v.lowHalf + v.highHalf
        return (q[0] + q[2]) + (q[1] + q[3])
    }

    /// ``hsum(_:)`` for 4 lanes: `(q0 + q2) + (q1 + q3)`.
    ///
    /// The compiler turns a horizontal sum into scalar additions of every lane of the vectors
    /// it is built from (all the way up to the loop's accumulators), so for short runs the
    /// kernels accumulate in a single 4-lane vector per sum (``shortRun``).
    @inlinable @inline(__always)
    public static func hsum(_ q: SIMD4<Float>) -> Float {
        (q[0] + q[2]) + (q[1] + q[3])
    }

    /// Runs up to this long are summed in one 4-lane float32 vector per sum (at most 64 values
    /// per lane, as the longer path's 2048-value blocks in 16 lanes put 128 in each): the
    /// horizontal sums that end a short run cost as much as the run itself in 16 lanes.
    @usableFromInline static let shortRun = 256

    /// Mean and sum of squared deviations (M2) over `segments` runs of `length` floats,
    /// `stride` apart, starting at `base`.
    @inlinable
    public static func moments(_ base: UnsafePointer<Float>, segments: Int, stride: Int, length: Int) -> (mean: Double, m2: Double) {
        moments(base, segments: segments, stride: stride, length: length, prefetchingNextSegment: false)
    }

    /// ``moments(_:segments:stride:length:)``, optionally asking for the next segment's cache
    /// lines while one is summed (one hint per 16 values): segments far apart (a BatchNorm
    /// channel's planes, `C·S` values apart) each start a new stream that the hardware
    /// prefetcher would only pick up after several misses. The same values either way.
    @inlinable @inline(__always)
    public static func moments(_ base: UnsafePointer<Float>, segments: Int, stride: Int, length: Int,
                               prefetchingNextSegment prefetch: Bool) -> (mean: Double, m2: Double) {
        let n = segments * length
        guard n > 0 else { return (.nan, .nan) }
        if segments == 1, length <= block { return runMoments(base, length: length) }
        let k = base[0]
        // 8-lane vectors: four accumulators, the pilot and two loads fit in 16 SSE registers.
        let kv = SIMD8<Float>(repeating: k)
        var s1 = 0.0, s2 = 0.0
        var a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var filled = 0
        for seg in 0..<segments {
            let p = base + seg * stride
            let ahead = seg + 1 < segments ? p + stride : p
            var i = 0
            while i < length {
                let end = i + min(length - i, block - filled)
                filled += end - i
                while i + 16 <= end {
                    if prefetch { nk_prefetch_read(ahead + i) }
                    let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) - kv
                    let v = UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self) - kv
                    a1 += u; a2 += u * u
                    b1 += v; b2 += v * v
                    i += 16
                }
                while i < end { let u = Double(p[i] - k); s1 += u; s2 += u * u; i += 1 }
                if filled == block {
                    s1 += Double(hsum(a1 + b1)); s2 += Double(hsum(a2 + b2))
                    a1 = SIMD8<Float>(); a2 = a1; b1 = a1; b2 = a1
                    filled = 0
                }
            }
        }
        s1 += Double(hsum(a1 + b1)); s2 += Double(hsum(a2 + b2))
        let dn = Double(n)
        let meanShift = s1 / dn
        return (Double(k) + meanShift, max(s2 - s1 * meanShift, 0))
    }

    /// ``moments(_:segments:stride:length:)`` of one run of at most ``block`` values (one
    /// float32 block): the same arithmetic without the segment and block bookkeeping, for the
    /// many short runs of GroupNorm / InstanceNorm / FRN planes.
    @inlinable @inline(__always)
    public static func runMoments(_ p: UnsafePointer<Float>, length: Int) -> (mean: Double, m2: Double) {
        let (k, s1, s2) = runSums(p, length: length)
        return finishMoments(pilot: k, s1: s1, s2: s2, count: Double(length))
    }

    /// ``moments(_:segments:stride:length:)`` of one contiguous run of any length, inlined
    /// into the caller (the fused per-run kernels call it once per run).
    @inlinable @inline(__always)
    public static func contiguousMoments(_ p: UnsafePointer<Float>, length: Int) -> (mean: Double, m2: Double) {
        length <= block ? runMoments(p, length: length) : moments(p, segments: 1, stride: 0, length: length)
    }

    /// The raw sums of ``runMoments(_:length:)`` (run of at most ``block`` values): the pilot
    /// `k = p[0]`, `Σ (x − k)` and `Σ (x − k)²`; ``finishMoments(pilot:s1:s2:count:)`` turns
    /// them into the mean and M2. Split so that a kernel can take the sums of several runs
    /// before the divisions (independent chains, overlapped by the CPU).
    @inlinable @inline(__always)
    public static func runSums(_ p: UnsafePointer<Float>, length: Int) -> (pilot: Float, s1: Double, s2: Double) {
        length <= shortRun ? shortRunSums(p, length: length) : longRunSums(p, length: length)
    }

    /// ``runSums(_:length:)`` of a run of at most ``shortRun`` values: one 4-lane accumulator per sum.
    @inlinable @inline(__always)
    public static func shortRunSums(_ p: UnsafePointer<Float>, length: Int) -> (pilot: Float, s1: Double, s2: Double) {
        let k = p[0]
        let kv = SIMD4<Float>(repeating: k)
        var a = SIMD4<Float>(), b = SIMD4<Float>()
        var i = 0
        while i + 4 <= length {
            let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Float>.self) - kv
            a += u; b += u * u
            i += 4
        }
        var s1 = 0.0, s2 = 0.0
        while i < length { let u = Double(p[i] - k); s1 += u; s2 += u * u; i += 1 }
        s1 += Double(hsum(a)); s2 += Double(hsum(b))
        return (k, s1, s2)
    }

    /// ``shortRunSums(_:length:)`` of two runs in one loop (two independent chains of adds
    /// the CPU overlaps): each run's result is the same as on its own.
    @inlinable @inline(__always)
    public static func shortRunSumsPair(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, length: Int)
        -> (first: (pilot: Float, s1: Double, s2: Double), second: (pilot: Float, s1: Double, s2: Double)) {
        let kp = p[0], kq = q[0]
        let kvp = SIMD4<Float>(repeating: kp), kvq = SIMD4<Float>(repeating: kq)
        var a = SIMD4<Float>(), b = a, c = a, d = a
        var i = 0
        while i + 4 <= length {
            let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Float>.self) - kvp
            let v = UnsafeRawPointer(q + i).loadUnaligned(as: SIMD4<Float>.self) - kvq
            a += u; b += u * u
            c += v; d += v * v
            i += 4
        }
        var s1 = 0.0, s2 = 0.0, t1 = 0.0, t2 = 0.0
        while i < length {
            let u = Double(p[i] - kp); s1 += u; s2 += u * u
            let v = Double(q[i] - kq); t1 += v; t2 += v * v
            i += 1
        }
        s1 += Double(hsum(a)); s2 += Double(hsum(b))
        t1 += Double(hsum(c)); t2 += Double(hsum(d))
        return ((kp, s1, s2), (kq, t1, t2))
    }

    /// ``runSums(_:length:)`` of a run of ``shortRun`` to ``block`` values: 16 lanes.
    @inlinable @inline(__always)
    public static func longRunSums(_ p: UnsafePointer<Float>, length: Int) -> (pilot: Float, s1: Double, s2: Double) {
        let k = p[0]
        let kv = SIMD8<Float>(repeating: k)
        var a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var i = 0
        while i + 16 <= length {
            let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) - kv
            let v = UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self) - kv
            a1 += u; a2 += u * u
            b1 += v; b2 += v * v
            i += 16
        }
        var s1 = 0.0, s2 = 0.0
        while i < length { let u = Double(p[i] - k); s1 += u; s2 += u * u; i += 1 }
        s1 += Double(hsum(a1 + b1)); s2 += Double(hsum(a2 + b2))
        return (k, s1, s2)
    }

    /// Mean and M2 from ``runSums(_:length:)`` over `count` values (the end of
    /// ``runMoments(_:length:)``: the same result).
    @inlinable @inline(__always)
    public static func finishMoments(pilot k: Float, s1: Double, s2: Double, count: Double) -> (mean: Double, m2: Double) {
        finishMoments(pilot: k, s1: s1, s2: s2, count: Divisor(count))
    }

    /// ``finishMoments(pilot:s1:s2:count:)`` with the count as a ``Divisor``.
    @inlinable @inline(__always)
    public static func finishMoments(pilot k: Float, s1: Double, s2: Double, count: Divisor) -> (mean: Double, m2: Double) {
        let meanShift = count.divide(s1)
        return (Double(k) + meanShift, max(s2 - s1 * meanShift, 0))
    }

    /// Division by a fixed positive count, taken as a multiplication when the count is a power
    /// of two: `x · 2⁻ᵏ` and `x / 2ᵏ` are both the correctly rounded value of the same real
    /// number, so the result is the same, without the divider's latency (the run lengths of
    /// many small planes, 32 or 64, are powers of two).
    public struct Divisor: Sendable {
        public let value: Double
        @usableFromInline let reciprocal: Double

        @inlinable
        public init(_ value: Double) {
            self.value = value
            let exact = value > 0 && value.isNormal && value.significandBitPattern == 0 && (1 / value).isNormal
            reciprocal = exact ? 1 / value : 0
        }

        /// `x / value`.
        @inlinable @inline(__always)
        public func divide(_ x: Double) -> Double { reciprocal != 0 ? x * reciprocal : Self.quotient(x, value) }

        /// The division, out of line: inlined, the compiler computes both branches and selects.
        @inline(never) @usableFromInline
        static func quotient(_ x: Double, _ d: Double) -> Double { x / d }
    }

    /// Sum of squares over `length` floats (no shift: FRN's second moment about zero).
    @inlinable
    public static func sumOfSquares(_ p: UnsafePointer<Float>, length: Int) -> Double {
        if length <= shortRun {
            var a = SIMD4<Float>()
            var i = 0
            while i + 4 <= length {
                let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Float>.self)
                a += u * u
                i += 4
            }
            var t = Double(hsum(a))
            while i < length { t += Double(p[i]) * Double(p[i]); i += 1 }
            return t
        }
        var total = 0.0
        var start = 0
        while start < length {
            let end = min(start + block, length)
            var a = SIMD8<Float>(), b = SIMD8<Float>(), c = SIMD8<Float>(), d = SIMD8<Float>()
            var i = start
            while i + 32 <= end {
                let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
                let v = UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self)
                let w = UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD8<Float>.self)
                let z = UnsafeRawPointer(p + i + 24).loadUnaligned(as: SIMD8<Float>.self)
                a += u * u; b += v * v; c += w * w; d += z * z
                i += 32
            }
            var t = Double(hsum((a + c) + (b + d)))
            while i < end { t += Double(p[i]) * Double(p[i]); i += 1 }
            total += t
            start = end
        }
        return total
    }

    /// `(Σ g, Σ g·(x − mu))` over `length` elements: the two backward reductions in one pass.
    @inlinable
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, length: Int, mu: Float) -> (Double, Double) {
        gradientSums(x: x, g: g, segments: 1, stride: 0, length: length, mu: mu)
    }

    /// ``gradientSums(x:g:length:mu:)`` inlined into the caller: the same arithmetic (one
    /// float32 block for runs of at most ``block`` values, tails in `Double`).
    @inlinable @inline(__always)
    public static func runGradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, length: Int, mu: Float) -> (Double, Double) {
        guard length <= block else { return gradientSums(x: x, g: g, segments: 1, stride: 0, length: length, mu: mu) }
        if length <= shortRun {
            let mv = SIMD4<Float>(repeating: mu)
            var a = SIMD4<Float>(), b = SIMD4<Float>()
            var i = 0
            while i + 4 <= length {
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD4<Float>.self)
                a += gv; b += gv * (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self) - mv)
                i += 4
            }
            var sg = 0.0, sgx = 0.0
            while i < length { sg += Double(g[i]); sgx += Double(g[i]) * Double(x[i] - mu); i += 1 }
            sg += Double(hsum(a)); sgx += Double(hsum(b))
            return (sg, sgx)
        }
        let mv = SIMD8<Float>(repeating: mu)
        var sg = 0.0, sgx = 0.0
        var a1 = SIMD8<Float>(), b1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var i = 0
        while i + 16 <= length {
            let g1 = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let g2 = UnsafeRawPointer(g + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            let x1 = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mv
            let x2 = UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self) - mv
            a1 += g1; b1 += g1 * x1
            a2 += g2; b2 += g2 * x2
            i += 16
        }
        while i < length { sg += Double(g[i]); sgx += Double(g[i]) * Double(x[i] - mu); i += 1 }
        sg += Double(hsum(a1 + a2)); sgx += Double(hsum(b1 + b2))
        return (sg, sgx)
    }

    /// `(Σ g, Σ g·(x − mu))` over `segments` runs of `length` elements, `stride` apart (the
    /// same offsets in `x` and `g`), blocked like ``moments(_:segments:stride:length:)``.
    @inlinable
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, segments: Int, stride: Int, length: Int,
                                    mu: Float) -> (Double, Double) {
        gradientSums(x: x, g: g, segments: segments, stride: stride, length: length, mu: mu, prefetchingNextSegment: false)
    }

    /// ``gradientSums(x:g:segments:stride:length:mu:)``, optionally prefetching the next
    /// segment of `x` and `g` as ``moments(_:segments:stride:length:prefetchingNextSegment:)``
    /// does. The same values either way.
    @inlinable @inline(__always)
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, segments: Int, stride: Int, length: Int,
                                    mu: Float, prefetchingNextSegment prefetch: Bool) -> (Double, Double) {
        let mv = SIMD8<Float>(repeating: mu)
        var sg = 0.0, sgx = 0.0
        var a1 = SIMD8<Float>(), b1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var filled = 0
        for seg in 0..<segments {
            let xp = x + seg * stride, gp = g + seg * stride
            let step = seg + 1 < segments ? stride : 0
            var i = 0
            while i < length {
                let end = i + min(length - i, block - filled)
                filled += end - i
                while i + 16 <= end {
                    if prefetch { nk_prefetch_read(xp + step + i); nk_prefetch_read(gp + step + i) }
                    let g1 = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD8<Float>.self)
                    let g2 = UnsafeRawPointer(gp + i + 8).loadUnaligned(as: SIMD8<Float>.self)
                    let x1 = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD8<Float>.self) - mv
                    let x2 = UnsafeRawPointer(xp + i + 8).loadUnaligned(as: SIMD8<Float>.self) - mv
                    a1 += g1; b1 += g1 * x1
                    a2 += g2; b2 += g2 * x2
                    i += 16
                }
                while i < end { sg += Double(gp[i]); sgx += Double(gp[i]) * Double(xp[i] - mu); i += 1 }
                if filled == block {
                    sg += Double(hsum(a1 + a2)); sgx += Double(hsum(b1 + b2))
                    a1 = SIMD8<Float>(); a2 = a1; b1 = a1; b2 = a1
                    filled = 0
                }
            }
        }
        sg += Double(hsum(a1 + a2)); sgx += Double(hsum(b1 + b2))
        return (sg, sgx)
    }
}
