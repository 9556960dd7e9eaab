import Dispatch
import Foundation
import Synchronization

/// How many threads the kernels use, and the helper that splits work across them.
///
/// Work is split into contiguous index ranges and every output value is computed by
/// exactly one thread in a fixed order, so results are bit-identical for any thread count.
public enum Parallel {
    private static let lock = NSLock()
    private static var configured = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Threads used by the kernels (default: the active processor count).
    public static var threadCount: Int {
        get { lock.lock(); defer { lock.unlock() }; return configured }
        set { lock.lock(); configured = max(1, newValue); lock.unlock() }
    }

    /// Below this many elements of total work, kernels run on the calling thread.
    public static let serialThreshold = 1 << 15

    /// Parts per thread a parallel call is cut into: threads claim parts as they come free,
    /// so one thread descheduled by a busy machine delays only its current part.
    public static let partsPerThread = 4

    /// Calls `body` on contiguous sub-ranges covering `0..<count`, in parallel when
    /// `work` (elements touched) is large enough to pay for the hand-off.
    ///
    /// The range is cut into up to `partsPerThread · threads` parts, handed out in increasing
    /// order (decreasing with `descending`, for a pass that should start where the previous
    /// one ended). Which thread runs a part never changes a result: every output is computed
    /// within one part, in a fixed order.
    ///
    /// The hand-off goes to a small pool of worker threads that spin briefly after each job
    /// (a kernel's passes follow each other within microseconds) and then sleep; a call made
    /// while the pool is busy (from another thread, or nested) uses Dispatch instead.
    public static func forEach(_ count: Int, work: Int, descending: Bool = false, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, count)
        if threads <= 1 || work < serialThreshold {
            if count > 0 { body(0..<count) }
            return
        }
        let parts = min(count, threads * partsPerThread, WorkerPool.maxParts)
        withoutActuallyEscaping(body) { body in
            let part: (Int) -> Void = { k in
                let t = descending ? parts - 1 - k : k
                let lo = count * t / parts, hi = count * (t + 1) / parts
                if lo < hi { body(lo..<hi) }
            }
            if !WorkerPool.shared.run(parts, threads: threads, part) {
                DispatchQueue.concurrentPerform(iterations: parts, execute: part)
            }
        }
    }
}

/// Worker threads for ``Parallel/forEach(_:work:_:)``.
///
/// A job is `threads` parts; the caller and the workers *claim* parts through one atomic
/// word (generation, part count, next part), so a worker that is slow to wake (a busy
/// machine) never delays the caller: the caller claims the remaining parts itself and only
/// waits for parts already running. Idle workers spin for ``spinSeconds`` (a kernel's
/// passes follow each other within microseconds), then park on a condition variable; the
/// caller waits for running parts by spinning briefly, then parking too.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker (or the waiting caller) spins before it sleeps.
    static let spinSeconds = 100e-6
    /// Most parts a job may have (the part count is packed into 8 bits).
    static let maxParts = 255

    private let busy = Atomic<Bool>(false)
    /// `generation << 16 | parts << 8 | next part`.
    private let state = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private var generation = 0
    private var workerCount = 0
    /// The current job; written by the caller holding `busy` before `state` publishes it,
    /// read by a thread only after it claimed a part of it.
    private var job: ((Int) -> Void)?
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let done: UnsafeMutablePointer<pthread_cond_t>
    /// Guarded by `mutex`: parked workers, and whether the caller is parked.
    private var sleepers = 0
    private var callerWaiting = false

    private init() {
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
    }

    /// Runs `body(0..<parts)` on this thread and `threads − 1` workers, returning when all
    /// parts are done. Returns false without running anything when the pool is in use.
    func run(_ parts: Int, threads: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard parts <= Self.maxParts,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        while workerCount < threads - 1 { spawn() }
        generation = (generation + 1) & 0xFFFF_FFFF
        let gen = generation
        job = body
        completed.store(0, ordering: .relaxed)
        state.store(gen << 16 | parts << 8, ordering: .releasing)
        pthread_mutex_lock(mutex)
        if sleepers > 0 { pthread_cond_broadcast(wake) }
        pthread_mutex_unlock(mutex)
        while let part = claim(gen) {
            body(part)
            completed.add(1, ordering: .releasing)
        }
        if completed.load(ordering: .acquiring) < parts {
            let start = Self.now()
            var spins = 0
            while completed.load(ordering: .acquiring) < parts {
                spins += 1
                if spins & 255 == 0, Self.now() - start > Self.spinSeconds {
                    pthread_mutex_lock(mutex)
                    callerWaiting = true
                    while completed.load(ordering: .acquiring) < parts { pthread_cond_wait(done, mutex) }
                    callerWaiting = false
                    pthread_mutex_unlock(mutex)
                }
            }
        }
        job = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    /// Claims the next part of generation `gen`, if any is left.
    @inline(__always)
    private func claim(_ gen: Int) -> Int? {
        var s = state.load(ordering: .acquiring)
        while true {
            let next = s & 0xFF, parts = (s >> 8) & 0xFF
            guard s >> 16 == gen, next < parts else { return nil }
            let (exchanged, current) = state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing)
            if exchanged { return next }
            s = current
        }
    }

    private func spawn() {
        workerCount += 1
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "normlab-worker-\(workerCount)"
        thread.start()
    }

    private func loop() {
        var seen = 0
        while true {
            var gen = state.load(ordering: .acquiring) >> 16
            if gen == seen {
                let start = Self.now()
                var spins = 0
                while gen == seen {
                    spins += 1
                    if spins & 255 == 0, Self.now() - start > Self.spinSeconds {
                        pthread_mutex_lock(mutex)
                        sleepers += 1
                        while state.load(ordering: .acquiring) >> 16 == seen { pthread_cond_wait(wake, mutex) }
                        sleepers -= 1
                        pthread_mutex_unlock(mutex)
                    }
                    gen = state.load(ordering: .acquiring) >> 16
                }
            }
            seen = gen
            while let part = claim(gen) {
                do {
                    // Scoped: the job is released before the part is reported done (the
                    // caller's `withoutActuallyEscaping` checks the closure did not escape).
                    let body = job!
                    body(part)
                }
                let (_, finished) = completed.add(1, ordering: .releasing)
                if finished == (state.load(ordering: .relaxed) >> 8) & 0xFF {
                    pthread_mutex_lock(mutex)
                    if callerWaiting { pthread_cond_signal(done) }
                    pthread_mutex_unlock(mutex)
                }
            }
        }
    }

    @inline(__always)
    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
