import Foundation
import NormCore
import NormNet

/// Statistics of one metric of one cell over its seeds.
public struct MetricSummary: Sendable, Equatable {
    /// One value per stored run, in seed order (NaN for a non-finite value).
    public let values: [Double]
    public let seeds: [UInt64]
    /// Mean over the finite values of runs that did not diverge; nil when there are none.
    public let mean: Double?
    /// Sample standard deviation (n − 1) of the same values; nil for n < 2.
    public let std: Double?
    /// Values in the mean.
    public let n: Int
    /// Stored runs of the cell.
    public let runs: Int
    /// Seeds in the spec.
    public let expected: Int
    /// Stored runs that diverged.
    public let diverged: Int
    public let min: Double?
    public let max: Double?
    /// Stored runs that reported the metric at all (a runner may record a metric only where
    /// it applies, e.g. the conv-bias gradient of a model with conv biases).
    public let recorded: Int
    /// Student t-interval (95 %) of the mean over the same values; its half-width is nil for n < 2.
    public let interval: MeanInterval?

    init(runs stored: [StoredRun], metric: String, expected: Int) {
        values = stored.map { $0.result.metrics[metric] ?? .nan }
        recorded = stored.filter { $0.result.metrics[metric] != nil }.count
        seeds = stored.map(\.key.seed)
        let used = zip(stored, values).filter { !$0.0.result.diverged && $0.1.isFinite }.map(\.1)
        n = used.count
        runs = stored.count
        self.expected = expected
        diverged = stored.filter(\.result.diverged).count
        interval = MeanInterval(used)
        if used.isEmpty {
            mean = nil; std = nil; min = nil; max = nil
        } else {
            let m = used.reduce(0, +) / Double(used.count)
            mean = m
            std = used.count < 2 ? nil : (used.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(used.count - 1)).squareRoot()
            min = used.min()
            max = used.max()
        }
    }
}

/// One cell of the study with its stored runs and per-metric statistics.
public struct CellSummary: Sendable {
    public let cell: Cell
    public let runs: [StoredRun]
    public let metrics: [String: MetricSummary]
}

/// Summary of the provenance of a study's runs.
public struct ProvenanceSummary: Sendable {
    public var runs: Int
    public var runners: [String]
    public var normlabVersions: [String]
    /// `abc123… (dirty)` entries.
    public var gitCommits: [String]
    public var hosts: [String]
    public var threads: [Int]
    public var datasetHashes: [String]
    public var specHash: String
    public var firstStart: Date?
    public var lastEnd: Date?
    /// Sum of the runs' durations.
    public var computeSeconds: Double

    /// `(field, value)` pairs for tables.
    public var rows: [(String, String)] {
        func list(_ xs: [String]) -> String { xs.isEmpty ? "—" : xs.joined(separator: ", ") }
        return [
            ("runs stored", String(runs)),
            ("runner", list(runners)),
            ("normlab version", list(normlabVersions)),
            ("git commit", list(gitCommits)),
            ("hosts", list(hosts)),
            ("threads per run", list(threads.map(String.init))),
            ("dataset hashes", list(datasetHashes.map { String($0.prefix(16)) })),
            ("spec hash", specHash),
            ("first run started", firstStart.map(Timestamp.string) ?? "—"),
            ("last run finished", lastEnd.map(Timestamp.string) ?? "—"),
            ("compute time", AblationReport.duration(computeSeconds)),
        ]
    }
}

/// The aggregated results of a study, laid out as the spec's `report` section says, with
/// Markdown, CSV and JSON renderings.
public struct AblationReport: Sendable {
    public let study: StudyRecord
    public let spec: AblationSpec
    public let storePath: String
    public let cells: [CellSummary]
    public let metrics: [String]
    /// Axis indexes (into `spec.axes`) forming rows and column groups.
    public let rowAxes: [Int]
    public let columnAxes: [Int]
    /// Distinct coordinates along the row / column axes, sorted.
    public let rowKeys: [[Int]]
    public let columnKeys: [[Int]]
    public let provenance: ProvenanceSummary
    /// How `steps_to_baseline` was derived (when the spec names a baseline).
    public let baselineNote: String?
    /// The verdicts of the spec's claims, in spec order.
    public let claimResults: [ClaimResult]
    /// The baseline cell (`report.baseline`) when it selects exactly one cell.
    public let baselineCell: Cell?
    /// Paired differences of every other cell against the baseline cell, per metric.
    public let baselineDifferences: [BaselineDifference]

