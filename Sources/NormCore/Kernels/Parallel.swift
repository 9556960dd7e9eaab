import Dispatch
import Foundation

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

    /// Calls `body` on contiguous sub-ranges covering `0..<count`, in parallel when
    /// `work` (elements touched) is large enough to pay for the hand-off.
    public static func forEach(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, count)
        if threads <= 1 || work < serialThreshold {
            if count > 0 { body(0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lo = count * t / threads, hi = count * (t + 1) / threads
            if lo < hi { body(lo..<hi) }
        }
    }
}
