import NormCore

/// Two-pass float64 mean and biased variance of contiguous runs, for layers whose later
/// arithmetic amplifies the rounding of float32-accumulated statistics (Switchable Norm's
/// `mean² + var` mixtures, Batch-Channel Norm's second stage, EvoNorm-B0's max).
///
/// Four independent float64 accumulators per pass (a fixed order, so results do not depend on
/// the thread count) keep the additions from forming one dependent chain.
enum ExactMoments {
    /// Mean and biased variance of `length` floats at `p`.
    @inline(__always)
    static func run(_ p: UnsafePointer<Float>, length: Int) -> (mean: Double, variance: Double) {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= length {
            a0 += Double(p[i]); a1 += Double(p[i + 1]); a2 += Double(p[i + 2]); a3 += Double(p[i + 3])
            i += 4
        }
        while i < length { a0 += Double(p[i]); i += 1 }
        let mean = ((a0 + a1) + (a2 + a3)) / Double(length)
        var q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0
        i = 0
        while i + 4 <= length {
            let d0 = Double(p[i]) - mean, d1 = Double(p[i + 1]) - mean, d2 = Double(p[i + 2]) - mean, d3 = Double(p[i + 3]) - mean
            q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3
            i += 4
        }
        while i < length { let d = Double(p[i]) - mean; q0 += d * d; i += 1 }
        return (mean, ((q0 + q1) + (q2 + q3)) / Double(length))
    }

    /// Per-run mean and biased variance of the `runs` consecutive runs of `length` values in `x`
    /// (planes `(n, c)` when `length` is the spatial size), runs split across threads.
    static func runs(_ x: Tensor, runs: Int, length: Int) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: runs), variance = mean
        x.withUnsafeBufferPointer { xb in mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
            let base = xb.baseAddress!, mp = mb.baseAddress!, vp = vb.baseAddress!
            Parallel.forEach(runs, work: runs * length) { range in
                for r in range { (mp[r], vp[r]) = run(base + r * length, length: length) }
            }
        }}}
        return (mean, variance)
    }
}

/// ``ExactMoments/run(_:length:)`` for float64 data (Batch-Channel Norm's stage-1 output).
enum DoubleRuns {
    @inline(__always)
    static func moments(_ p: UnsafePointer<Double>, length: Int) -> (mean: Double, variance: Double) {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= length { a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]; i += 4 }
        while i < length { a0 += p[i]; i += 1 }
        let mean = ((a0 + a1) + (a2 + a3)) / Double(length)
        var q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0
        i = 0
        while i + 4 <= length {
            let d0 = p[i] - mean, d1 = p[i + 1] - mean, d2 = p[i + 2] - mean, d3 = p[i + 3] - mean
            q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3
            i += 4
        }
        while i < length { let d = p[i] - mean; q0 += d * d; i += 1 }
        return (mean, ((q0 + q1) + (q2 + q3)) / Double(length))
    }
}
