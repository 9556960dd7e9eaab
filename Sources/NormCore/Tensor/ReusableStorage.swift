import Foundation

/// Output blocks a layer keeps between calls. When the caller has dropped an earlier result,
/// the next call writes into that memory instead of allocating (a fresh 25 MB block costs
/// more in page faults than the whole normalization). With more than one slot, a layer whose
/// last output is still cached downstream (for a backward pass) rotates to another block.
///
/// The holder keeps a reference to the block it handed out, so the returned tensor's
/// storage is *shared*: write it through ``tensor(shape:writing:)`` or
/// `Tensor.withUnsafeOutputBuffer`, never through `Tensor.withUnsafeMutableBufferPointer`,
/// whose copy-on-write would copy the whole block into fresh memory on every call.
public struct ReusableStorage: @unchecked Sendable {
    private var slots: [TensorStorage?]

    /// `slots` blocks to rotate through (at least one).
    public init(slots: Int = 1) { self.slots = Array(repeating: nil, count: max(slots, 1)) }

    /// A tensor of `shape` with unspecified contents that the caller must overwrite fully
    /// (through `withUnsafeOutputBuffer`: see the type's note).
    public mutating func tensor(shape: [Int]) -> Tensor {
        let n = shape.product
        for i in slots.indices where slots[i]?.count == n {
            if isKnownUniquelyReferenced(&slots[i]) { return Tensor(shape: shape, storage: slots[i]!) }
        }
        let fresh = TensorStorage(uninitializedCount: n)
        // Replace an empty slot, else one of another size, else the first (still in use: let it go).
        let victim = slots.firstIndex { $0 == nil } ?? slots.firstIndex { $0!.count != n } ?? 0
        slots[victim] = fresh
        return Tensor(shape: shape, storage: fresh)
    }

    /// A tensor of `shape` whose elements `body` writes (every one of them), in the block of
    /// an earlier call when its result has been dropped, without a copy-on-write copy.
    public mutating func tensor(shape: [Int], writing body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> Tensor {
        let t = tensor(shape: shape)
        try t.withUnsafeOutputBuffer(body)
        return t
    }

    /// A zero-filled tensor of `shape`.
    public mutating func zeros(shape: [Int]) -> Tensor {
        let t = tensor(shape: shape)
        t.storage.base.update(repeating: 0, count: t.count)
        return t
    }
}

extension Tensor {
    /// Write access to a block just handed out by ``ReusableStorage`` (which keeps a reference
    /// to it, so `withUnsafeMutableBufferPointer` would copy it first). Only for a tensor no one
    /// else has seen yet.
    public func withUnsafeOutputBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }
}

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
