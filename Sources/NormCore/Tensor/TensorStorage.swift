/// The heap block behind a ``Tensor``: a fixed number of contiguous `Float`s.
///
/// A class so that ``Tensor`` can use copy-on-write with `isKnownUniquelyReferenced`,
/// and so that kernels can reuse an output block across calls instead of paying page
/// faults for a fresh allocation every time.
public final class TensorStorage: @unchecked Sendable {
    /// Number of `Float` elements.
    public let count: Int
    /// Start of the elements (64-byte aligned).
    public let base: UnsafeMutablePointer<Float>

    /// Allocates `count` uninitialized elements (64-byte aligned for SIMD kernels).
    public init(uninitializedCount count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Allocates `count` elements, all set to `value`.
    public convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    /// A copy of another storage's elements.
    public convenience init(copying other: TensorStorage) {
        self.init(uninitializedCount: other.count)
        base.initialize(from: other.base, count: other.count)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }
}
