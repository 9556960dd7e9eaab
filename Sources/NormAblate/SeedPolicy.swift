import Foundation
import NormCore
import NormNet

/// Seeds until the answer is clear: `seeds: {min: 5, max: 20, until_ci_halfwidth: 0.005, step: 5}`.
///
/// Every cell runs seeds `0..<min`. Then, in rounds, each claim whose effect's 95 % CI
/// half-width is above `until_ci_halfwidth` (or has no CI yet) gets `step` more seeds
/// (default: `min`) on every cell it depends on (a fraction claim: its own two cells and
/// those of the claim it refers to), until the half-width is at most the target or the
/// claim's cells ran `max` seeds. A claim is judged at round boundaries only (min, min +
/// step, …, max) on seeds `0..<level`, so an interrupted study resumed with the same
/// command makes the same decisions and runs the same seeds.
///
/// Only `min` seeds enter the study's identity (its hash): raising `max` or tightening the
/// target later adds seeds to the same study.
public struct SeedPolicy: Sendable, Equatable {
    public let min: Int
    public let max: Int
    public let targetHalfWidth: Double
    public let step: Int

    public static let keys = ["min", "max", "until_ci_halfwidth", "step"]

    /// The seeds every cell runs first.
    public var initialSeeds: [UInt64] { (0..<UInt64(min)).map { $0 } }
    /// Every seed a cell may get.
    public var allSeeds: [UInt64] { (0..<UInt64(max)).map { $0 } }

    /// The round boundaries: min, min + step, …, max.
    public var levels: [Int] {
        var out = [min]
        while out.last! < max { out.append(Swift.min(max, out.last! + step)) }
        return out
    }

    /// Parses the map form of `seeds`.
    static func parse(_ value: ConfigValue, problem: (String, String) -> Void) -> SeedPolicy? {
        guard let pairs = value.mapValue else { return nil }
        var ok = true
        func fail(_ p: String, _ m: String) { problem(p, m); ok = false }
        for (key, _) in pairs where !keys.contains(key) {
            fail("seeds.\(key)", "unknown key (expected one of: \(keys.joined(separator: ", ")))")
        }
        func int(_ key: String, default d: Int? = nil) -> Int {
            guard let v = value[key] else {
                if let d { return d }
                fail("seeds.\(key)", "is required (a seed count)"); return 0
            }
            guard case let .integer(n) = v, n >= 2, n <= 10_000 else {
                fail("seeds.\(key)", "must be an integer between 2 and 10000, got \(v)"); return 0
            }
            return n
        }
        let lo = int("min"), hi = int("max")
        if ok && hi < lo { fail("seeds.max", "must be at least min (\(lo)), got \(hi)") }
        var step = lo
        if let s = value["step"] {
            if case let .integer(n) = s, n >= 1 { step = n } else { fail("seeds.step", "must be a positive integer (seeds added per round), got \(s)") }
        }
        var target = 0.0
        if let t = value["until_ci_halfwidth"]?.doubleValue, t > 0, t.isFinite { target = t } else {
            fail("seeds.until_ci_halfwidth", "is required: the largest acceptable 95 % CI half-width of a claim's effect (a positive number)")
        }
        return ok ? SeedPolicy(min: lo, max: hi, targetHalfWidth: target, step: step) : nil
    }

    /// The runs of the next round, given the stored runs (empty when every claim is clear or
    /// at `max`). `runs` may hold more than this study's runs.
    func nextRound(spec: AblationSpec, cells: [Cell], runs: [StoredRun], done: Set<RunKey>) -> [PlannedRun] {
        let byCell = Dictionary(grouping: runs, by: \.key.cellHash)
        let selection = CellSelection(spec: spec, cells: cells)
        var wanted: [String: Int] = [:]    // cell hash → seeds it needs
        for claim in spec.claims {
            let involved = ClaimEvaluator.cells(of: claim, in: spec.claims, selection: selection)
            guard !involved.isEmpty else { continue }
            // the highest round boundary every involved cell has complete
            let level = levels.last { l in
                involved.allSatisfy { c in (0..<UInt64(l)).allSatisfy { done.contains(RunKey(cellHash: c.hash, seed: $0)) } }
            } ?? min
            guard level < max else { continue }
            let seeds = Set((0..<UInt64(level)).map { $0 })
            let result = ClaimEvaluator.evaluate(claim, claims: spec.claims, selection: selection) { cell, metric in
                ClaimEvaluator.values(of: (byCell[cell.hash] ?? []).filter { seeds.contains($0.key.seed) }, metric: metric)
            }
            if let hw = result.test?.interval.halfWidth, hw <= targetHalfWidth { continue }
            let next = Swift.min(max, level + step)
            for c in involved { wanted[c.hash] = Swift.max(wanted[c.hash] ?? 0, next) }
        }
        let short = spec.columnLabels
        var out: [PlannedRun] = []
        for cell in cells {
            guard let n = wanted[cell.hash] else { continue }
            let label = cell.settings.map { "\(short[$0.path] ?? $0.path)=\($0.value)" }.joined(separator: ", ")
            for seed in 0..<UInt64(n) where !done.contains(RunKey(cellHash: cell.hash, seed: seed)) {
                out.append(PlannedRun(ordinal: cells.count * min + cell.index * max + Int(seed), cell: cell, seed: seed, label: label))
            }
        }
        return out
    }
}
