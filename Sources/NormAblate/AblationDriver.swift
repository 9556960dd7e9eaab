import Foundation

/// The i-th of n deterministic parts of a study's runs (`--shard i/n`, 1 ≤ i ≤ n): run
/// number k of the plan (cells in expansion order, seeds inside) belongs to shard
/// `k mod n + 1`, so every run is in exactly one shard and the shards are balanced.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, (1...count).contains(index) else {
            throw AblationError("--shard \(index)/\(count): expected i/n with 1 ≤ i ≤ n")
        }
        self.index = index
        self.count = count
    }

    /// Parses `i/n`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw AblationError("--shard '\(text)': expected i/n, e.g. 2/4 (the 2nd of 4 parts)")
        }
        try self.init(index: i, count: n)
    }

    public func contains(ordinal: Int) -> Bool { ordinal % count == index - 1 }
    public var description: String { "\(index)/\(count)" }
}

/// One (cell, seed) to run, with its position in the study's run order.
public struct PlannedRun: Sendable {
    public let ordinal: Int
    public let cell: Cell
    public let seed: UInt64
    /// The cell's axis values with short axis names (`norm_eval=true, steps=300`).
    public let label: String
    public var key: RunKey { RunKey(cellHash: cell.hash, seed: seed) }
}

/// Every run of a spec, in order: cells in expansion order, each cell's seeds inside.
public struct RunPlan: Sendable {
    public let spec: AblationSpec
    public let cells: [Cell]
    public let runs: [PlannedRun]

    public init(spec: AblationSpec, cells: [Cell]) {
        self.spec = spec
        self.cells = cells
        var runs: [PlannedRun] = []
        let short = spec.columnLabels
        for cell in cells {
            let label = cell.settings.map { "\(short[$0.path] ?? $0.path)=\($0.value)" }.joined(separator: ", ")
            for seed in spec.seeds { runs.append(PlannedRun(ordinal: runs.count, cell: cell, seed: seed, label: label)) }
        }
        self.runs = runs
    }

    /// The runs of one shard (all runs for nil), only those of `cellHashes` when given
    /// (e.g. ``claimsCells()`` for `--claims-only`).
    public func runs(in shard: Shard?, cellHashes: Set<String>? = nil) -> [PlannedRun] {
        runs.filter { run in
            (shard?.contains(ordinal: run.ordinal) ?? true) && (cellHashes?.contains(run.cell.hash) ?? true)
        }
    }

    /// The hashes of the cells the spec's claims compare (a fraction claim's and those of the
    /// claim it refers to), for `--claims-only`; throws when the spec declares no claims.
    public func claimsCells() throws -> Set<String> {
        guard !spec.claims.isEmpty else {
            throw AblationError("--claims-only: study '\(spec.name)' declares no claims; run it without --claims-only")
        }
        let selection = CellSelection(spec: spec, cells: cells)
        return Set(spec.claims.flatMap { ClaimEvaluator.cells(of: $0, in: spec.claims, selection: selection).map(\.hash) })
    }
}

/// How a study runs.
public struct DriverOptions: Sendable {
    /// Runs in parallel (worker threads).
    public var jobs: Int
    /// Compute threads each run gets (passed to the runner, recorded in provenance).
    public var threads: Int
    public var shard: Shard?
    /// Keep running the other runs after one throws (default: stop starting new runs).
    public var keepGoing: Bool
    /// Register the spec as another study in a store that already holds one.
    public var addStudy: Bool
    /// Run only the cells the spec's claims compare (with their seed rounds): a check of the
    /// verdicts at a fraction of the study's cost.
    public var claimsOnly: Bool

    public init(jobs: Int = 1, threads: Int? = nil, shard: Shard? = nil, keepGoing: Bool = false, addStudy: Bool = false,
                claimsOnly: Bool = false) {
        self.jobs = max(1, jobs)
        self.threads = threads ?? Self.defaultThreads(jobs: max(1, jobs))
        self.shard = shard
        self.keepGoing = keepGoing
        self.addStudy = addStudy
        self.claimsOnly = claimsOnly
    }

    /// The cores divided among the jobs (at least 1).
    public static func defaultThreads(jobs: Int) -> Int {
        max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, jobs))
    }
}

/// What happened to one run.
public enum RunOutcome: Sendable {
    /// Stored.
    case stored(CellResult)
    /// Another process stored this (cell, seed) first; this result was discarded.
    case alreadyStored
    /// The runner (or the store) threw; nothing was stored.
    case failed(String)
}

