import Foundation
import GRDB
import NormCore
import NormNet

/// A (cell, seed) pair: the unit that runs once and is stored once.
public struct RunKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let cellHash: String
    public let seed: UInt64
    public init(cellHash: String, seed: UInt64) {
        self.cellHash = cellHash
        self.seed = seed
    }
    public static func < (a: RunKey, b: RunKey) -> Bool { (a.cellHash, a.seed) < (b.cellHash, b.seed) }
    public var description: String { "cell \(cellHash.prefix(12)) seed \(seed)" }
}

/// One stored run.
public struct StoredRun: Sendable {
    public let key: RunKey
    public let result: CellResult
    public let provenance: Provenance
}

/// A study registered in a store: a spec (by name and hash) and its cells.
public struct StudyRecord: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let specHash: String
    /// The effective spec (``AblationSpec/effectiveJSON``).
    public let specJSON: String
    public let source: String
    public let createdAt: String

    /// The spec, re-read.
    public func spec() throws -> AblationSpec { try AblationSpec.fromStored(json: specJSON, source: "study '\(name)' in the store") }
}

/// A run that threw (not a result: it is retried by the next invocation).
public struct FailureRecord: Sendable {
    public let key: RunKey
    public let study: String
    public let error: String
    public let host: String
    public let at: String
}

