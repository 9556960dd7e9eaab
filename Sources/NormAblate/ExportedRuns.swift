import Foundation
import NormCore
import SwiftCSV

/// Runs read back from a report's per-run table (`runs.csv`, ``AblationReport/runsCSV()``),
/// checked against the study's spec: how a result store is rebuilt from a committed export
/// when the store itself is gone (`normlab ablate import`).
///
/// What comes back is what the table holds: each run's final metrics bit for bit (the table
/// writes Swift's shortest round-tripping decimal), the divergence flag, the dataset hash and
/// the provenance (runner, threads, host, start and finish times, git commit and state,
/// normlab version). Per-epoch curves and telemetry are not in the table; an imported run has
/// no curves and its telemetry names the file it came from (`{imported_from: PATH}`).
public struct ExportedRuns: Sendable {
    public struct Run: Sendable {
        public let key: RunKey
        public let cellIndex: Int
        public let result: CellResult
        public let provenance: Provenance
    }

    public let runs: [Run]
    /// The runner every run came from (one per table).
    public let runner: String

    /// Parses `text` (the contents of `source`) as the per-run table of `spec`'s study, whose
    /// cells are `cells`. Throws naming the first problem: a missing column, a row of another
    /// study, a cell whose hash is not the spec's (the spec changed since the export), a
    /// value that does not parse, a (cell, seed) listed twice, or runs of several runners.
    public init(csv text: String, source: String, spec: AblationSpec, cells: [Cell]) throws {
        let table: CSV<Enumerated>
        do { table = try CSV<Enumerated>(string: text, delimiter: .comma, loadColumns: false) } catch {
            throw AblationError("\(source): not a CSV table (\(error))")
        }
        let columns = try Columns(header: table.header, source: source)
        guard !table.rows.isEmpty else { throw AblationError("\(source): the table has no runs") }
        var runs: [Run] = []
        var seen = Set<RunKey>()
        for (i, fields) in table.rows.enumerated() {
            let row = Row(fields: fields, columns: columns, line: i + 2, source: source)
            let run = try row.run(spec: spec, cells: cells)
            guard seen.insert(run.key).inserted else { throw row.problem("cell \(run.cellIndex) seed \(run.key.seed) is listed twice") }
            runs.append(run)
        }
        let runners = Set(runs.map(\.provenance.runner))
        guard runners.count == 1, let runner = runners.first else {
            throw AblationError("\(source): runs of several runners (\(runners.sorted().joined(separator: ", "))); a store holds one runner's results")
        }
        self.runs = runs
        self.runner = runner
    }

    /// Where each column is: the fixed ones by name, the metrics between the run columns
    /// (`seed`, `diverged`) and the provenance columns (from `dataset_hash`).
    struct Columns {
        let index: [String: Int]
        let metrics: [(name: String, index: Int)]
        let count: Int

        init(header: [String], source: String) throws {
            var index: [String: Int] = [:]
            for (i, name) in header.enumerated() where index[name] == nil { index[name] = i }
            let required = AblationReport.runsCSVCellColumns + AblationReport.runsCSVRunColumns
                + AblationReport.runsCSVProvenanceColumns
            let missing = required.filter { index[$0] == nil }
            guard missing.isEmpty else {
                throw AblationError("\(source): not a normlab runs table (no column \(missing.map { "'\($0)'" }.joined(separator: ", "))); import reads the runs.csv a report writes")
            }
            let lastRun = AblationReport.runsCSVRunColumns.last!, firstProvenance = AblationReport.runsCSVProvenanceColumns[0]
            let first = index[lastRun]! + 1, end = index[firstProvenance]!
            guard first <= end else { throw AblationError("\(source): the metric columns must come between '\(lastRun)' and '\(firstProvenance)'") }
            self.index = index
            self.metrics = (first..<end).map { (header[$0], $0) }
            self.count = header.count
        }
    }

    /// One line of the table, with the line number for messages.
    struct Row {
        let fields: [String]
        let columns: Columns
        let line: Int
        let source: String

        func problem(_ text: String) -> AblationError { AblationError("\(source) line \(line): \(text)") }

        func text(_ column: String) -> String { fields[columns.index[column]!] }

        func parsed<T>(_ column: String, as kind: String, _ parse: (String) -> T?) throws -> T {
            guard let value = parse(text(column)) else { throw problem("\(column) '\(text(column))' is not \(kind)") }
            return value
        }

