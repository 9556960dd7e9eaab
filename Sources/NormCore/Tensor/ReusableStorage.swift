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
