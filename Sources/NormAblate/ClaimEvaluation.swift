import Foundation
import NormCore
import NormNet

/// A claim's verdict from the stored runs.
public struct ClaimResult: Sendable {
    public enum Verdict: String, Sendable {
        /// The effect's 95 % CI lies entirely on the expected side of 0.
        case supported
        /// The CI lies entirely on the other side.
        case contradicted
        /// The CI includes 0 (or there are fewer than two paired seeds).
        case inconclusive
    }

    public let claim: ClaimSpec
    /// The cells `compare` and `against` select (nil when a selector does not resolve, e.g.
    /// a report of a stored spec whose grid changed).
    public let compareCell: Cell?
    public let againstCell: Cell?
    /// Mean of the metric in each cell over the seeds of the test.
    public let compareMean: Double?
    public let againstMean: Double?
    /// The paired test of the claim's effect (see ``ClaimSpec``); nil without paired seeds.
    public let test: PairedTest?
    /// For a fraction claim: mean Δ / mean Δ_other over the same seeds.
    public let ratio: Double?
    public let verdict: Verdict
    /// Why there is no test, when there is none.
    public let note: String?

    /// `Δ test_error (norm=bn, batch_size=2 − norm=bn, batch_size=32) > 0`.
    public func hypothesis(label: (Cell) -> String) -> String {
        let pair = { (c: ClaimSpec) -> String in
            let a = c.compare.map { "\($0.key)=\($0.value.compactLabel)" }.joined(separator: ", ")
            let b = c.against.map { "\($0.key)=\($0.value.compactLabel)" }.joined(separator: ", ")
            return "\(c.metric)[\(a)] − \(c.metric)[\(b)]"
        }
        switch claim.expect {
        case .greater: return pair(claim) + " > 0"
        case .less: return pair(claim) + " < 0"
        case let .lessThanFraction(f, other): return "Δ < \(AblationReport.number(f))·Δ('\(other)') in its direction: " + pair(claim)
        }
    }
}

/// Computes claims' verdicts from per-seed values.
enum ClaimEvaluator {
    /// Seed → value of a metric over runs that did not diverge and have a finite value.
    static func values(of runs: [StoredRun], metric: String) -> [UInt64: Double] {
        var out: [UInt64: Double] = [:]
        for r in runs where !r.result.diverged {
            if let v = r.result.metrics[metric], v.isFinite { out[r.key.seed] = v }
        }
        return out
    }

    /// The cells a claim's effect depends on (a fraction claim: also its reference's).
    static func cells(of claim: ClaimSpec, in claims: [ClaimSpec], selection: CellSelection) -> [Cell] {
        var list = [claim.compare, claim.against]
        if let ref = claim.reference(in: claims) { list += [ref.compare, ref.against] }
        var out: [Cell] = []
        for s in list {
            guard let c = selection.cell(s) else { return [] }
            if !out.contains(where: { $0.hash == c.hash }) { out.append(c) }
        }
        return out
    }