    /// Loads a study (the only one, or `study`) from a store and aggregates it.
    public static func load(store: ResultStore, study name: String? = nil) throws -> AblationReport {
        let study = try store.study(named: name)
        let spec = try study.spec()
        let cells = try spec.cells()
        let stored = try store.cells(of: study)
        guard stored.map(\.hash) == cells.map(\.hash) else {
            throw AblationError("store \(store.path): the cells of study '\(study.name)' do not match its spec (written by another normlab version?)")
        }
        let runs = try store.runs(cellHashes: Set(cells.map(\.hash)))
        return AblationReport(study: study, spec: spec, storePath: store.path, cells: cells, runs: runs)
    }

    init(study: StudyRecord, spec: AblationSpec, storePath: String, cells: [Cell], runs storedRuns: [StoredRun]) {
        self.study = study
        self.spec = spec
        self.storePath = storePath
        var runs = storedRuns
        if let baseline = spec.report.baseline {
            let comparison = BaselineComparison(baseline, spec: spec, cells: cells, runs: runs)
            runs = comparison.runs
            baselineNote = comparison.note
        } else {
            baselineNote = nil
        }
        let byCell = Dictionary(grouping: runs, by: \.key.cellHash).mapValues { $0.sorted { $0.key.seed < $1.key.seed } }
        // only seeds of this spec (a shared store may hold more)
        let seedSet = Set(spec.seedPolicy?.allSeeds ?? spec.seeds)
        var metrics = spec.report.metrics
        if metrics.isEmpty {
            metrics = Array(Set(runs.flatMap { $0.result.metrics.keys })).sorted()
        }
        self.metrics = metrics
        self.cells = cells.map { cell in
            let mine = (byCell[cell.hash] ?? []).filter { seedSet.contains($0.key.seed) }
            var m: [String: MetricSummary] = [:]
            // with a seed policy a cell expects the seeds it was given (at least min)
            let expected = spec.seedPolicy == nil ? spec.seeds.count : Swift.max(spec.seeds.count, mine.count)
            for name in metrics { m[name] = MetricSummary(runs: mine, metric: name, expected: expected) }
            return CellSummary(cell: cell, runs: mine, metrics: m)
        }
        let selection = CellSelection(spec: spec, cells: cells)
        let summaries = Dictionary(uniqueKeysWithValues: self.cells.map { ($0.cell.hash, $0) })
        claimResults = spec.claims.map { claim in
            ClaimEvaluator.evaluate(claim, claims: spec.claims, selection: selection) { cell, metric in
                ClaimEvaluator.values(of: summaries[cell.hash]?.runs ?? [], metric: metric)
            }
        }
        let summaryList = self.cells
        if let baseline = spec.report.baseline {
            let differences = BaselineComparison.pairedDifferences(baseline, cells: summaryList, metrics: metrics)
            baselineCell = differences.base
            baselineDifferences = differences.rows
        } else {
            baselineCell = nil
            baselineDifferences = []
        }
        let axisIndex: (String) -> Int? = { name in spec.axes.firstIndex { $0.name == name } }
        rowAxes = spec.report.rows.compactMap(axisIndex)
        columnAxes = spec.report.columns.compactMap(axisIndex)
        let rowAxes = self.rowAxes, columnAxes = self.columnAxes
        rowKeys = Array(Set(cells.map { c in rowAxes.map { c.coordinates[$0] } })).sorted { $0.lexicographicallyPrecedes($1) }
        columnKeys = Array(Set(cells.map { c in columnAxes.map { c.coordinates[$0] } })).sorted { $0.lexicographicallyPrecedes($1) }

        let all = self.cells.flatMap(\.runs)
        func uniq<T: Hashable & Comparable>(_ xs: [T]) -> [T] { Array(Set(xs)).sorted() }
        provenance = ProvenanceSummary(
            runs: all.count,
            runners: uniq(all.map(\.provenance.runner)),
            normlabVersions: uniq(all.map(\.provenance.normlabVersion)),
            gitCommits: uniq(all.compactMap { r in r.provenance.gitCommit.map { String($0.prefix(12)) + (r.provenance.gitDirty == true ? " (dirty)" : "") } }),
            hosts: uniq(all.map(\.provenance.host)),
            threads: uniq(all.map(\.provenance.threads)),
            datasetHashes: uniq(all.compactMap(\.result.datasetHash)),
            specHash: spec.hash,
            firstStart: all.map(\.provenance.startedAt).min(),
            lastEnd: all.map(\.provenance.finishedAt).max(),
            computeSeconds: all.map(\.provenance.duration).reduce(0, +))
    }

