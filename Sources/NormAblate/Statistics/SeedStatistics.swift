import Foundation

/// The confidence level of every interval in a report (95 %), and the significance level and
/// power used for the minimal detectable effect.
public enum ReportStatistics {
    public static let confidence = 0.95
    public static let alpha = 0.05
    public static let power = 0.80

    /// The method, stated once in every report.
    public static let methodNote = "95 % confidence intervals are Student t-intervals over seeds, mean ± t(0.975, n−1)·s/√n. "
        + "Claims and differences against the baseline cell are paired over the seeds both cells ran (paired t-test, two-sided); the baseline table's p-values are also Holm-corrected across all its comparisons. "
        + "MDE, the minimal detectable effect at 80 % power and α = 0.05 for the seeds run, is (t(0.975, n−1) + t(0.80, n−1))·s_d/√n with s_d the sample std of the paired differences."
}

/// A Student t-interval for the mean of a sample.
public struct MeanInterval: Sendable, Equatable {
    public let n: Int
    public let mean: Double
    /// Sample standard deviation (n − 1).
    public let std: Double
    /// `t(1 − α/2, n − 1)·std/√n`; nil for n < 2.
    public let halfWidth: Double?

    public var lower: Double? { halfWidth.map { mean - $0 } }
    public var upper: Double? { halfWidth.map { mean + $0 } }

    /// nil for an empty sample.
    public init?(_ values: [Double], confidence: Double = ReportStatistics.confidence) {
        guard !values.isEmpty else { return nil }
        n = values.count
        let m = values.reduce(0, +) / Double(n)
        mean = m
        std = n < 2 ? 0 : (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n - 1)).squareRoot()
        halfWidth = n < 2 ? nil : StudentT(degreesOfFreedom: Double(n - 1)).quantile(0.5 + confidence / 2) * std / Double(n).squareRoot()
    }
}

/// A paired t-test of the differences `x_i − y_i` over shared seeds (Student 1908; the
/// paired form, e.g. Wasserman, *All of Statistics*, §10.4).
public struct PairedTest: Sendable, Equatable {
    /// The differences, one per shared seed, in seed order.
    public let differences: [Double]
    public let interval: MeanInterval
    /// `mean/(s_d/√n)`; nil for n < 2.
    public let t: Double?
    /// Two-sided p-value; nil for n < 2. With s_d = 0 it is 0 for a non-zero mean and 1 for a
    /// zero mean (every seed gave the same difference).
    public let p: Double?
    /// Minimal detectable effect (80 % power, α = 0.05): `(t(0.975, n−1) + t(0.80, n−1))·s_d/√n`.
    public let minimalDetectableEffect: Double?

    public var n: Int { interval.n }
    public var mean: Double { interval.mean }

    public init?(differences: [Double]) {
        guard let interval = MeanInterval(differences) else { return nil }
        self.differences = differences
        self.interval = interval
        let n = Double(interval.n)
        if interval.n < 2 {
            t = nil; p = nil; minimalDetectableEffect = nil
            return
        }
        let dist = StudentT(degreesOfFreedom: n - 1)
        let se = interval.std / n.squareRoot()
        if se == 0 {
            t = interval.mean == 0 ? 0 : (interval.mean > 0 ? .infinity : -.infinity)
            p = interval.mean == 0 ? 1 : 0
        } else {
            let t = interval.mean / se
            self.t = t
            p = dist.twoSidedPValue(t)
        }
        minimalDetectableEffect = (dist.quantile(1 - ReportStatistics.alpha / 2) + dist.quantile(ReportStatistics.power)) * se
    }

    /// Pairs two seed → value maps on their shared seeds (finite values only) and tests `x − y`.
    public init?(_ x: [UInt64: Double], _ y: [UInt64: Double]) {
        let seeds = Set(x.keys).intersection(y.keys).sorted()
        let d = seeds.compactMap { s -> Double? in
            guard let a = x[s], let b = y[s], a.isFinite, b.isFinite else { return nil }
            return a - b
        }
        self.init(differences: d)
    }
}

/// Holm's step-down correction (Holm 1979): the adjusted p-values, in input order (nil
/// entries stay nil and do not count in the family).
public enum Holm {
    public static func adjust(_ p: [Double?]) -> [Double?] {
        var present: [(index: Int, p: Double)] = []
        for (i, v) in p.enumerated() { if let v { present.append((i, v)) } }
        present.sort { a, b in a.p < b.p || (a.p == b.p && a.index < b.index) }
        let m = present.count
        var out = [Double?](repeating: nil, count: p.count)
        var running = 0.0
        for (rank, entry) in present.enumerated() {
            let scaled: Double = Double(m - rank) * entry.p
            running = Swift.max(running, Swift.min(1.0, scaled))
            out[entry.index] = running
        }
        return out
    }
}
