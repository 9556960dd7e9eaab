import Foundation
import SwiftCSV
import Testing
@testable import NormAblate

/// `ExportedRuns` and `ResultStore.importRuns`: a store rebuilt from a report's `runs.csv`.
@Suite struct ImportTests {
    /// A complete small study in a store, and its exported per-run table.
    private func exportedStudy(_ dir: TempDir) throws -> (store: ResultStore, csv: String) {
        let store = try ResultStore(path: dir.file("original.sqlite"))
        try AblationDriver(spec: try smallSpec(), runner: FakeRunner(), store: store, options: DriverOptions(threads: 2)).run()
        return (store, try AblationReport.load(store: store, study: "small").runsCSV())
    }

    private func parse(_ csv: String, spec: AblationSpec? = nil) throws -> ExportedRuns {
        let spec = try spec ?? smallSpec()
        return try ExportedRuns(csv: csv, source: "runs.csv", spec: spec, cells: try spec.cells())
    }

    /// The message of the error `body` throws (failing the test when it does not throw).
    private func message(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return ""
    }

    /// `csv` with one field (of the `row`-th run, in `column`) replaced.
    private static func editing(_ csv: String, row: Int, column: String, to value: String) throws -> String {
        let table = try CSV<Enumerated>(string: csv, delimiter: .comma)
        var rows = table.rows
        rows[row][try #require(table.header.firstIndex(of: column))] = value
        return ([table.header] + rows).map { $0.map(AblationReport.csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    @Test func anImportedStoreReportsWhatTheOriginalDid() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let (original, csv) = try exportedStudy(dir)
        let spec = try smallSpec()
        let copy = try ResultStore(path: dir.file("copy.sqlite"))
        let summary = try copy.importRuns(try parse(csv), spec: spec, cells: try spec.cells())
        #expect(summary == ResultStore.ImportSummary(added: 24, identical: 0))
        let before = Dictionary(uniqueKeysWithValues: try original.runs().map { ($0.key, $0) })
        for run in try copy.runs() {
            let o = try #require(before[run.key])
            #expect(run.result.sameFinalMetrics(as: o.result) && run.result.curves.isEmpty)
            #expect(run.result.datasetHash == o.result.datasetHash)
            #expect(run.result.telemetry["imported_from"] == .string("runs.csv"))
            #expect(run.provenance == o.provenance, "\(run.key)")
        }
        #expect(try copy.runCount() == 24)
        // the report's tables are byte for byte the original's
        let a = try AblationReport.load(store: original, study: "small"), b = try AblationReport.load(store: copy, study: "small")
        #expect(a.csv() == b.csv() && a.runsCSV() == b.runsCSV() && a.markdownTable() == b.markdownTable())
        // importing again changes nothing
        #expect(try copy.importRuns(try parse(csv), spec: spec, cells: try spec.cells()) == ResultStore.ImportSummary(added: 0, identical: 24))
    }

    @Test func aStudyResumesFromAnImportedPart() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let (original, csv) = try exportedStudy(dir)
        let lines = csv.split(separator: "\n")
        let part = (lines.prefix(11).joined(separator: "\n")) + "\n"  // header and the first 10 runs
        let spec = try smallSpec()
        let copy = try ResultStore(path: dir.file("copy.sqlite"))
        #expect(try copy.importRuns(try parse(part), spec: spec, cells: try spec.cells()).added == 10)
        let runner = FakeRunner()
        let s = try AblationDriver(spec: spec, runner: runner, store: copy, options: DriverOptions(threads: 2)).run()
        #expect(s.alreadyDone == 10 && s.ran == 14 && runner.completedRuns == 14)
        let a = try AblationReport.load(store: original, study: "small"), b = try AblationReport.load(store: copy, study: "small")
        #expect(a.csv() == b.csv())
    }

    @Test func aConflictingStoredRunImportsNothing() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let (_, csv) = try exportedStudy(dir)
        let edited = try Self.editing(csv, row: 2, column: "test_accuracy", to: "0.125")
        let spec = try smallSpec()
        let copy = try ResultStore(path: dir.file("copy.sqlite"))
        try copy.importRuns(try parse(csv), spec: spec, cells: try spec.cells())
        let text = message { _ = try copy.importRuns(try parse(edited), spec: spec, cells: try spec.cells()) }
        #expect(text.contains("holds other results for 1 of these runs") && text.contains("nothing was imported"), "\(text)")
        #expect(try copy.runCount() == 24)
        // a fresh store takes the edited table as it is (the value parses; it is the user's table)
        let other = try ResultStore(path: dir.file("other.sqlite"))
        #expect(try other.importRuns(try parse(edited), spec: spec, cells: try spec.cells()).added == 24)
    }

    @Test func everyBadTableIsOneNamedProblem() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let (_, csv) = try exportedStudy(dir)
        let lines = csv.split(separator: "\n").map(String.init)
        let header = try CSV<Enumerated>(string: csv, delimiter: .comma).header
        /// The table with one field of the first run replaced.
        func edited(_ column: String, _ value: String) throws -> String { try Self.editing(csv, row: 0, column: column, to: value) }
        let cases: [(String, String)] = [
            (lines[1...].joined(separator: "\n"), "no column"),
            (lines[0] + "\n", "has no runs"),
            (lines[0].replacingOccurrences(of: "host", with: "machine") + "\n" + lines[1...].joined(separator: "\n"), "no column 'host'"),
            (lines[0].replacingOccurrences(of: "diverged", with: "@").replacingOccurrences(of: "dataset_hash", with: "diverged")
                .replacingOccurrences(of: "@", with: "dataset_hash") + "\n" + lines[1...].joined(separator: "\n"),
             "the metric columns must come between 'diverged' and 'dataset_hash'"),
            (try edited("study", "other"), "line 2: a run of study 'other', not of 'small'"),
            (try edited("cell", "99"), "line 2: cell 99 is not one of the study's 8 cells"),
            (try edited("cell", "x"), "line 2: cell 'x' is not a cell index"),
            (try edited("cell_hash", String(repeating: "0", count: 64)), "the spec changed since the export"),
            (try edited("seed", "-1"), "line 2: seed '-1' is not a seed"),
            (try edited("diverged", "maybe"), "diverged 'maybe' is not true or false"),
            (try edited("test_accuracy", "high"), "metric test_accuracy 'high' is not a number"),
            (try edited("threads", "0"), "threads '0' is not a thread count"),
            (try edited("started_at", "yesterday"), "started_at 'yesterday' is not a time"),
            (try edited("started_at", "2999-01-01T00:00:00.000Z"), "finished_at is before started_at"),
            (try edited("git_dirty", "perhaps"), "git_dirty 'perhaps' is not true, false or empty"),
            (try edited("runner", ""), "runner is empty"),
            (try edited("runner", "other"), "runs of several runners (fake, other)"),
            (lines[0] + "\n" + lines[1] + "\n" + lines[1] + "\n", "line 3: cell 0 seed 0 is listed twice"),
            (lines[0] + "\n" + lines[1] + ",extra\n", "line 2: \(header.count + 1) fields, the header has \(header.count)"),
        ]
        for (text, fragment) in cases {
            let m = message { _ = try parse(text) }
            #expect(m.contains(fragment) && !m.contains("\n"), "\(fragment): \(m)")
        }
        // a spec whose cells changed (another learning rate) rejects every row
        let changed = try AblationSpec.parse(yaml: smallSpecYAML.replacingOccurrences(of: "momentum: 0.9", with: "momentum: 0.8"), source: "small.yaml")
        #expect(message { _ = try parse(csv, spec: changed) }.contains("the spec changed since the export"))
    }
}