    // MARK: layout helpers

    public var expectedRuns: Int {
        spec.seedPolicy == nil ? cells.count * spec.seeds.count : cells.reduce(0) { $0 + Swift.max(spec.seeds.count, $1.runs.count) }
    }
    public var storedRuns: Int { cells.reduce(0) { $0 + $1.runs.count } }
    public var divergedRuns: Int { cells.reduce(0) { $0 + $1.runs.filter(\.result.diverged).count } }

    /// Short column names of the axes.
    public var labels: [String: String] { spec.axisLabels }

    func axisLabel(_ a: Int) -> String { labels[spec.axes[a].name] ?? spec.axes[a].name }

    /// The value text of axis `a` at position `k` (zip groups: values joined by `, `).
    func valueText(_ a: Int, _ k: Int) -> String {
        spec.axes[a].columns.map { $0.values[k].compactLabel }.joined(separator: ", ")
    }

    func cell(row: [Int], column: [Int]) -> CellSummary? {
        cells.first { c in rowAxes.map { c.cell.coordinates[$0] } == row && columnAxes.map { c.cell.coordinates[$0] } == column }
    }

    /// `norm_eval=true, requires_grad=false` for a row (or column) key.
    func keyLabel(_ axes: [Int], _ key: [Int]) -> String {
        zip(axes, key).map { "\(axisLabel($0))=\(valueText($0, $1))" }.joined(separator: ", ")
    }

    /// A cell's label with short axis names.
    public func label(of cell: Cell) -> String {
        spec.axes.indices.map { "\(axisLabel($0))=\(valueText($0, cell.coordinates[$0]))" }.joined(separator: ", ")
    }