    static func evaluate(_ claim: ClaimSpec, claims: [ClaimSpec], selection: CellSelection,
                         values: (Cell, String) -> [UInt64: Double]) -> ClaimResult {
        let compare = selection.cell(claim.compare), against = selection.cell(claim.against)
        func result(_ test: PairedTest?, _ means: (Double?, Double?), ratio: Double? = nil, expectBelowZero: Bool, note: String? = nil) -> ClaimResult {
            var verdict = ClaimResult.Verdict.inconclusive
            var note = note
            if let test, test.n >= 2, test.interval.std == 0 {
                // Every seed gave the same difference: the t-interval has zero width and no
                // test is possible (0/0), so the data cannot rule out chance (e.g. one test
                // image out of 360 in every seed): inconclusive, said so.
                if note == nil { note = "the paired differences have zero variance: no t-interval, more seeds needed" }
            } else if let test, let lo = test.interval.lower, let hi = test.interval.upper {
                if expectBelowZero {
                    verdict = hi < 0 ? .supported : (lo > 0 ? .contradicted : .inconclusive)
                } else {
                    verdict = lo > 0 ? .supported : (hi < 0 ? .contradicted : .inconclusive)
                }
            }
            if note == nil, let test, test.n < 2 { note = "one paired seed: no confidence interval" }
            return ClaimResult(claim: claim, compareCell: compare, againstCell: against, compareMean: means.0, againstMean: means.1,
                               test: test, ratio: ratio, verdict: verdict, note: note)
        }
        guard let compare, let against else {
            return result(nil, (nil, nil), expectBelowZero: false, note: "the claim's cells are not in this study's grid")
        }
        let x = values(compare, claim.metric), y = values(against, claim.metric)
        func mean(_ m: [UInt64: Double], _ seeds: [UInt64]) -> Double? {
            seeds.isEmpty ? nil : seeds.map { m[$0]! }.reduce(0, +) / Double(seeds.count)
        }
        switch claim.expect {
        case .greater, .less:
            let seeds = Set(x.keys).intersection(y.keys).sorted()
            let test = PairedTest(differences: seeds.map { x[$0]! - y[$0]! })
            return result(test, (mean(x, seeds), mean(y, seeds)), expectBelowZero: claim.expect == .less,
                          note: test == nil ? "no seed with a finite \(claim.metric) in both cells" : nil)
        case let .lessThanFraction(f, _):
            guard let ref = claim.reference(in: claims), let rc = selection.cell(ref.compare), let ra = selection.cell(ref.against) else {
                return result(nil, (nil, nil), expectBelowZero: true, note: "the referenced claim's cells are not in this study's grid")
            }
            let u = values(rc, ref.metric), v = values(ra, ref.metric)
            let seeds = Set(x.keys).intersection(y.keys).intersection(u.keys).intersection(v.keys).sorted()
            let sign: Double = ref.expect == .less ? -1 : 1
            let d = seeds.map { x[$0]! - y[$0]! }, dRef = seeds.map { u[$0]! - v[$0]! }
            let test = PairedTest(differences: zip(d, dRef).map { sign * ($0 - f * $1) })
            var ratio: Double? = nil
            if !seeds.isEmpty {
                let md = d.reduce(0, +) / Double(d.count), mr = dRef.reduce(0, +) / Double(dRef.count)
                if mr != 0 { ratio = md / mr }
            }
            return result(test, (mean(x, seeds), mean(y, seeds)), ratio: ratio, expectBelowZero: true,
                          note: test == nil ? "no seed with finite values in all four cells" : nil)
        }
    }
}

/// A cell's paired difference against the report's baseline cell for one metric.
public struct BaselineDifference: Sendable {
    public let cell: Cell
    public let metric: String
    /// `cell − baseline` over shared seeds; nil without shared seeds.
    public let test: PairedTest?
    /// Holm-adjusted p-value across every difference of the report.
    public let holmP: Double?
}

extension BaselineComparison {
    /// The paired differences of every other cell against the baseline cell, for each metric,
    /// with Holm-adjusted p-values across all of them; empty when the baseline does not select
    /// exactly one cell.
    static func pairedDifferences(_ baseline: BaselineSpec, cells: [CellSummary], metrics: [String]) -> (base: Cell?, rows: [BaselineDifference]) {
        let matches = cells.filter { c in
            baseline.settings.allSatisfy { path, value in c.cell.setting(path).map { same($0, value) } ?? false }
        }
        guard matches.count == 1, let base = matches.first else { return (nil, []) }
        var raw: [(Cell, String, PairedTest?)] = []
        for metric in metrics {
            let y = ClaimEvaluator.values(of: base.runs, metric: metric)
            for c in cells where c.cell.hash != base.cell.hash {
                raw.append((c.cell, metric, PairedTest(ClaimEvaluator.values(of: c.runs, metric: metric), y)))
            }
        }
        let adjusted = Holm.adjust(raw.map { $0.2?.p })
        return (base.cell, zip(raw, adjusted).map { BaselineDifference(cell: $0.0, metric: $0.1, test: $0.2, holmP: $1) })
    }
}