/// What a driver invocation did.
public struct RunSummary: Sendable {
    public var study: String
    public var storePath: String
    /// Runs of the whole study (all shards).
    public var studyRuns: Int
    /// Runs in this invocation's shard.
    public var planned: Int
    /// Of those, already in the store before this invocation.
    public var alreadyDone: Int
    /// Runs carried out and stored now.
    public var ran: Int
    public var diverged: Int
    public var discardedDuplicates: Int
    /// Runs another worker on the same store ran and stored while this one waited.
    public var storedElsewhere = 0
    public var failures: [(key: RunKey, label: String, error: String)]
    /// Planned runs not attempted (stopped after a failure).
    public var notStarted: Int
    public var seconds: Double
    /// Rounds of extra seeds a ``SeedPolicy`` ran after the first `min` seeds.
    public var seedRounds = 0

    /// Every planned run has a result now.
    public var isComplete: Bool { failures.isEmpty && notStarted == 0 }
}

/// Receives progress events (from worker threads; calls are serialized by the driver).
public protocol ProgressObserver: AnyObject {
    func studyStarted(study: String, total: Int, alreadyDone: Int, toRun: Int, jobs: Int)
    func runStarted(_ run: PlannedRun)
    func runFinished(_ run: PlannedRun, outcome: RunOutcome, seconds: Double)
    func studyFinished(_ summary: RunSummary)
}

/// Runs a study: validates the spec against the runner, registers it in the store, and
/// runs every (cell, seed) of the (shard of the) plan that has no stored result yet,
/// `jobs` at a time, committing each result in one transaction as soon as it is done.
public final class AblationDriver {
    public let spec: AblationSpec
    public let runner: any CellRunner
    public let store: ResultStore
    public let options: DriverOptions

    public init(spec: AblationSpec, runner: any CellRunner, store: ResultStore, options: DriverOptions = DriverOptions()) {
        self.spec = spec
        self.runner = runner
        self.store = store
        self.options = options
    }

    /// Validates every cell (throws ``SpecError`` with all problems) and returns the plan.
    public func plan() throws -> RunPlan {
        let cells = try spec.cells(validatingWith: runner)
        try spec.validateClaims(cells: cells, runner: runner)
        return RunPlan(spec: spec, cells: cells)
    }

    /// Runs what is missing. Throws before anything runs for spec problems or a store
    /// mismatch; failures of single runs are in the summary (see ``RunSummary/isComplete``).
    @discardableResult
    public func run(observer: ProgressObserver? = nil) throws -> RunSummary {
        let started = Date()
        let plan = try plan()
        let claimCells = try options.claimsOnly ? plan.claimsCells() : nil
        let study = try store.prepareStudy(spec, cells: plan.cells, runner: runner.name, addStudy: options.addStudy)
        let done = try store.completedKeys()
        let mine = plan.runs(in: options.shard, cellHashes: claimCells)
        let todo = mine.filter { !done.contains($0.key) }
        let git = GitInfo.current

        var summary = RunSummary(
            study: study.name, storePath: store.path, studyRuns: plan.runs.count, planned: mine.count,
            alreadyDone: mine.count - todo.count, ran: 0, diverged: 0, discardedDuplicates: 0,
            failures: [], notStarted: 0, seconds: 0)
        observer?.studyStarted(study: study.name, total: mine.count, alreadyDone: summary.alreadyDone, toRun: todo.count, jobs: options.jobs)
        execute(todo, study: study, git: git, observer: observer, into: &summary)
        summary.seconds = Date().timeIntervalSince(started)
        observer?.studyFinished(summary)

        // Seeds until the claims are clear (not per shard: a shard's store lacks the others' runs).
        if let policy = spec.seedPolicy, options.shard == nil {
            while summary.isComplete {
                let cells = Set(plan.cells.map(\.hash))
                let extra = policy.nextRound(spec: spec, cells: plan.cells, runs: try store.runs(cellHashes: cells), done: try store.completedKeys())
                if extra.isEmpty { break }
                summary.seedRounds += 1
                summary.studyRuns += extra.count
                summary.planned += extra.count
                let roundName = "\(study.name) (seed round \(summary.seedRounds + 1): claims with a 95 % CI wider than ±\(AblationReport.number(policy.targetHalfWidth)))"
                observer?.studyStarted(study: roundName, total: extra.count, alreadyDone: 0, toRun: extra.count, jobs: options.jobs)
                let before = summary, roundStart = Date()
                execute(extra, study: study, git: git, observer: observer, into: &summary)
                summary.seconds = Date().timeIntervalSince(started)
                var round = summary
                round.seconds = Date().timeIntervalSince(roundStart)
                round.study = roundName
                round.planned = extra.count
                round.alreadyDone = 0
                round.ran = summary.ran - before.ran
                round.diverged = summary.diverged - before.diverged
                round.discardedDuplicates = summary.discardedDuplicates - before.discardedDuplicates
                observer?.studyFinished(round)
            }
        }
        return summary
    }