    public static func number(_ x: Double) -> String {
        if !x.isFinite { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        // four significant digits in plain notation where that reads well (0.8123, 12.35, 1234)
        if x == 0 || (abs(x) >= 0.001 && abs(x) < 10) { return String(format: "%.4f", x) }
        if abs(x) >= 10 && abs(x) < 100_000 { return String(format: "%.\(abs(x) < 100 ? 2 : (abs(x) < 1000 ? 1 : 0))f", x) }
        return String(format: "%.3e", x)
    }

    public static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.1f s", s) }
        if s < 3600 { return String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60) }
        return String(format: "%d h %02d min", Int(s) / 3600, (Int(s) % 3600) / 60)
    }

    /// `0.9123 ± 0.0041 [0.9021, 0.9225] (3)` (mean ± std [95 % CI] (n)),
    /// `0.9000 ± 0.0100 [0.8100, 0.9900] (2/3, 1† diverged)`, `—`.
    public static func cellText(_ m: MetricSummary) -> String {
        if m.runs == 0 { return "—" }
        if m.recorded == 0 { return "n/a" }
        var count = m.n == m.expected ? "\(m.n)" : "\(m.n)/\(m.expected)"
        if m.diverged > 0 { count += ", \(m.diverged)† diverged" }
        guard let mean = m.mean else { return "no finite value (\(count))" }
        let spread = m.std.map { " ± " + number($0) } ?? ""
        let ci = m.interval.flatMap { i in i.lower.flatMap { lo in i.upper.map { " [\(number(lo)), \(number($0))]" } } } ?? ""
        return number(mean) + spread + ci + " (\(count))"
    }

    // MARK: Markdown

    /// Header cells and body rows of the table (shared by Markdown and the notebook).
    public var grid: (header: [String], rows: [[String]]) {
        var header = rowAxes.map(axisLabel)
        if rowAxes.isEmpty { header = ["cell"] }
        for ck in columnKeys {
            for metric in metrics {
                let group = keyLabel(columnAxes, ck)
                header.append(group.isEmpty ? metric : (metrics.count == 1 ? group : "\(group) · \(metric)"))
            }
        }
        var rows: [[String]] = []
        for rk in rowKeys {
            var line = zip(rowAxes, rk).map { valueText($0, $1) }
            if rowAxes.isEmpty { line = ["all"] }
            for ck in columnKeys {
                let c = cell(row: rk, column: ck)
                for metric in metrics {
                    line.append(c?.metrics[metric].map(Self.cellText) ?? "—")
                }
            }
            rows.append(line)
        }
        return (header, rows)
    }

    public func markdownTable() -> String {
        let (header, rows) = grid
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| " + header.map(esc).joined(separator: " | ") + " |\n"
        out += "|" + header.indices.map { $0 < max(1, rowAxes.count) ? "---|" : "---:|" }.joined() + "\n"
        for r in rows { out += "| " + r.map(esc).joined(separator: " | ") + " |\n" }
        return out
    }

    /// The whole Markdown report: title, table, legend, provenance.
    public func markdown() -> String {
        var out = "## \(study.name)\n\n"
        if let d = spec.description { out += d.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }
        out += markdownTable()
        out += "\n" + legend + "\n"
        if !claimResults.isEmpty { out += "\n### Claims\n\n" + claimsMarkdown() }
        if !baselineDifferences.isEmpty, let baselineCell { out += "\n### Paired differences against the baseline (\(label(of: baselineCell)))\n\n" + differencesMarkdown() }
        return out
    }

    /// What the numbers mean, in one paragraph.
    public var legend: String {
        var text = "Mean ± sample std over seeds [95 % CI] (in parentheses: runs in the mean, of \(spec.seeds.count) seed\(spec.seeds.count == 1 ? "" : "s")"
            + (spec.seedPolicy.map { ", up to \($0.max) for the claims' cells until their effect's CI half-width is at most \(Self.number($0.targetHalfWidth))" } ?? "") + "). "
            + ReportStatistics.methodNote + " "
        text += "\(storedRuns) of \(expectedRuns) runs stored"
        if divergedRuns > 0 { text += "; † diverged runs (\(divergedRuns)) are excluded from mean and std" }
        if cells.contains(where: { c in c.metrics.values.contains { $0.runs > 0 && $0.recorded == 0 } }) {
            text += "; n/a: the metric does not apply to the cell (no run recorded it)"
        }
        text += ". Study `\(study.name)`, spec \(spec.hash.prefix(12)), store `\(storePath)`."
        if let baselineNote { text += " " + baselineNote }
        return text
    }

    public func provenanceMarkdown() -> String {
        var out = "| | |\n|---|---|\n"
        for (k, v) in provenance.rows { out += "| \(k) | \(v.replacingOccurrences(of: "|", with: "\\|")) |\n" }
        return out
    }

    // MARK: CSV

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func csvNumber(_ x: Double?) -> String {
        guard let x else { return "" }
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        return "\(x)"
    }

    /// Column names of the axes in CSV files (short labels, unique).
    var csvAxisColumns: [String] { spec.axes.indices.map(axisLabel) }

    /// Tidy aggregated table: one line per (cell, metric).
    public func csv() -> String {
        var lines = [(["study", "cell", "cell_hash"] + csvAxisColumns + ["metric", "mean", "std", "n", "runs", "expected", "diverged", "min", "max", "ci_low", "ci_high"])
            .map(Self.csvField).joined(separator: ",")]
        for c in cells {
            for metric in metrics {
                guard let m = c.metrics[metric] else { continue }
                let axes = spec.axes.indices.map { valueText($0, c.cell.coordinates[$0]) }
                let fields = [study.name, String(c.cell.index), c.cell.hash] + axes + [metric, Self.csvNumber(m.mean), Self.csvNumber(m.std),
                    String(m.n), String(m.runs), String(m.expected), String(m.diverged), Self.csvNumber(m.min), Self.csvNumber(m.max),
                    Self.csvNumber(m.interval?.lower), Self.csvNumber(m.interval?.upper)]
                lines.append(fields.map(Self.csvField).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The per-run table's fixed columns: before the axes, between the axes and the metrics,
    /// and after the metrics (``ExportedRuns`` reads the table back by these names).
    static let runsCSVCellColumns = ["study", "cell", "cell_hash"]
    static let runsCSVRunColumns = ["seed", "diverged"]
    static let runsCSVProvenanceColumns = ["dataset_hash", "runner", "threads", "host", "started_at", "finished_at",
                                           "duration_s", "git_commit", "git_dirty", "normlab_version"]

    /// One line per stored run: axes, seed, every metric, provenance.
    public func runsCSV() -> String {
        let allMetrics = Array(Set(cells.flatMap { $0.runs.flatMap { $0.result.metrics.keys } })).sorted()
        var lines = [(Self.runsCSVCellColumns + csvAxisColumns + Self.runsCSVRunColumns + allMetrics + Self.runsCSVProvenanceColumns)
            .map(Self.csvField).joined(separator: ",")]
        for c in cells {
            let axes = spec.axes.indices.map { valueText($0, c.cell.coordinates[$0]) }
            for r in c.runs {
                let p = r.provenance
                let fields = [study.name, String(c.cell.index), c.cell.hash] + axes + [String(r.key.seed), r.result.diverged ? "true" : "false"]
                    + allMetrics.map { Self.csvNumber(r.result.metrics[$0]) }
                    + [r.result.datasetHash ?? "", p.runner, String(p.threads), p.host, Timestamp.string(p.startedAt),
                       Timestamp.string(p.finishedAt), String(format: "%.3f", p.duration), p.gitCommit ?? "",
                       p.gitDirty.map { $0 ? "true" : "false" } ?? "", p.normlabVersion]
                lines.append(fields.map(Self.csvField).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: JSON

    static func jsonNumber(_ x: Double?) -> ConfigValue {
        guard let x, x.isFinite else { return .null }
        return .real(x)
    }

    public var jsonValue: ConfigValue {
        let axes: ConfigValue = .list(spec.axes.indices.map { a in
            .map([("name", .string(spec.axes[a].name)), ("label", .string(axisLabel(a))),
                  ("paths", .list(spec.axes[a].paths.map { .string($0) })),
                  ("values", .list((0..<spec.axes[a].count).map { k in .string(valueText(a, k)) }))])
        })
        let cellValues: ConfigValue = .list(cells.map { c in
            var settings: [(key: String, value: ConfigValue)] = []
            for s in c.cell.settings { settings.append((s.path, s.value)) }
            let metricValues: ConfigValue = .map(metrics.compactMap { name in
                guard let m = c.metrics[name] else { return nil }
                return (name, .map([
                    ("mean", Self.jsonNumber(m.mean)), ("std", Self.jsonNumber(m.std)), ("n", .integer(m.n)),
                    ("runs", .integer(m.runs)), ("expected", .integer(m.expected)), ("diverged", .integer(m.diverged)),
                    ("min", Self.jsonNumber(m.min)), ("max", Self.jsonNumber(m.max)),
                    ("ci_low", Self.jsonNumber(m.interval?.lower)), ("ci_high", Self.jsonNumber(m.interval?.upper)),
                    ("seeds", .list(m.seeds.map { .integer(Int($0)) })),
                    ("values", .list(m.values.map { Self.jsonNumber($0) })),
                ]))
            })
            return .map([("index", .integer(c.cell.index)), ("hash", .string(c.cell.hash)), ("label", .string(label(of: c.cell))),
                         ("settings", .map(settings)), ("metrics", metricValues)])
        })
        let (header, rows) = grid
        let prov: ConfigValue = .map(provenance.rows.map { ($0.0, .string($0.1)) })
        return .map([
            ("study", .string(study.name)),
            ("spec_hash", .string(spec.hash)),
            ("store", .string(storePath)),
            ("seeds", .list(spec.seeds.map { .integer(Int($0)) })),
            ("metrics", .list(metrics.map { .string($0) })),
            ("axes", axes),
            ("layout", .map([("rows", .list(rowAxes.map { .string(spec.axes[$0].name) })),
                             ("columns", .list(columnAxes.map { .string(spec.axes[$0].name) }))])),
            ("runs", .map([("expected", .integer(expectedRuns)), ("stored", .integer(storedRuns)), ("diverged", .integer(divergedRuns))])),
            ("statistics", .string(ReportStatistics.methodNote)),
            ("cells", cellValues),
            ("claims", claimsJSON),
            ("baseline_differences", differencesJSON),
            ("table", .map([("header", .list(header.map { .string($0) })), ("rows", .list(rows.map { .list($0.map { .string($0) }) }))])),
            ("provenance", prov),
        ])
    }

    public func json() -> String { JSONWriter.pretty(jsonValue) + "\n" }

    /// The table in `format` (`md`, `csv`, `json`).
    public func render(_ format: Format) -> String {
        switch format {
        case .markdown: return markdown()
        case .csv: return csv()
        case .json: return json()
        }
    }

    public enum Format: String, CaseIterable, Sendable {
        case markdown = "md"
        case csv
        case json
    }
}

extension JSONWriter {
    /// Indented JSON (2 spaces), keys in document order.
    public static func pretty(_ value: ConfigValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case let .list(items) where !items.isEmpty:
            if items.allSatisfy({ if case .list = $0 { return false }; if case .map = $0 { return false }; return true }) {
                var out = ""
                write(value, sorted: false, into: &out)
                if out.count <= 100 { return out }
            }
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case let .map(pairs) where !pairs.isEmpty:
            return "{\n" + pairs.map { inner + quoted($0.key) + ": " + pretty($0.value, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            var out = ""
            write(value, sorted: false, into: &out)
            return out
        }
    }
}
