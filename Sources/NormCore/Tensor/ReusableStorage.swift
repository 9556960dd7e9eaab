/// An output block a layer keeps between calls. When the caller has dropped the last
/// result, the next call writes into the same memory instead of allocating (a fresh
/// 25 MB block costs more in page faults than the whole normalization).
public struct ReusableStorage: @unchecked Sendable {
    private var storage: TensorStorage?

    public init() {}

    /// A tensor of `shape` with unspecified contents that the caller must overwrite fully.
    public mutating func tensor(shape: [Int]) -> Tensor {
        let n = shape.product
        if storage?.count == n, isKnownUniquelyReferenced(&storage) {
            return Tensor(shape: shape, storage: storage!)
        }
        let fresh = TensorStorage(uninitializedCount: n)
        storage = fresh
        return Tensor(shape: shape, storage: fresh)
    }
}
