import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One `normlab ablate` process working on a store, as recorded in its claims.
///
/// Before a worker starts a (cell, seed) it claims it in the store's `claims` table
/// (``ResultStore/claim(_:by:now:)``); other processes skip a run claimed by a live worker
/// and wait for its result. A claim is *stale* — and taken over — when its worker is gone:
/// on the same host, its process id is not alive any more (a `kill -9`ed or crashed worker is
/// recovered at once); on any host, its heartbeat is older than ``expiry`` (a live worker
/// refreshes all its claims every ``heartbeatInterval``, see ``ClaimHeartbeat``).
public struct WorkerIdentity: Sendable, Equatable {
    /// Seconds between heartbeats.
    public static let heartbeatInterval: TimeInterval = 5
    /// A claim whose heartbeat is older than this is stale, wherever its worker runs.
    public static let expiry: TimeInterval = 60

    /// Unique per process and driver run: host, pid and a random suffix.
    public let owner: String
    public let host: String
    public let pid: Int32

    public init(host: String = ProcessInfo.processInfo.hostName, pid: Int32 = getpid()) {
        self.host = host
        self.pid = pid
        owner = "\(host):\(pid):\(UUID().uuidString.prefix(8))"
    }

    /// Whether a claim held by someone else may be taken over.
    func regardsAsStale(_ claim: ClaimRecord, now: Date) -> Bool {
        if now.timeIntervalSince1970 - claim.heartbeat > Self.expiry { return true }
        return claim.host == host && !Self.processIsAlive(claim.pid)
    }

    /// `kill(pid, 0)`: the process exists (EPERM: it exists but belongs to another user).
    static func processIsAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}

/// A row of the `claims` table.
public struct ClaimRecord: Sendable, Equatable {
    public var owner: String
    public var host: String
    public var pid: Int32
    /// Unix time of the last heartbeat.
    public var heartbeat: Double
}

/// Refreshes a worker's claims every ``WorkerIdentity/heartbeatInterval`` on a background
/// thread until ``stop()``.
final class ClaimHeartbeat: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false

    init(store: ResultStore, worker: WorkerIdentity) {
        let thread = Thread { [self] in
            condition.lock()
            while !stopped {
                _ = condition.wait(until: Date().addingTimeInterval(WorkerIdentity.heartbeatInterval))
                if stopped { break }
                condition.unlock()
                try? store.refreshClaims(of: worker)
                condition.lock()
            }
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "normlab-ablate-heartbeat"
        thread.start()
    }

    /// Stops the thread and waits for it.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
