import Foundation
import NormCore

/// One timed operation: a method × op × shape × thread count.
public struct BenchRecord: Sendable, Codable, Equatable {
    public var method: String
    public var op: BenchOp
    public var shape: [Int]
    public var threads: Int
    public var timing: TimingSummary
    /// Passes over the tensor counted as the minimal traffic (see ``Traffic``).
    public var passes: Int
    public var bytes: Double
    public var gbps: Double
    /// The size-matched STREAM copy (same element count, same thread count).
    public var copyGbps: Double
    public var pctOfCopy: Double
    /// Median time of the numpy implementation (timed inside Python), when there is one.
    public var numpyTiming: TimingSummary?
    public var speedupVsNumpy: Double?
    /// The correctness check's one-word result (`ok 3e-07`, `ok(thr)`).
    public var check: String

    public var elements: Int { shape.product }
    /// Median nanoseconds per element.
    public var nsPerElement: Double { timing.median * 1e6 / Double(elements) }

    public init(method: String, op: BenchOp, shape: [Int], threads: Int, timing: TimingSummary, passes: Int,
                copyGbps: Double, numpyTiming: TimingSummary?, check: String) {
        self.method = method
        self.op = op
        self.shape = shape
        self.threads = threads
        self.timing = timing
        self.passes = passes
        bytes = Traffic.bytes(elements: shape.product, passes: passes)
        gbps = Traffic.gigabytesPerSecond(bytes: bytes, milliseconds: timing.median)
        self.copyGbps = copyGbps
        pctOfCopy = Traffic.percentOfCopy(gbps, copyGBps: copyGbps)
        self.numpyTiming = numpyTiming
        speedupVsNumpy = Traffic.speedup(ms: timing.median, numpyMs: numpyTiming?.median)
        self.check = check
    }

    enum CodingKeys: String, CodingKey {
        case method, op, shape, threads, passes, bytes, gbps, check, reps
        case msMedian = "ms_median", msMin = "ms_min", msMax = "ms_max", msP10 = "ms_p10", msP90 = "ms_p90"
        case spreadPct = "spread_pct", copyGbps = "copy_gbps", pctOfCopy = "pct_of_copy"
        case nsPerElement = "ns_per_element"
        case numpyMsMedian = "numpy_ms_median", numpySpreadPct = "numpy_spread_pct", numpyReps = "numpy_reps"
        case speedupVsNumpy = "speedup_vs_numpy"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method)
        try c.encode(op, forKey: .op)
        try c.encode(shape, forKey: .shape)
        try c.encode(threads, forKey: .threads)
        try c.encode(timing.median, forKey: .msMedian)
        try c.encode(timing.min, forKey: .msMin)
        try c.encode(timing.max, forKey: .msMax)
        try c.encode(timing.p10, forKey: .msP10)
        try c.encode(timing.p90, forKey: .msP90)
        try c.encode(timing.spreadPercent, forKey: .spreadPct)
        try c.encode(timing.reps, forKey: .reps)
        try c.encode(passes, forKey: .passes)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(gbps, forKey: .gbps)
        try c.encode(copyGbps, forKey: .copyGbps)
        try c.encode(pctOfCopy, forKey: .pctOfCopy)
        try c.encode(nsPerElement, forKey: .nsPerElement)
        try c.encode(numpyTiming?.median, forKey: .numpyMsMedian)
        try c.encode(numpyTiming?.spreadPercent, forKey: .numpySpreadPct)
        try c.encode(numpyTiming?.reps, forKey: .numpyReps)
        try c.encode(speedupVsNumpy, forKey: .speedupVsNumpy)
        try c.encode(check, forKey: .check)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let median = try c.decode(Double.self, forKey: .msMedian)
        var t = TimingSummary(seconds: [median * 1e-3])
        t.reps = try c.decode(Int.self, forKey: .reps)
        t.min = try c.decode(Double.self, forKey: .msMin)
        t.max = try c.decode(Double.self, forKey: .msMax)
        t.p10 = try c.decode(Double.self, forKey: .msP10)
        t.p90 = try c.decode(Double.self, forKey: .msP90)
        var np: TimingSummary? = nil
        if let m = try c.decodeIfPresent(Double.self, forKey: .numpyMsMedian) {
            np = TimingSummary(seconds: [m * 1e-3])
            np!.reps = try c.decodeIfPresent(Int.self, forKey: .numpyReps) ?? 1
        }
        self.init(method: try c.decode(String.self, forKey: .method), op: try c.decode(BenchOp.self, forKey: .op),
                  shape: try c.decode([Int].self, forKey: .shape), threads: try c.decode(Int.self, forKey: .threads),
                  timing: t, passes: try c.decode(Int.self, forKey: .passes),
                  copyGbps: try c.decode(Double.self, forKey: .copyGbps), numpyTiming: np,
                  check: try c.decode(String.self, forKey: .check))
    }
}

