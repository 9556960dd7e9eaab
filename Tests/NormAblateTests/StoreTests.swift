import Foundation
import GRDB
import NormCore
import Testing
@testable import NormAblate

/// Records every event (serialized by the driver).
final class EventLog: ProgressObserver {
    var started = 0, finished = 0, failed = 0
    var total = -1, toRun = -1
    func studyStarted(study: String, total: Int, alreadyDone: Int, toRun: Int, jobs: Int) { self.total = total; self.toRun = toRun }
    func runStarted(_ run: PlannedRun) { started += 1 }
    func runFinished(_ run: PlannedRun, outcome: RunOutcome, seconds: Double) {
        finished += 1
        if case .failed = outcome { failed += 1 }
    }
    func studyFinished(_ summary: RunSummary) {}
}

@Suite struct StoreTests {
    @Test func runsEverythingOnceThenNothing() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("results/small.sqlite"))
        let log = EventLog()
        let s1 = try AblationDriver(spec: try smallSpec(), runner: FakeRunner(), store: store).run(observer: log)
        #expect(s1.planned == 24 && s1.ran == 24 && s1.alreadyDone == 0 && s1.isComplete)
        #expect(log.total == 24 && log.toRun == 24 && log.started == 24 && log.finished == 24)
        #expect(try store.runCount() == 24)
        let runner = FakeRunner()
        let s2 = try AblationDriver(spec: try smallSpec(), runner: runner, store: store).run()
        #expect(s2.ran == 0 && s2.alreadyDone == 24)
        #expect(runner.completedRuns == 0)
        #expect(try store.runCount() == 24)
    }

    @Test func storeIsWALAndHoldsProvenance() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let path = dir.file("s.sqlite")
        let spec = try smallSpec()
        try AblationDriver(spec: spec, runner: FakeRunner(), store: try ResultStore(path: path), options: DriverOptions(threads: 3)).run()
        let db = try DatabaseQueue(path: path)
        #expect(try db.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
        let runs = try ResultStore(path: path).runs()
        #expect(runs.count == 24)
        let p = runs[0].provenance
        #expect(p.runner == "fake" && p.study == "small" && p.specHash == spec.hash && p.threads == 3)
        #expect(p.normlabVersion == NormlabVersion.string)
        #expect(!p.host.isEmpty && p.finishedAt >= p.startedAt)
        #expect(runs[0].result.datasetHash?.count == 64)
        #expect(runs[0].result.telemetry["runner"] == .string("fake"))
        #expect(runs[0].result.curves["test_accuracy"]?.count == 3)
        // git provenance when the tests run from a checkout (absent otherwise)
        if let git = GitInfo.current {
            #expect(p.gitCommit == git.commit && p.gitDirty == git.dirty)
        }
        // UNIQUE (cell_hash, seed) in the schema itself
        #expect(throws: (any Error).self) {
            try db.write { try $0.execute(sql: "INSERT INTO runs SELECT NULL, cell_hash, seed, diverged, telemetry_json, dataset_hash, runner, study, spec_hash, normlab_version, git_commit, git_dirty, threads, host, started_at, finished_at, duration_s FROM runs LIMIT 1") }
        }
    }

    @Test func aCrashMidStudyKeepsExactlyTheCompletedRunsAndResumes() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let path = dir.file("crash.sqlite")
        let spec = try smallSpec()
        // the runner breaks after 7 runs (like a machine going away)
        let broken = FakeRunner(.init(failAfter: 7))
        let s1 = try AblationDriver(spec: spec, runner: broken, store: try ResultStore(path: path)).run()
        #expect(s1.ran == 7 && s1.failures.count == 1 && s1.notStarted == 24 - 8 && !s1.isComplete)
        let store = try ResultStore(path: path)
        #expect(try store.runCount() == 7)
        #expect(try store.openFailures().count == 1)
        let plan = RunPlan(spec: spec, cells: try spec.cells())
        #expect(try store.completedKeys() == Set(plan.runs.prefix(7).map(\.key)))
        // the rerun does only the missing 17, no duplicates
        let runner = FakeRunner()
        let s2 = try AblationDriver(spec: spec, runner: runner, store: store).run()
        #expect(s2.alreadyDone == 7 && s2.ran == 17 && s2.isComplete)
        #expect(runner.completedRuns == 17)
        #expect(try store.runCount() == 24)
        #expect(try store.openFailures().isEmpty)
        // and the results equal an uninterrupted study's
        let clean = try ResultStore(path: dir.file("clean.sqlite"))
        try AblationDriver(spec: spec, runner: FakeRunner(), store: clean).run()
        let a = try outcomes(store), b = try outcomes(clean)
        #expect(a.count == 24 && a.keys == b.keys && a.allSatisfy { b[$0.key]!.sameOutcome(as: $0.value) })
    }

    @Test func keepGoingRunsTheRestAfterAFailure() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let s = try AblationDriver(spec: try smallSpec(), runner: FakeRunner(.init(failAfter: 20)), store: try ResultStore(path: dir.file("k.sqlite")),
                                   options: DriverOptions(keepGoing: true)).run()
        #expect(s.ran == 20 && s.failures.count == 4 && s.notStarted == 0)
    }

    @Test func parallelJobsEqualASerialRun() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let spec = try smallSpec()
        let serial = try ResultStore(path: dir.file("serial.sqlite"))
        try AblationDriver(spec: spec, runner: FakeRunner(), store: serial, options: DriverOptions(jobs: 1, threads: 1)).run()
        let parallel = try ResultStore(path: dir.file("parallel.sqlite"))
        let log = EventLog()
        let s = try AblationDriver(spec: spec, runner: FakeRunner(.init(sleepSeconds: 0.01)), store: parallel,
                                   options: DriverOptions(jobs: 3, threads: 1)).run(observer: log)
        #expect(s.ran == 24 && log.finished == 24)
        let a = try outcomes(serial), b = try outcomes(parallel)
        #expect(a.count == 24 && a.keys == b.keys)
        #expect(a.allSatisfy { b[$0.key]!.sameOutcome(as: $0.value) })
        // the aggregated tables are identical too
        #expect(try AblationReport.load(store: serial).csv() == (try AblationReport.load(store: parallel).csv()))
    }

    @Test func twoProcessesRacingOnARunStoreItOnce() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let spec = try smallSpec()
        let cells = try spec.cells()
        let a = try ResultStore(path: dir.file("race.sqlite")), b = try ResultStore(path: dir.file("race.sqlite"))
        try a.prepareStudy(spec, cells: cells, runner: "fake")
        let result = try FakeRunner().run(cells[0].config, seed: 0, threads: 1)
        let p = Provenance(runner: "fake", study: "small", specHash: spec.hash, gitCommit: nil, gitDirty: nil, datasetHash: nil,
                           seed: 0, threads: 1, host: "h", startedAt: Date(), finishedAt: Date())
        let key = RunKey(cellHash: cells[0].hash, seed: 0)
        #expect(try a.commit(result, key: key, config: cells[0].config, provenance: p) == .inserted)
        #expect(try b.commit(result, key: key, config: cells[0].config, provenance: p) == .alreadyPresent)
        #expect(try a.runCount() == 1)
        #expect(try a.read(sql: "SELECT COUNT(*) FROM metrics") == 3)
    }

    @Test func aStoreRefusesAnotherSpecOrRunner() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let path = dir.file("s.sqlite")
        try AblationDriver(spec: try smallSpec(), runner: FakeRunner(), store: try ResultStore(path: path)).run()
        // same name, different spec
        let changed = try AblationSpec.parse(yaml: variant("  optimizer: {lr: 0.1, momentum: 0.9}", "  optimizer: {lr: 0.1, momentum: 0.5}"), source: "c")
        do {
            try AblationDriver(spec: changed, runner: FakeRunner(), store: try ResultStore(path: path)).run()
            Issue.record("expected a refusal")
        } catch let e as AblationError {
            #expect(e.description.contains("holds study 'small' from a different spec"))
            #expect(e.description.contains("differs at base.optimizer.momentum"))
        }
        // another study: refused unless --add-study
        let other = try AblationSpec.parse(yaml: variant("name: small", "name: other"), source: "o")
        do {
            try AblationDriver(spec: other, runner: FakeRunner(), store: try ResultStore(path: path)).run()
            Issue.record("expected a refusal")
        } catch let e as AblationError {
            #expect(e.description.contains("spec 'other' is a different study"))
            #expect(e.description.contains("--add-study"))
        }
        // with addStudy: registered, and the identical (cell, seed) runs are shared, not rerun
        let runner = FakeRunner()
        let s = try AblationDriver(spec: other, runner: runner, store: try ResultStore(path: path), options: DriverOptions(addStudy: true)).run()
        #expect(s.ran == 0 && s.alreadyDone == 24 && runner.completedRuns == 0)
        #expect(try ResultStore(path: path).studies().map(\.name) == ["small", "other"])
        // another runner
        struct Other: CellRunner {
            var name: String { "train" }
            func validate(_ config: CellConfig) -> [ConfigProblem] { [] }
            func run(_ config: CellConfig, seed: UInt64, threads: Int) throws -> CellResult { CellResult(metrics: [:]) }
        }
        #expect(throws: AblationError.self) { try AblationDriver(spec: try smallSpec(), runner: Other(), store: try ResultStore(path: path)).run() }
        // a report needs --study now
        #expect(throws: AblationError.self) { try AblationReport.load(store: try ResultStore(path: path)) }
        #expect(try AblationReport.load(store: try ResultStore(path: path), study: "other").storedRuns == 24)
    }

    @Test func invalidSpecsRunNothing() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let path = dir.file("never.sqlite")
        let bad = try AblationSpec.parse(yaml: variant("model.width: [8, 16]", "model.width: [8, 16]\n  epochs: [1, 0]")
            .replacingOccurrences(of: "rows: [model.norm.name, model.width]", with: "rows: [model.norm.name, model.width, epochs]"), source: "b")
        let runner = FakeRunner()
        #expect(throws: SpecError.self) { try AblationDriver(spec: bad, runner: runner, store: try ResultStore(path: path)).run() }
        #expect(runner.completedRuns == 0)
        #expect(try ResultStore(path: path).studies().isEmpty)
    }

    @Test func notAStoreIsRefused() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let path = dir.file("other.sqlite")
        let db = try DatabaseQueue(path: path)
        try db.write { try $0.execute(sql: "CREATE TABLE t (x)") }
        #expect(throws: AblationError.self) { try ResultStore(path: path) }
        #expect(throws: AblationError.self) { try ResultStore(path: dir.file("missing.sqlite"), create: false) }
    }
}

