import Foundation

/// Temporary memory for kernels (partial sums, per-block accumulators), kept between calls so
/// that a kernel's scratch never costs an allocation, zero-fill or page faults per call.
///
/// ``withBuffer(bytes:_:)`` lends a 64-byte-aligned block of at least `bytes` bytes with
/// unspecified contents for the duration of `body`; concurrent callers get different blocks.
/// At most ``retained`` blocks stay allocated between calls.
public enum ScratchBuffers {
    /// Most blocks kept when none is lent.
    public static let retained = 4

    private static let lock = NSLock()
    nonisolated(unsafe) private static var idle: [(base: UnsafeMutableRawPointer, bytes: Int)] = []

    /// Calls `body` with a block of at least `bytes` bytes (64-byte aligned, contents unspecified).
    public static func withBuffer<R>(bytes: Int, _ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        let block = take(max(bytes, 64))
        defer { give(block) }
        return try body(block.base)
    }

    /// ``withBuffer(bytes:_:)`` typed as `count` values of `type`.
    public static func withBuffer<T, R>(of type: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R) rethrows -> R {
        try withBuffer(bytes: max(count, 1) * MemoryLayout<T>.stride) { raw in
            try body(raw.bindMemory(to: T.self, capacity: max(count, 1)))
        }
    }

    private static func take(_ bytes: Int) -> (base: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        // The smallest idle block that is large enough.
        var pick = -1
        for i in idle.indices where idle[i].bytes >= bytes && (pick < 0 || idle[i].bytes < idle[pick].bytes) { pick = i }
        if pick >= 0 {
            let b = idle.remove(at: pick)
            lock.unlock()
            return b
        }
        lock.unlock()
        // Rounded up to 64 KiB so that slowly growing requests reuse one block.
        let size = (bytes + 0xFFFF) & ~0xFFFF
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), size)
    }

    private static func give(_ block: (base: UnsafeMutableRawPointer, bytes: Int)) {
        lock.lock()
        idle.append(block)
        var drop: (base: UnsafeMutableRawPointer, bytes: Int)? = nil
        if idle.count > retained, let i = idle.indices.min(by: { idle[$0].bytes < idle[$1].bytes }) { drop = idle.remove(at: i) }
        lock.unlock()
        drop?.base.deallocate()
    }
}