        func run(spec: AblationSpec, cells: [Cell]) throws -> Run {
            guard fields.count == columns.count else { throw problem("\(fields.count) fields, the header has \(columns.count)") }
            guard text("study") == spec.name else { throw problem("a run of study '\(text("study"))', not of '\(spec.name)'") }
            let index = try parsed("cell", as: "a cell index") { Int($0) }
            guard cells.indices.contains(index) else { throw problem("cell \(index) is not one of the study's \(cells.count) cells") }
            guard text("cell_hash") == cells[index].hash else {
                throw problem("cell \(index) has hash \(text("cell_hash").prefix(12)) in the table but \(cells[index].hash.prefix(12)) in the spec: the spec changed since the export, so these results are not its cell's")
            }
            let seed = try parsed("seed", as: "a seed") { UInt64($0) }
            let key = RunKey(cellHash: cells[index].hash, seed: seed)
            return Run(key: key, cellIndex: index, result: try result(), provenance: try provenance(spec: spec, seed: seed))
        }

        func result() throws -> CellResult {
            var metrics: [String: Double] = [:]
            for m in columns.metrics where !fields[m.index].isEmpty {
                guard let v = Double(fields[m.index]) else { throw problem("metric \(m.name) '\(fields[m.index])' is not a number") }
                metrics[m.name] = v
            }
            let diverged = try parsed("diverged", as: "true or false", Self.flag)
            let dataset = text("dataset_hash")
            return CellResult(metrics: metrics, telemetry: .map([("imported_from", .string(source))]),
                              diverged: diverged, datasetHash: dataset.isEmpty ? nil : dataset)
        }

        func provenance(spec: AblationSpec, seed: UInt64) throws -> Provenance {
            let threads = try parsed("threads", as: "a thread count") { Int($0).flatMap { $0 >= 1 ? $0 : nil } }
            let started = try parsed("started_at", as: "a time (ISO 8601)", Timestamp.date)
            let finished = try parsed("finished_at", as: "a time (ISO 8601)", Timestamp.date)
            guard finished >= started else { throw problem("finished_at is before started_at") }
            let dirtyText = text("git_dirty")
            let dirty: Bool? = dirtyText.isEmpty ? nil : try parsed("git_dirty", as: "true, false or empty", Self.flag)
            let runner = text("runner"), commit = text("git_commit"), dataset = text("dataset_hash")
            guard !runner.isEmpty else { throw problem("runner is empty") }
            return Provenance(runner: runner, study: spec.name, specHash: spec.hash, normlabVersion: text("normlab_version"),
                              gitCommit: commit.isEmpty ? nil : commit, gitDirty: dirty, datasetHash: dataset.isEmpty ? nil : dataset,
                              seed: seed, threads: threads, host: text("host"), startedAt: started, finishedAt: finished)
        }

        static func flag(_ s: String) -> Bool? { s == "true" ? true : s == "false" ? false : nil }
    }
}

extension ResultStore {
    public struct ImportSummary: Sendable, Equatable {
        /// Runs written to the store.
        public var added: Int
        /// Runs the store already held with the same final metrics (kept as they were).
        public var identical: Int
    }

    /// Registers `spec`'s study (as a run does; `addStudy` as there), then, in one transaction,
    /// stores every run of `exported` the store does not hold yet. A (cell, seed) the store
    /// holds with other final metrics is a conflict: no run is written.
    public func importRuns(_ exported: ExportedRuns, spec: AblationSpec, cells: [Cell], addStudy: Bool = false) throws -> ImportSummary {
        try prepareStudy(spec, cells: cells, runner: exported.runner, addStudy: addStudy)
        return try write { db in
            // read and write in one transaction: a run stored meanwhile by a worker is seen
            let held = try Self.fetchRuns(db, cellHashes: Set(exported.runs.map(\.key.cellHash)))
            let stored = Dictionary(uniqueKeysWithValues: held.map { ($0.key, $0.result) })
            let conflicts = exported.runs.filter { run in stored[run.key].map { !$0.sameFinalMetrics(as: run.result) } ?? false }
            guard conflicts.isEmpty else {
                let named = conflicts.prefix(3).map { "cell \($0.cellIndex) seed \($0.key.seed)" }.joined(separator: ", ")
                throw AblationError("import: the store \(path) holds other results for \(conflicts.count) of these runs (\(named)\(conflicts.count > 3 ? ", …" : "")); nothing was imported")
            }
            var summary = ImportSummary(added: 0, identical: 0)
            for run in exported.runs {
                guard stored[run.key] == nil else { summary.identical += 1; continue }
                let config = cells[run.cellIndex].config.root.orderedJSON
                _ = try Self.insert(db, key: run.key, configJSON: config, result: run.result, provenance: run.provenance)
                summary.added += 1
            }
            return summary
        }
    }
}
