import NormCore
import NormNet

/// Derives the `steps_to_baseline` metric of ``BaselineSpec`` for a report's runs.
///
/// The threshold is the baseline cell's mean (over its non-diverged runs) of the last point
/// of its per-epoch `metric` curve; every run (the baseline's own included) gets the
/// optimizer step of the first curve point at or above it — from its `steps` curve, or the
/// epoch number when a runner records none — or NaN when it never gets there (such runs
/// are left out of the mean, so `n` counts the runs that reached it).
struct BaselineComparison {
    var runs: [StoredRun]
    /// One sentence for the report's legend.
    var note: String

    init(_ baseline: BaselineSpec, spec: AblationSpec, cells: [Cell], runs: [StoredRun]) {
        let name = BaselineSpec.derivedMetric
        let wanted = baseline.settings.keys.sorted().map { "\($0)=\(baseline.settings[$0]!)" }.joined(separator: ", ")
        let matches = cells.filter { cell in
            baseline.settings.allSatisfy { path, value in cell.setting(path).map { Self.same($0, value) } ?? false }
        }
        guard matches.count == 1, let base = matches.first else {
            self.runs = runs
            note = matches.isEmpty
                ? "`\(name)` not computed: no cell of this study has \(wanted) (the baseline)."
                : "`\(name)` not computed: \(matches.count) cells have \(wanted); the baseline must select one."
            return
        }
        let finals = runs.filter { $0.key.cellHash == base.hash && !$0.result.diverged }
            .compactMap { $0.result.curves[baseline.metric]?.last }.filter(\.isFinite)
        guard !finals.isEmpty else {
            self.runs = runs
            note = "`\(name)` not computed: the baseline (\(wanted)) has no run with a finite `\(baseline.metric)` curve."
            return
        }
        let threshold = finals.reduce(0, +) / Double(finals.count)
        self.runs = runs.map { run in
            var result = run.result
            var value = Double.nan
            if !result.diverged, let curve = result.curves[baseline.metric],
               let i = curve.firstIndex(where: { $0.isFinite && $0 >= threshold }) {
                let steps = result.curves["steps"]
                value = steps.flatMap { i < $0.count ? $0[i] : nil } ?? Double(i + 1)
            }
            result.metrics[name] = value
            return StoredRun(key: run.key, result: result, provenance: run.provenance)
        }
        note = "`\(name)`: optimizer steps until a run's per-epoch `\(baseline.metric)` first reached the baseline's "
            + "(\(wanted)) mean final \(AblationReport.number(threshold)) (evaluated once per epoch); runs that never did are left out, so n counts the runs that reached it."
    }

    /// Axis values compare as numbers when both are numeric (`1` and `1.0`), else exactly.
    static func same(_ a: ConfigValue, _ b: ConfigValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }
}
