/// An output block a layer keeps between calls. When the caller has dropped the last
/// result, the next call writes into the same memory instead of allocating (a fresh
/// 25 MB block costs more in page faults than the whole normalization).
///
/// The holder keeps a reference to the block it handed out, so the returned tensor's
/// storage is *shared*: write it through ``tensor(shape:writing:)`` (or `storage.base`),
/// never through `Tensor.withUnsafeMutableBufferPointer`, whose copy-on-write would copy
/// the whole block into fresh memory on every call.
public struct ReusableStorage: @unchecked Sendable {
    private var storage: TensorStorage?

    public init() {}

    /// A tensor of `shape` with unspecified contents that the caller must overwrite fully
    /// (through `storage.base`: see the type's note).
    public mutating func tensor(shape: [Int]) -> Tensor {
        let n = shape.product
        if storage?.count == n, isKnownUniquelyReferenced(&storage) {
            return Tensor(shape: shape, storage: storage!)
        }
        let fresh = TensorStorage(uninitializedCount: n)
        storage = fresh
        return Tensor(shape: shape, storage: fresh)
    }

    /// A tensor of `shape` whose elements `body` writes (every one of them), in the block of
    /// the previous call when its result has been dropped, without a copy-on-write copy.
    public mutating func tensor(shape: [Int], writing body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> Tensor {
        let t = tensor(shape: shape)
        try body(UnsafeMutableBufferPointer(start: t.storage.base, count: t.count))
        return t
    }
}