@Suite struct ShardMergeTests {
    @Test func shardsThenMergeEqualOneRun() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let spec = try smallSpec()
        var paths: [String] = []
        for i in 1...3 {
            let path = dir.file(StudyPaths.defaultStore(for: spec, shard: try Shard(index: i, count: 3), root: "shards"))
            let s = try AblationDriver(spec: spec, runner: FakeRunner(), store: try ResultStore(path: path),
                                       options: DriverOptions(shard: try Shard(index: i, count: 3))).run()
            #expect(s.planned == 8 && s.ran == 8 && s.studyRuns == 24)
            paths.append(path)
        }
        #expect(paths[1].hasSuffix("shards/small.shard-2-of-3.sqlite"))
        let merged = dir.file("merged.sqlite")
        let summary = try ResultStore.merge(paths, into: merged)
        #expect(summary.added == 24 && summary.identical == 0 && summary.studiesAdded == ["small"])
        let one = try ResultStore(path: dir.file("one.sqlite"))
        try AblationDriver(spec: spec, runner: FakeRunner(), store: one).run()
        let a = try outcomes(try ResultStore(path: merged)), b = try outcomes(one)
        #expect(a.keys == b.keys && a.allSatisfy { b[$0.key]!.sameOutcome(as: $0.value) })
        #expect(try AblationReport.load(store: try ResultStore(path: merged)).csv() == (try AblationReport.load(store: one).csv()))
        // the merged store is a normal store: a rerun does nothing
        let runner = FakeRunner()
        #expect(try AblationDriver(spec: spec, runner: runner, store: try ResultStore(path: merged)).run().ran == 0)
        // merging again is idempotent (identical results kept once)
        let again = try ResultStore.merge([paths[0]], into: merged)
        #expect(again.added == 0 && again.identical == 8)
        #expect(try ResultStore(path: merged).runCount() == 24)
    }

    @Test func mergeRefusesConflictingResultsAndChangesNothing() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let spec = try smallSpec()
        let a = dir.file("a.sqlite"), b = dir.file("b.sqlite")
        try AblationDriver(spec: spec, runner: FakeRunner(), store: try ResultStore(path: a)).run()
        try AblationDriver(spec: spec, runner: FakeRunner(), store: try ResultStore(path: b)).run()
        // tamper with one result in b
        try DatabaseQueue(path: b).write { db in
            try db.execute(sql: "UPDATE metrics SET value = value + 0.001 WHERE name = 'test_accuracy' AND run_id = (SELECT MIN(id) FROM runs)")
        }
        let target = dir.file("c.sqlite")
        do {
            _ = try ResultStore.merge([a, b], into: target)
            Issue.record("expected a conflict")
        } catch let e as AblationError {
            #expect(e.description.contains("1 conflicting result for the same (cell, seed)"))
            #expect(e.description.contains("nothing was merged"))
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        // into an existing store: it keeps what it had
        let before = try ResultStore(path: a).runCount()
        #expect(throws: AblationError.self) { try ResultStore.merge([b], into: a) }
        #expect(try ResultStore(path: a).runCount() == before)
    }

    @Test func mergeRefusesDifferentSpecsUnderOneNameAndOtherRunners() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let a = dir.file("a.sqlite"), b = dir.file("b.sqlite")
        try AblationDriver(spec: try smallSpec(), runner: FakeRunner(), store: try ResultStore(path: a)).run()
        let changed = try AblationSpec.parse(yaml: variant("seeds: 3", "seeds: 2"), source: "c")
        try AblationDriver(spec: changed, runner: FakeRunner(), store: try ResultStore(path: b)).run()
        do {
            _ = try ResultStore.merge([a, b], into: dir.file("c.sqlite"))
            Issue.record("expected a refusal")
        } catch let e as AblationError {
            #expect(e.description.contains("study 'small'") && e.description.contains("different spec"))
        }
        #expect(throws: AblationError.self) { try ResultStore.merge([a, dir.file("nope.sqlite")], into: dir.file("d.sqlite")) }
    }
}

extension ResultStore {
    /// An integer from a one-value query (tests only).
    func read(sql: String) throws -> Int {
        try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: sql) ?? -1 }
    }
}
