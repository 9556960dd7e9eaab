import Foundation
import NormCore
import Testing
@testable import NormAblate

/// Claims let several `normlab ablate` processes fill one store without running a run twice
/// (issue 17, item 6).
@Suite struct RunClaimTests {
    let key = RunKey(cellHash: "abc", seed: 1)

    /// A process id that is not alive: a child that already exited and was reaped.
    func deadPID() throws -> Int32 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        return child.processIdentifier
    }

    @Test func aLiveWorkersClaimIsRespected() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let me = WorkerIdentity(), other = WorkerIdentity(pid: getppid())
        #expect(try store.claim(key, by: other) == .claimed)
        #expect(try store.claim(key, by: me) == .busy)
        #expect(try store.claim(key, by: other) == .busy)   // its own claim: another thread of it runs it
        try store.releaseClaim(key, by: other)
        #expect(try store.claim(key, by: me) == .claimed)
        #expect(try store.claims()[key]?.owner == me.owner)
    }

    @Test func aDeadWorkersClaimOnThisHostIsTakenOverAtOnce() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let dead = WorkerIdentity(pid: try deadPID())
        #expect(try store.claim(key, by: dead) == .claimed)
        #expect(try store.claim(key, by: WorkerIdentity()) == .claimed)
    }

    @Test func aClaimWithAnExpiredHeartbeatIsTakenOverFromAnyHost() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let remote = WorkerIdentity(host: "elsewhere.invalid", pid: 1)
        let now = Date()
        #expect(try store.claim(key, by: remote, now: now.addingTimeInterval(-WorkerIdentity.expiry - 1)) == .claimed)
        #expect(try store.claim(key, by: WorkerIdentity(), now: now) == .claimed)
        // A fresh remote claim is respected, and a heartbeat keeps it fresh.
        let key2 = RunKey(cellHash: "abc", seed: 2)
        #expect(try store.claim(key2, by: remote, now: now.addingTimeInterval(-WorkerIdentity.expiry + 5)) == .claimed)
        try store.refreshClaims(of: remote, now: now)
        #expect(try store.claim(key2, by: WorkerIdentity(), now: now.addingTimeInterval(WorkerIdentity.expiry - 1)) == .busy)
    }

    @Test func aStoredRunIsNotClaimed() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("s.sqlite"))
        try AblationDriver(spec: try smallSpec(), runner: FakeRunner(), store: store).run()
        let stored = try #require(try store.completedKeys().first)
        #expect(try store.claim(stored, by: WorkerIdentity()) == .stored)
        #expect(try store.claims().isEmpty)   // every claim was released after its commit
    }

    @Test func theDriverSkipsALiveClaimAndRecoversADeadOne() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let store = try ResultStore(path: dir.file("s.sqlite"))
        let spec = try smallSpec()
        let plan = RunPlan(spec: spec, cells: try spec.cells(validatingWith: FakeRunner()))
        let dead = WorkerIdentity(pid: try deadPID())
        _ = try store.prepareStudy(spec, cells: plan.cells, runner: FakeRunner().name)
        #expect(try store.claim(plan.runs[0].key, by: dead) == .claimed)
        // A live holder of run 1 that stores it a moment later, as another process would.
        let live = WorkerIdentity(pid: getppid())
        #expect(try store.claim(plan.runs[1].key, by: live) == .claimed)
        let otherRunner = FakeRunner()
        let otherResult = try otherRunner.run(plan.runs[1].cell.config, seed: plan.runs[1].seed, threads: 1)
        let storeLater = Thread {
            Thread.sleep(forTimeInterval: 0.5)
            let p = Provenance(runner: "fake", study: spec.name, specHash: spec.hash, gitCommit: nil, gitDirty: nil,
                               datasetHash: nil, seed: plan.runs[1].seed, threads: 1, host: "elsewhere",
                               startedAt: Date(), finishedAt: Date())
            _ = try? store.commit(otherResult, key: plan.runs[1].key, config: plan.runs[1].cell.config, provenance: p)
            try? store.releaseClaim(plan.runs[1].key, by: live)
        }
        storeLater.start()
        let runner = FakeRunner()
        let summary = try AblationDriver(spec: spec, runner: runner, store: store).run()
        #expect(summary.isComplete && summary.ran == plan.runs.count - 1 && summary.storedElsewhere == 1)
        #expect(runner.completedRuns == plan.runs.count - 1)
        #expect(try store.runCount() == plan.runs.count)
    }
}
