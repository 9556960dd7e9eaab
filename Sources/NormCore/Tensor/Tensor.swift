/// A dense, contiguous, row-major (C order) float32 array with a shape.
///
/// normlab follows PyTorch's layout: axis 0 is the batch, axis 1 the channels, the rest
/// spatial — `(N, C)`, `(N, C, L)`, `(N, C, H, W)`, `(N, C, D, H, W)`. A `Tensor` is a
/// value: copies share storage until one of them is mutated (copy-on-write).
public struct Tensor: Sendable, CustomStringConvertible {
    /// The extent of every axis; the empty shape is a scalar with one element.
    public private(set) var shape: [Int]
    /// The elements, `shape.product` of them.
    public internal(set) var storage: TensorStorage

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of axes.
    @inlinable public var rank: Int { shape.count }

    /// A tensor of `shape` filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        self.shape = shape
        self.storage = TensorStorage(repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// A tensor from row-major `scalars`; `scalars.count` must equal the shape's product.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: scalars.count)
        scalars.withUnsafeBufferPointer { storage.base.initialize(from: $0.baseAddress!, count: $0.count) }
    }

    /// A tensor from row-major float64 scalars, rounded to float32.
    public init(shape: [Int], doubles: [Double]) {
        self.init(shape: shape, scalars: doubles.map { Float($0) })
    }

    /// Wraps an existing storage block; its count must equal the shape's product.
    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match storage of \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of `shape` whose elements are written by `initializer` (every element must be set).
    public init(shape: [Int], initializingWith initializer: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
        try initializer(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    /// The elements as an array (a copy).
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }

    /// Element at a flat row-major index.
    public subscript(flat index: Int) -> Float {
        get { precondition(index >= 0 && index < count); return storage.base[index] }
        set { precondition(index >= 0 && index < count); makeUnique(); storage.base[index] = newValue }
    }

    /// Calls `body` with read access to the elements.
    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Calls `body` with write access, copying the storage first if it is shared.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Ensures this value is the only owner of its storage (copy-on-write).
    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = TensorStorage(copying: storage) }
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// The channel count (axis 1); 1 for a rank-0 or rank-1 tensor.
    public var channels: Int { rank >= 2 ? shape[1] : 1 }
    /// The batch size (axis 0).
    public var batch: Int { rank >= 1 ? shape[0] : 1 }
    /// The product of the spatial extents (axes 2...); 1 for rank 2.
    public var spatialCount: Int { rank > 2 ? shape[2...].reduce(1, *) : 1 }

    /// True when both tensors have the same shape and bit-identical elements.
    public func isBitIdentical(to other: Tensor) -> Bool {
        guard shape == other.shape else { return false }
        for i in 0..<count where storage.base[i].bitPattern != other.storage.base[i].bitPattern { return false }
        return true
    }

    /// Largest absolute elementwise difference (NaN if either holds NaN at one place).
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(count == other.count)
        var m: Float = 0
        for i in 0..<count {
            let d = abs(storage.base[i] - other.storage.base[i])
            if d.isNaN { return .nan }
            m = max(m, d)
        }
        return m
    }

    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", …" : "")])"
    }
}

extension Tensor: Equatable {
    /// Same shape and equal elements (NaN never equals NaN, as for `Float`).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return true }
        for i in 0..<lhs.count where lhs.storage.base[i] != rhs.storage.base[i] { return false }
        return true
    }
}
