import NormCore

/// A few output blocks a layer rotates through: a call returns one whose previous result
/// nobody holds any more, so steady-state training allocates nothing, even though the next
/// layer (or a norm plugin) still keeps the last output cached for its backward pass.
public struct BufferPool: @unchecked Sendable {
    private var slots: [TensorStorage?]

    public init(slots: Int = 2) { self.slots = Array(repeating: nil, count: max(slots, 1)) }

    /// A tensor of `shape` with unspecified contents that the caller must overwrite fully.
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

    /// A zero-filled tensor of `shape`.
    public mutating func zeros(shape: [Int]) -> Tensor {
        let t = tensor(shape: shape)
        t.storage.base.initialize(repeating: 0, count: t.count)
        return t
    }
}

/// A reusable scratch array of floats (im2col columns, permuted gradients).
final class Scratch {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init() { pointer = .allocate(capacity: 1); capacity = 1 }
    deinit { pointer.deallocate() }

    /// At least `count` floats (contents unspecified).
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            capacity = count
        }
        return pointer
    }
}
