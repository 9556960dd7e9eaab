import Foundation

/// Wall-clock sampling with warm-up, and the summary statistics the report shows.
public enum Timing {
    /// Monotonic seconds.
    @inline(__always)
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Seconds per call of `body`: `warmup` untimed calls, then at least `minReps` timed calls
    /// and at least `minSeconds` of them in total, at most `maxReps`.
    public static func sample(warmup: Int, minReps: Int, maxReps: Int, minSeconds: Double,
                              _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<max(0, warmup) { try body() }
        var times: [Double] = []
        var total = 0.0
        while times.count < max(1, maxReps) && (times.count < max(1, minReps) || total < minSeconds) {
            let t0 = now()
            try body()
            let dt = now() - t0
            times.append(dt)
            total += dt
        }
        return times
    }
}

/// Median and spread of a sample of call times, in milliseconds.
public struct TimingSummary: Sendable, Codable, Equatable {
    public var reps: Int
    public var median: Double
    public var min: Double
    public var max: Double
    /// 10th and 90th percentiles.
    public var p10: Double
    public var p90: Double

    /// `(p90 − p10) / median`, in percent.
    public var spreadPercent: Double { median > 0 ? (p90 - p10) / median * 100 : 0 }

    /// Summarizes call times given in **seconds**.
    public init(seconds: [Double]) {
        precondition(!seconds.isEmpty, "no samples")
        let ms = seconds.map { $0 * 1e3 }.sorted()
        reps = ms.count
        median = Self.quantile(ms, 0.5)
        min = ms.first!
        max = ms.last!
        p10 = Self.quantile(ms, 0.1)
        p90 = Self.quantile(ms, 0.9)
    }

    /// Linear interpolation between order statistics (numpy's default).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }
}