    /// Runs `todo`, `jobs` at a time, adding what happened to `summary`.
    private func execute(_ todo: [PlannedRun], study: StudyRecord, git: GitInfo?, observer: ProgressObserver?, into summary: inout RunSummary) {
        let state = WorkState(summary: summary)
        let runner = self.runner, store = self.store, spec = self.spec, options = self.options
        let observerBox = ObserverBox(observer)
        // Concurrent processes on one store share the work: a run is claimed before it starts;
        // runs held by live workers elsewhere are waited for (or taken over once stale).
        let worker = WorkerIdentity()
        let heartbeat = ClaimHeartbeat(store: store, worker: worker)
        defer { heartbeat.stop() }
        /// Runs `item` unless another worker holds it (false) or stored it.
        let runOne: @Sendable (PlannedRun) -> Bool = { item in
            switch (try? store.claim(item.key, by: worker)) ?? .claimed {
            case .busy: return false
            case .stored:
                state.lock.lock(); state.summary.storedElsewhere += 1; state.lock.unlock()
                return true
            case .claimed: break
            }
            defer { try? store.releaseClaim(item.key, by: worker) }
            state.lock.lock()
            observerBox.observer?.runStarted(item)
            state.lock.unlock()

            let begin = Date()
            var outcome: RunOutcome
            do {
                let result = try runner.run(item.cell.config, seed: item.seed, threads: options.threads)
                let end = Date()
                let provenance = Provenance(runner: runner.name, study: study.name, specHash: spec.hash,
                                            gitCommit: git?.commit, gitDirty: git?.dirty, datasetHash: result.datasetHash,
                                            seed: item.seed, threads: options.threads, host: Host.name,
                                            startedAt: begin, finishedAt: end)
                switch try store.commit(result, key: item.key, config: item.cell.config, provenance: provenance) {
                case .inserted: outcome = .stored(result)
                case .alreadyPresent: outcome = .alreadyStored
                }
            } catch {
                let text = String(describing: error)
                try? store.recordFailure(key: item.key, study: study.name, error: text)
                outcome = .failed(text)
            }
            let seconds = Date().timeIntervalSince(begin)

            state.lock.lock()
            switch outcome {
            case let .stored(result):
                state.summary.ran += 1
                if result.diverged { state.summary.diverged += 1 }
            case .alreadyStored:
                state.summary.discardedDuplicates += 1
            case let .failed(text):
                state.summary.failures.append((item.key, item.label, text))
                if !options.keepGoing { state.stop = true }
            }
            observerBox.observer?.runFinished(item, outcome: outcome, seconds: seconds)
            state.lock.unlock()
            return true
        }
        let work: @Sendable () -> Void = {
            while true {
                state.lock.lock()
                guard !state.stop, state.next < todo.count else { state.lock.unlock(); break }
                let item = todo[state.next]
                state.next += 1
                state.lock.unlock()
                if !runOne(item) {
                    state.lock.lock(); state.heldElsewhere.append(item); state.lock.unlock()
                }
            }
            // Then the runs other workers hold: wait for their results, or take them over.
            while true {
                state.lock.lock()
                guard !state.stop, !state.heldElsewhere.isEmpty else { state.lock.unlock(); return }
                let item = state.heldElsewhere.removeFirst()
                state.lock.unlock()
                if !runOne(item) {
                    state.lock.lock(); state.heldElsewhere.append(item); state.lock.unlock()
                    Thread.sleep(forTimeInterval: 0.25)
                }
            }
        }

        let workers = min(options.jobs, max(1, todo.count))
        if workers <= 1 {
            work()
        } else {
            let group = DispatchGroup()
            for i in 0..<workers {
                group.enter()
                let thread = Thread {
                    work()
                    group.leave()
                }
                thread.name = "normlab-ablate-\(i)"
                thread.stackSize = 16 << 20
                thread.start()
            }
            group.wait()
        }
        summary = state.summary
        summary.notStarted += todo.count - state.next + state.heldElsewhere.count
    }
}

/// Shared state of the worker threads (guarded by `lock`).
private final class WorkState: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var stop = false
    /// Runs another worker held when this one reached them.
    var heldElsewhere: [PlannedRun] = []
    var summary: RunSummary
    init(summary: RunSummary) { self.summary = summary }
}

/// The observer, handed to worker threads (the driver serializes calls with its lock).
private final class ObserverBox: @unchecked Sendable {
    let observer: ProgressObserver?
    init(_ observer: ProgressObserver?) { self.observer = observer }
}