/// A method × shape that was not timed, and why.
public struct BenchSkip: Sendable, Codable, Equatable {
    public var method: String
    public var shape: [Int]
    public var reason: String
    /// True when the reason is a failure (correctness check, error), not a rank the method
    /// does not accept.
    public var failed: Bool
}

/// One of the issue's targets, evaluated on this run.
public struct TargetResult: Sendable, Codable, Equatable {
    public var name: String
    public var requirement: String
    /// False when the run did not contain what the target needs.
    public var evaluated: Bool
    public var met: Bool
    /// The worst ratio seen (lowest % of copy, lowest speed-up, highest per-element ratio).
    public var worst: Double?
    /// Every record that misses the target.
    public var misses: [String]
}

/// A whole `normlab bench` run.
public struct BenchReport: Sendable, Codable {
    public var date: String
    public var machine: MachineInfo
    public var quick: Bool
    public var threads: [Int]
    /// Rounds the timings were spread over (``BenchConfiguration/rounds``).
    public var rounds: Int
    /// What the numpy times include.
    public var numpyTiming: String
    /// STREAM on arrays far larger than the last-level cache.
    public var stream: [StreamResult]
    /// STREAM copy at each benchmark tensor's size (the denominator of `pct_of_copy`).
    public var sizeMatchedCopy: [StreamResult]
    public var records: [BenchRecord]
    public var skipped: [BenchSkip]
    public var checks: [String: CheckOutcome]
    public var targets: [TargetResult]
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case date, machine, quick, threads, rounds, stream, records, skipped, checks, targets, warnings
        case numpyTiming = "numpy_timing", sizeMatchedCopy = "size_matched_copy"
    }

    /// No failed check, no failed method.
    public var passed: Bool { !skipped.contains(where: \.failed) && checks.values.allSatisfy(\.passed) }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    // MARK: - Targets

    /// The issue's large shape.
    public static let targetShape = [32, 64, 56, 56]

    /// Evaluates the three targets at the largest thread count of the run.
    public static func evaluateTargets(_ records: [BenchRecord], threads: [Int],
                                       copyPercent: Double = 70, numpySpeedup: Double = 5,
                                       smallShapeFactor: Double = 1.5) -> [TargetResult] {
        guard let t = threads.max() else { return [] }
        let atT = records.filter { $0.threads == t }
        let large = atT.filter { $0.shape == targetShape }
        func label(_ r: BenchRecord) -> String { "\(r.method) \(r.op.rawValue) \(shapeLabel(r.shape))" }

        var copy = TargetResult(name: "copy_bandwidth",
                                requirement: "every op at \(shapeLabel(targetShape)), \(t) threads: >= \(Int(copyPercent))% of size-matched copy",
                                evaluated: !large.isEmpty, met: !large.isEmpty, worst: large.map(\.pctOfCopy).min(), misses: [])
        for r in large where r.pctOfCopy < copyPercent {
            copy.met = false
            copy.misses.append(String(format: "%@: %.0f%%", label(r), r.pctOfCopy))
        }

        let withNumpy = atT.filter { $0.speedupVsNumpy != nil }
        var numpy = TargetResult(name: "numpy_speedup",
                                 requirement: "every op at every shape, \(t) threads: >= \(Int(numpySpeedup))x the numpy implementation",
                                 evaluated: !withNumpy.isEmpty, met: !withNumpy.isEmpty,
                                 worst: withNumpy.compactMap(\.speedupVsNumpy).min(), misses: [])
        for r in withNumpy where r.speedupVsNumpy! < numpySpeedup {
            numpy.met = false
            numpy.misses.append(String(format: "%@: %.1fx", label(r), r.speedupVsNumpy!))
        }

        var small = TargetResult(name: "small_shape_overhead",
                                 requirement: "every op at the other shapes, \(t) threads: <= \(smallShapeFactor)x the \(shapeLabel(targetShape)) time per element",
                                 evaluated: false, met: true, worst: nil, misses: [])
        for r in atT where r.shape != targetShape {
            guard let base = large.first(where: { $0.method == r.method && $0.op == r.op }) else { continue }
            small.evaluated = true
            let ratio = r.nsPerElement / base.nsPerElement
            small.worst = max(small.worst ?? 0, ratio)
            if ratio > smallShapeFactor {
                small.met = false
                small.misses.append(String(format: "%@: %.2fx", label(r), ratio))
            }
        }
        if !small.evaluated { small.met = false }
        return [copy, numpy, small]
    }

    // MARK: - Text

    /// The table `normlab bench` prints.
    public var table: String {
        var out: [String] = []
        out.append("normlab bench — \(date) — \(machine.cpu), \(machine.cores) cores, LLC \(machine.lastLevelCache), \(machine.memory)\(machine.blasCore.map { ", BLAS \($0)" } ?? "")\(quick ? " — QUICK (small shapes, few repetitions)" : "")\(rounds > 1 ? " — \(rounds) rounds" : "")")
        out.append("")
        out.append("STREAM (arrays far larger than the last-level cache; GB/s from the median, best in brackets):")
        out.append(DescriptorText.render(
            header: ["kernel", "elements", "threads", "ms", "GB/s", "best GB/s"],
            rows: stream.map { s in
                [s.kernel, String(s.elements), String(s.threads), String(format: "%.2f", s.timing.median),
                 String(format: "%.1f", s.gbps), String(format: "%.1f", s.bestGbps)]
            }))
        out.append("")
        out.append("Size-matched copy (the denominator of %copy):")
        out.append(DescriptorText.render(
            header: ["elements", "threads", "ms", "GB/s"],
            rows: sizeMatchedCopy.map { s in
                [String(s.elements), String(s.threads), String(format: "%.3f", s.timing.median), String(format: "%.1f", s.gbps)]
            }))
        out.append("")
        out.append("Kernels (median of the timed calls; ±: (p90 − p10)/median; GB/s from the minimal traffic; numpy timed inside Python):")
        out.append(DescriptorText.render(
            header: ["method", "op", "shape", "thr", "ms", "±%", "GB/s", "%copy", "ns/elem", "numpy ms", "x numpy", "check"],
            rows: records.map { r in
                [r.method, r.op.rawValue, shapeLabel(r.shape), String(r.threads), Self.ms(r.timing.median),
                 String(format: "%.0f", r.timing.spreadPercent), String(format: "%.1f", r.gbps), String(format: "%.0f", r.pctOfCopy),
                 String(format: "%.3f", r.nsPerElement), r.numpyTiming.map { Self.ms($0.median) } ?? "-",
                 r.speedupVsNumpy.map { String(format: "%.1f", $0) } ?? "-", r.check]
            }))
        if !skipped.isEmpty {
            out.append("")
            out.append("Not timed:")
            for s in skipped { out.append("  \(s.method) \(shapeLabel(s.shape)): \(s.reason)") }
        }
        out.append("")
        out.append("Targets:")
        for t in targets {
            let status = !t.evaluated ? "not evaluated" : (t.met ? "MET" : "NOT MET")
            var line = "  \(t.name): \(status) — \(t.requirement)"
            if let w = t.worst { line += String(format: " (worst %.2f)", w) }
            out.append(line)
            for m in t.misses.prefix(12) { out.append("      miss: \(m)") }
            if t.misses.count > 12 { out.append("      … and \(t.misses.count - 12) more") }
        }
        for w in warnings { out.append("warning: \(w)") }
        return out.joined(separator: "\n")
    }

    static func ms(_ v: Double) -> String {
        v >= 100 ? String(format: "%.1f", v) : v >= 1 ? String(format: "%.3f", v) : String(format: "%.4f", v)
    }
}
