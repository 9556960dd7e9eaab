import Foundation
import Testing
import NormCore
import NormPython

/// Many tasks and threads call into Python at once: the GIL discipline keeps it safe.
@Suite struct ConcurrencyTests {
    @Test func manyTasksCallNumpyConcurrently() async throws {
        let results = try await withThrowingTaskGroup(of: (Int, Double, Double).self) { group in
            for task in 0..<16 {
                group.addTask {
                    var total = 0.0
                    for round in 0..<20 {
                        let x = TestSupport.tensor([4, 8], seed: UInt64(task * 100 + round))
                        let np = try Numpy.module()
                        let sum = try np.callMethod("sum", x, kwargs: ["dtype": np.attribute("float64")]).decode(Double.self)
                        let back = try Tensor(numpy: np.callMethod("multiply", x, 2))
                        #expect(back.scalars == x.scalars.map { $0 * 2 })
                        total += sum
                        await Task.yield()   // resume possibly on another thread; no GIL held here
                    }
                    let expected = (0..<20).reduce(0.0) { acc, round in
                        acc + TestSupport.values(32, seed: UInt64(task * 100 + round)).reduce(0.0) { $0 + Double($1) }
                    }
                    return (task, total, expected)
                }
            }
            var collected: [(Int, Double, Double)] = []
            for try await r in group { collected.append(r) }
            return collected
        }
        #expect(results.count == 16)
        for (task, total, expected) in results {
            #expect(abs(total - expected) < 1e-3, "task \(task)")
        }
    }

    @Test func plainThreadsAndHandleReleaseOnOtherThreads() throws {
        let shared = try Python.run("""
            import threading
            lock = threading.Lock()
            counter = [0]
            def bump():
                with lock:
                    counter[0] += 1
            """)
        let bump = try shared.item("bump")
        let errors = ErrorBox()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                for _ in 0..<50 {
                    try bump.call()
                    // handles created here and released on this thread
                    let list = try [i, i + 1].pythonObject()
                    _ = try list.decode([Int].self)
                }
            } catch {
                errors.append("\(error)")
            }
        }
        #expect(errors.items.isEmpty, "\(errors.items)")
        #expect(try shared.item("counter").item(0).decode(Int.self) == 400)
    }

    @Test func pythonThreadsRunWhileSwiftWaits() async throws {
        // A Python thread needs the GIL released between Swift calls to make progress.
        let ns = try Python.run("""
            import threading, time
            done = threading.Event()
            def work():
                time.sleep(0.01)
                done.set()
            t = threading.Thread(target=work)
            t.start()
            """)
        var finished = false
        for _ in 0..<500 where !finished {
            finished = try ns.item("done").callMethod("is_set").decode(Bool.self)
            if !finished { try await Task.sleep(nanoseconds: 2_000_000) }
        }
        #expect(finished)
        try ns.item("t").callMethod("join")
    }
}

/// A lock-protected list of messages collected from several threads.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ s: String) { lock.lock(); storage.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return storage }
}