/// The result store: one SQLite file per study (GRDB, WAL mode, `synchronous=FULL`).
///
/// Each run is committed in one transaction — its row in `runs`, its final metrics
/// (`metrics`), per-epoch curves (`curves`), telemetry (JSON in `runs.telemetry_json`) and
/// provenance — so a process killed at any moment leaves either the whole run or nothing.
/// `UNIQUE(cell_hash, seed)` makes a duplicate impossible even when two processes race on
/// the same run (the second insert is discarded). A store remembers the runner its results
/// came from and the studies (specs) registered in it, and refuses to mix in results of
/// another runner or of a different spec under the same study name.
///
/// Tables: `meta(key, value)`, `studies(id, name, spec_hash, spec_json, source, created_at)`,
/// `cells(cell_hash, config_json)`, `study_cells(study_id, cell_index, cell_hash, label)`,
/// `runs(id, cell_hash, seed, diverged, telemetry_json, dataset_hash, runner, study,
/// spec_hash, normlab_version, git_commit, git_dirty, threads, host, started_at,
/// finished_at, duration_s)`, `metrics(run_id, name, value)`, `curves(run_id, name, epoch,
/// value)`, `failures(...)`. NaN is stored as NULL.
public final class ResultStore: @unchecked Sendable {
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating when `create` and missing, with its folder) the store at `path`.
    public init(path: String, create: Bool = true) throws {
        self.path = path
        let fm = FileManager.default
        let exists = fm.fileExists(atPath: path)
        if !exists {
            guard create else { throw AblationError("no result store at \(path)") }
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw AblationError("cannot create the folder \(dir) for the result store: \(error.localizedDescription)")
            }
        }
        var config = Configuration()
        config.busyMode = .timeout(60)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try pool.write { db in try Self.migrate(db) }
        } catch let error as AblationError {
            throw error
        } catch {
            throw AblationError("cannot open the result store \(path): \(Self.text(error))")
        }
    }

    static func text(_ error: Error) -> String {
        if let e = error as? DatabaseError { return e.message ?? "\(e)" }
        return "\(error)"
    }

    private static func migrate(_ db: Database) throws {
        let hasMeta = try db.tableExists("meta")
        if hasMeta {
            let format = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'")
            guard format == String(AblationFormat.storeVersion) else {
                throw AblationError("not a normlab result store of format \(AblationFormat.storeVersion) (format \(format ?? "unknown"))")
            }
            try createClaimsTable(db)
            return
        }
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        guard tables.isEmpty else { throw AblationError("the file is an SQLite database but not a normlab result store") }
        try db.execute(sql: """
            CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE studies (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec_hash TEXT NOT NULL,
                spec_json TEXT NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE cells (cell_hash TEXT PRIMARY KEY NOT NULL, config_json TEXT NOT NULL);
            CREATE TABLE study_cells (
                study_id INTEGER NOT NULL REFERENCES studies(id), cell_index INTEGER NOT NULL,
                cell_hash TEXT NOT NULL REFERENCES cells(cell_hash), label TEXT NOT NULL,
                PRIMARY KEY (study_id, cell_index));
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY, cell_hash TEXT NOT NULL REFERENCES cells(cell_hash),
                seed INTEGER NOT NULL, diverged INTEGER NOT NULL, telemetry_json TEXT NOT NULL,
                dataset_hash TEXT, runner TEXT NOT NULL, study TEXT NOT NULL, spec_hash TEXT NOT NULL,
                normlab_version TEXT NOT NULL, git_commit TEXT, git_dirty INTEGER,
                threads INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL,
                finished_at TEXT NOT NULL, duration_s REAL NOT NULL,
                UNIQUE (cell_hash, seed));
            CREATE TABLE metrics (
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL,
                PRIMARY KEY (run_id, name));
            CREATE TABLE curves (
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL,
                epoch INTEGER NOT NULL, value REAL, PRIMARY KEY (run_id, name, epoch));
            CREATE TABLE failures (
                id INTEGER PRIMARY KEY, cell_hash TEXT NOT NULL, seed INTEGER NOT NULL, study TEXT NOT NULL,
                error TEXT NOT NULL, host TEXT NOT NULL, at TEXT NOT NULL);
            """)
        try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('format', ?), ('created_at', ?), ('normlab_version', ?)",
                       arguments: [String(AblationFormat.storeVersion), Timestamp.string(Date()), NormlabVersion.string])
        try createClaimsTable(db)
    }

    /// `claims(cell_hash, seed, owner, host, pid, heartbeat)`: runs being worked on (see
    /// ``WorkerIdentity``); added to older stores on opening, ignored by ``merge(_:into:)``.
    private static func createClaimsTable(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS claims (
                cell_hash TEXT NOT NULL, seed INTEGER NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL,
                pid INTEGER NOT NULL, heartbeat REAL NOT NULL, PRIMARY KEY (cell_hash, seed))
            """)
    }

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch let e as AblationError { throw e } catch {
            throw AblationError("result store \(path): \(Self.text(error))")
        }
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch let e as AblationError { throw e } catch {
            throw AblationError("result store \(path): \(Self.text(error))")
        }
    }

    // MARK: meta, studies

    /// The runner whose results the store holds (nil for a new store).
    public func runnerName() throws -> String? {
        try read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'runner'") }
    }

    public func studies() throws -> [StudyRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM studies ORDER BY id").map(Self.study) }
    }

    private static func study(_ row: Row) -> StudyRecord {
        StudyRecord(id: row["id"], name: row["name"], specHash: row["spec_hash"], specJSON: row["spec_json"],
                    source: row["source"], createdAt: row["created_at"])
    }

    /// The study called `name`, or the only study when `name` is nil.
    public func study(named name: String?) throws -> StudyRecord {
        let all = try studies()
        if let name {
            guard let s = all.first(where: { $0.name == name }) else {
                throw AblationError("store \(path) has no study '\(name)'" + (all.isEmpty ? " (it is empty)" : " (studies: \(all.map(\.name).joined(separator: ", ")))"))
            }
            return s
        }
        guard let only = all.first else { throw AblationError("store \(path) holds no study yet") }
        guard all.count == 1 else {
            throw AblationError("store \(path) holds \(all.count) studies (\(all.map(\.name).joined(separator: ", "))); choose one with --study")
        }
        return only
    }

    /// Registers `spec` (with its `cells`) for `runner`, or checks that the store already
    /// holds exactly this spec. Refuses:
    /// - a store holding results of another runner;
    /// - a study of the same name from a different spec (naming what differs);
    /// - a different study in a store that has one, unless `addStudy` (then both live in the
    ///   store and share results of identical (cell, seed) runs).
    @discardableResult
    public func prepareStudy(_ spec: AblationSpec, cells: [Cell], runner: String, addStudy: Bool = false) throws -> StudyRecord {
        try write { db in
            if let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'runner'") {
                guard stored == runner else {
                    throw AblationError("store \(self.path) holds results of the '\(stored)' runner; this run uses '\(runner)': use another --store")
                }
            } else {
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('runner', ?)", arguments: [runner])
            }
            let existing = try Row.fetchAll(db, sql: "SELECT * FROM studies ORDER BY id").map(Self.study)
            if let same = existing.first(where: { $0.name == spec.name }) {
                if same.specHash == spec.hash {
                    // Same runs; the parts outside the identity (description, report, claims,
                    // the seed policy's max and target) follow the latest spec.
                    guard same.specJSON != spec.effectiveJSON else { return same }
                    try db.execute(sql: "UPDATE studies SET spec_json = ? WHERE id = ?", arguments: [spec.effectiveJSON, same.id])
                    return try Row.fetchOne(db, sql: "SELECT * FROM studies WHERE id = ?", arguments: [same.id]).map(Self.study)!
                }
                var changed: [String] = []
                if let old = try? same.spec() { changed = Self.differences(old, spec) }
                throw AblationError(
                    "store \(self.path) holds study '\(spec.name)' from a different spec (stored \(same.specHash.prefix(12)), now \(spec.hash.prefix(12))"
                    + (changed.isEmpty ? "" : "; differs at \(changed.prefix(6).joined(separator: ", "))\(changed.count > 6 ? ", …" : "")")
                    + "): results would mix. Use another --store, or rename the study (name:) and pass --add-study to keep both in this store")
            }
            if let first = existing.first, !addStudy {
                throw AblationError(
                    "store \(self.path) holds study '\(first.name)'\(existing.count > 1 ? " (and \(existing.count - 1) more)" : ""); spec '\(spec.name)' is a different study: use another --store, or --add-study to keep both in this store")
            }
            try db.execute(sql: "INSERT INTO studies (name, spec_hash, spec_json, source, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [spec.name, spec.hash, spec.effectiveJSON, spec.source, Timestamp.string(Date())])
            let id = db.lastInsertedRowID
            for cell in cells {
                try db.execute(sql: "INSERT OR IGNORE INTO cells (cell_hash, config_json) VALUES (?, ?)",
                               arguments: [cell.hash, cell.config.root.orderedJSON])
                try db.execute(sql: "INSERT INTO study_cells (study_id, cell_index, cell_hash, label) VALUES (?, ?, ?, ?)",
                               arguments: [id, cell.index, cell.hash, cell.label])
            }
            return try Row.fetchOne(db, sql: "SELECT * FROM studies WHERE id = ?", arguments: [id]).map(Self.study)!
        }
    }

    /// Top-level spec paths that differ between two specs (`base.optimizer.lr`, `grid`, `seeds`).
    static func differences(_ a: AblationSpec, _ b: AblationSpec) -> [String] {
        var out: [String] = []
        let aLeaves = Set(a.base.leafPaths), bLeaves = Set(b.base.leafPaths)
        for p in aLeaves.union(bLeaves).sorted() where a.base.value(at: p) != b.base.value(at: p) { out.append("base.\(p)") }
        let aAxes = a.axes.map { $0.columns.map { "\($0.path)=\($0.values)" } }
        let bAxes = b.axes.map { $0.columns.map { "\($0.path)=\($0.values)" } }
        if aAxes != bAxes { out.append("grid") }
        if a.seeds != b.seeds { out.append("seeds") }
        return out
    }

    /// The cells of a study, in expansion order: (index, hash, configuration, label).
    public func cells(of study: StudyRecord) throws -> [(index: Int, hash: String, config: String, label: String)] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT sc.cell_index, sc.cell_hash, sc.label, c.config_json FROM study_cells sc
                JOIN cells c ON c.cell_hash = sc.cell_hash WHERE sc.study_id = ? ORDER BY sc.cell_index
                """, arguments: [study.id]).map { ($0["cell_index"], $0["cell_hash"], $0["config_json"], $0["label"]) }
        }
    }

    // MARK: runs

    /// Every (cell, seed) with a stored result.
    public func completedKeys() throws -> Set<RunKey> {
        try read { db in
            Set(try Row.fetchAll(db, sql: "SELECT cell_hash, seed FROM runs").map {
                RunKey(cellHash: $0["cell_hash"], seed: UInt64(bitPattern: $0["seed"] as Int64))
            })
        }
    }

    /// Number of stored runs.
    public func runCount() throws -> Int {
        try read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM runs") ?? 0 }
    }

    public enum CommitOutcome: Sendable, Equatable {
        case inserted
        /// Another process stored this (cell, seed) first; the new result was discarded.
        case alreadyPresent
    }

    /// Stores one run — metrics, curves, telemetry and provenance — in one transaction.
    @discardableResult
    public func commit(_ result: CellResult, key: RunKey, config: CellConfig, provenance: Provenance) throws -> CommitOutcome {
        try write { db in try Self.insert(db, key: key, configJSON: config.root.orderedJSON, result: result, provenance: provenance) }
    }

    static func insert(_ db: Database, key: RunKey, configJSON: String, result: CellResult, provenance p: Provenance) throws -> CommitOutcome {
        try db.execute(sql: "INSERT OR IGNORE INTO cells (cell_hash, config_json) VALUES (?, ?)", arguments: [key.cellHash, configJSON])
        try db.execute(sql: """
            INSERT INTO runs (cell_hash, seed, diverged, telemetry_json, dataset_hash, runner, study, spec_hash,
                normlab_version, git_commit, git_dirty, threads, host, started_at, finished_at, duration_s)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (cell_hash, seed) DO NOTHING
            """, arguments: [key.cellHash, Int64(bitPattern: key.seed), result.diverged, result.telemetry.orderedJSON,
                             result.datasetHash ?? p.datasetHash, p.runner, p.study, p.specHash, p.normlabVersion,
                             p.gitCommit, p.gitDirty, p.threads, p.host, Timestamp.string(p.startedAt),
                             Timestamp.string(p.finishedAt), p.duration])
        guard db.changesCount == 1 else { return .alreadyPresent }
        let runID = db.lastInsertedRowID
        for (name, value) in result.metrics.sorted(by: { $0.key < $1.key }) {
            try db.execute(sql: "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
                           arguments: [runID, name, value.isNaN ? nil : value])
        }
        for (name, values) in result.curves.sorted(by: { $0.key < $1.key }) {
            for (epoch, value) in values.enumerated() {
                try db.execute(sql: "INSERT INTO curves (run_id, name, epoch, value) VALUES (?, ?, ?, ?)",
                               arguments: [runID, name, epoch, value.isNaN ? nil : value])
            }
        }
        return .inserted
    }

    // MARK: claims (concurrent workers on one store)

    public enum ClaimOutcome: Sendable, Equatable {
        /// The run is this worker's now.
        case claimed
        /// The run has a stored result.
        case stored
        /// A live worker holds the run.
        case busy
    }

    /// Claims a run for `worker` in one transaction, unless it is stored or a live worker
    /// holds it; a stale claim (``WorkerIdentity``) is taken over.
    public func claim(_ key: RunKey, by worker: WorkerIdentity, now: Date = Date()) throws -> ClaimOutcome {
        let seed = Int64(bitPattern: key.seed)
        return try write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM runs WHERE cell_hash = ? AND seed = ?", arguments: [key.cellHash, seed]) != nil {
                return .stored
            }
            if let row = try Row.fetchOne(db, sql: "SELECT owner, host, pid, heartbeat FROM claims WHERE cell_hash = ? AND seed = ?",
                                          arguments: [key.cellHash, seed]) {
                let holder = ClaimRecord(owner: row["owner"], host: row["host"], pid: row["pid"], heartbeat: row["heartbeat"])
                if holder.owner == worker.owner || !worker.regardsAsStale(holder, now: now) { return .busy }
            }
            try db.execute(sql: "INSERT OR REPLACE INTO claims (cell_hash, seed, owner, host, pid, heartbeat) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [key.cellHash, seed, worker.owner, worker.host, worker.pid, now.timeIntervalSince1970])
            return .claimed
        }
    }

    /// Drops `worker`'s claim on a run (after its result was committed or it failed).
    public func releaseClaim(_ key: RunKey, by worker: WorkerIdentity) throws {
        try write { db in
            try db.execute(sql: "DELETE FROM claims WHERE cell_hash = ? AND seed = ? AND owner = ?",
                           arguments: [key.cellHash, Int64(bitPattern: key.seed), worker.owner])
        }
    }

    /// Renews the heartbeat of every claim `worker` holds.
    public func refreshClaims(of worker: WorkerIdentity, now: Date = Date()) throws {
        try write { db in
            try db.execute(sql: "UPDATE claims SET heartbeat = ? WHERE owner = ?", arguments: [now.timeIntervalSince1970, worker.owner])
        }
    }

    /// Every current claim (for `status` and tests).
    public func claims() throws -> [RunKey: ClaimRecord] {
        try read { db in
            var out: [RunKey: ClaimRecord] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM claims") {
                out[RunKey(cellHash: row["cell_hash"], seed: UInt64(bitPattern: row["seed"] as Int64))] =
                    ClaimRecord(owner: row["owner"], host: row["host"], pid: row["pid"], heartbeat: row["heartbeat"])
            }
            return out
        }
    }

    /// Records a run that threw (kept for `status`; the run is retried next time).
    public func recordFailure(key: RunKey, study: String, error: String) throws {
        try write { db in
            try db.execute(sql: "INSERT INTO failures (cell_hash, seed, study, error, host, at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [key.cellHash, Int64(bitPattern: key.seed), study, error, Host.name, Timestamp.string(Date())])
        }
    }

    /// Failures of runs that still have no result.
    public func openFailures() throws -> [FailureRecord] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT f.* FROM failures f WHERE NOT EXISTS
                  (SELECT 1 FROM runs r WHERE r.cell_hash = f.cell_hash AND r.seed = f.seed) ORDER BY f.id
                """).map {
                FailureRecord(key: RunKey(cellHash: $0["cell_hash"], seed: UInt64(bitPattern: $0["seed"] as Int64)),
                              study: $0["study"], error: $0["error"], host: $0["host"], at: $0["at"])
            }
        }
    }

    /// Stored runs (all, or those of the given cells), ordered by cell hash and seed.
    public func runs(cellHashes: Set<String>? = nil) throws -> [StoredRun] {
        try read { db in try Self.fetchRuns(db, cellHashes: cellHashes) }
    }

    static func fetchRuns(_ db: Database, cellHashes: Set<String>?) throws -> [StoredRun] {
        var metrics: [Int64: [String: Double]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT run_id, name, value FROM metrics") {
            let v: Double? = row["value"]
            metrics[row["run_id"], default: [:]][row["name"]] = v ?? .nan
        }
        var curves: [Int64: [String: [Double]]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT run_id, name, epoch, value FROM curves ORDER BY run_id, name, epoch") {
            let v: Double? = row["value"]
            curves[row["run_id"], default: [:]][row["name"], default: []].append(v ?? .nan)
        }
        var out: [StoredRun] = []
        for row in try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY cell_hash, seed") {
            let hash: String = row["cell_hash"]
            if let cellHashes, !cellHashes.contains(hash) { continue }
            let id: Int64 = row["id"]
            let telemetryText: String = row["telemetry_json"]
            let telemetry = (try? YAMLTree(text: telemetryText, source: "telemetry").root) ?? .null
            let key = RunKey(cellHash: hash, seed: UInt64(bitPattern: row["seed"] as Int64))
            let result = CellResult(metrics: metrics[id] ?? [:], curves: curves[id] ?? [:], telemetry: telemetry,
                                    diverged: row["diverged"], datasetHash: row["dataset_hash"])
            let dirty: Bool? = row["git_dirty"]
            let provenance = Provenance(
                runner: row["runner"], study: row["study"], specHash: row["spec_hash"], normlabVersion: row["normlab_version"],
                gitCommit: row["git_commit"], gitDirty: dirty, datasetHash: row["dataset_hash"], seed: key.seed,
                threads: row["threads"], host: row["host"],
                startedAt: Timestamp.date(row["started_at"]) ?? Date(timeIntervalSince1970: 0),
                finishedAt: Timestamp.date(row["finished_at"]) ?? Date(timeIntervalSince1970: 0))
            out.append(StoredRun(key: key, result: result, provenance: provenance))
        }
        return out
    }

    // MARK: merge

    public struct MergeSummary: Sendable, Equatable {
        /// Runs copied into the target.
        public var added: Int
        /// Runs present in more than one store with the same outcome (kept once).
        public var identical: Int
        /// Studies registered in the target.
        public var studiesAdded: [String]
    }

    /// Combines the stores at `sources` into the store at `target` (created when missing;
    /// it may already hold runs). All or nothing: any conflict — a different runner, a study
    /// name with a different spec, or the same (cell, seed) with a different outcome — throws
    /// and leaves the target as it was (a target created by this call is removed).
    public static func merge(_ sources: [String], into target: String) throws -> MergeSummary {
        let targetURL = URL(fileURLWithPath: target).standardizedFileURL
        for s in sources where URL(fileURLWithPath: s).standardizedFileURL.path == targetURL.path {
            throw AblationError("merge: \(s) is also the target; merge into a new file or list only the other stores")
        }
        for s in sources where !FileManager.default.fileExists(atPath: s) {
            throw AblationError("merge: no result store at \(s)")
        }
        let created = !FileManager.default.fileExists(atPath: target)
        do {
            let summary = try mergeOrThrow(sources, into: target)
            return summary
        } catch {
            if created {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: target + suffix) }
            }
            throw error
        }
    }

    private static func mergeOrThrow(_ sources: [String], into target: String) throws -> MergeSummary {
        struct Loaded {
            let path: String
            let runner: String?
            let studies: [StudyRecord]
            let studyCells: [Int64: [(index: Int, hash: String, config: String, label: String)]]
            let configs: [String: String]
            let runs: [StoredRun]
        }
        var loaded: [Loaded] = []
        for s in sources {
            let store = try ResultStore(path: s, create: false)
            let studies = try store.studies()
            var cells: [Int64: [(index: Int, hash: String, config: String, label: String)]] = [:]
            for st in studies { cells[st.id] = try store.cells(of: st) }
            let configs = try store.read { db in
                Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT cell_hash, config_json FROM cells").map { ($0["cell_hash"] as String, $0["config_json"] as String) })
            }
            loaded.append(Loaded(path: s, runner: try store.runnerName(), studies: studies, studyCells: cells,
                                 configs: configs, runs: try store.runs()))
        }
        let out = try ResultStore(path: target, create: true)
        return try out.write { db in
            var summary = MergeSummary(added: 0, identical: 0, studiesAdded: [])
            var runner = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'runner'")
            var runnerFrom = target
            for l in loaded {
                guard let r = l.runner else { continue }
                if let known = runner, known != r {
                    throw AblationError("merge: \(l.path) holds results of the '\(r)' runner, \(runnerFrom) of '\(known)'")
                }
                if runner == nil {
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('runner', ?)", arguments: [r])
                    runner = r
                    runnerFrom = l.path
                }
            }
            for l in loaded {
                for (hash, config) in l.configs {
                    try db.execute(sql: "INSERT OR IGNORE INTO cells (cell_hash, config_json) VALUES (?, ?)", arguments: [hash, config])
                }
                for st in l.studies {
                    if let existing = try Row.fetchOne(db, sql: "SELECT * FROM studies WHERE name = ?", arguments: [st.name]).map(study) {
                        guard existing.specHash == st.specHash else {
                            throw AblationError("merge: study '\(st.name)' in \(l.path) comes from a different spec (\(st.specHash.prefix(12))) than the one already merged (\(existing.specHash.prefix(12)))")
                        }
                        continue
                    }
                    try db.execute(sql: "INSERT INTO studies (name, spec_hash, spec_json, source, created_at) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [st.name, st.specHash, st.specJSON, st.source, st.createdAt])
                    let id = db.lastInsertedRowID
                    for c in l.studyCells[st.id] ?? [] {
                        try db.execute(sql: "INSERT INTO study_cells (study_id, cell_index, cell_hash, label) VALUES (?, ?, ?, ?)",
                                       arguments: [id, c.index, c.hash, c.label])
                    }
                    summary.studiesAdded.append(st.name)
                }
            }
            var present: [RunKey: CellResult] = [:]
            for r in try fetchRuns(db, cellHashes: nil) { present[r.key] = r.result }
            var presentFrom: [RunKey: String] = [:]
            var conflicts: [String] = []
            for l in loaded {
                for run in l.runs {
                    if let existing = present[run.key] {
                        if existing.sameOutcome(as: run.result) {
                            summary.identical += 1
                        } else {
                            conflicts.append("\(run.key) (\(l.path) vs \(presentFrom[run.key] ?? target))")
                        }
                        continue
                    }
                    _ = try insert(db, key: run.key, configJSON: l.configs[run.key.cellHash] ?? "{}", result: run.result, provenance: run.provenance)
                    present[run.key] = run.result
                    presentFrom[run.key] = l.path
                    summary.added += 1
                }
            }
            if !conflicts.isEmpty {
                throw AblationError("merge: \(conflicts.count) conflicting result\(conflicts.count == 1 ? "" : "s") for the same (cell, seed): \(conflicts.prefix(3).joined(separator: "; "))\(conflicts.count > 3 ? "; …" : ""); nothing was merged")
            }
            return summary
        }
    }
}
