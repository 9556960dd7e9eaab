import NormCore

/// Deterministic mini-batches of a data split: every epoch is a fresh Fisher–Yates
/// permutation drawn from a ``SeededGenerator``, cut into `batchSize` batches; the last
/// incomplete batch is dropped (a batch of one would break batch statistics), unless the
/// split is smaller than one batch.
public struct BatchSampler {
    public let count: Int
    public let batchSize: Int
    private var rng: SeededGenerator
    private var order: [Int] = []
    private var position = 0
    public private(set) var epoch = 0

    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = count
        self.batchSize = min(batchSize, count)
        rng = SeededGenerator(seed: seed)
    }

    /// Batches per epoch.
    public var batchesPerEpoch: Int { max(1, count / max(batchSize, 1)) }

    /// The next batch's sample indices (starting a new epoch when needed).
    public mutating func next() -> ArraySlice<Int> {
        if order.isEmpty || position + batchSize > count {
            order = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
            position = 0
            epoch += 1
        }
        defer { position += batchSize }
        return order[position..<(position + batchSize)]
    }
}

/// Copies selected samples of `(N, ...)` inputs into a batch tensor.
struct BatchGatherer {
    private var pool = ReusableStorage(slots: 3)

    mutating func gather(_ inputs: Tensor, _ indices: some Collection<Int>) -> Tensor {
        let per = inputs.count / max(inputs.shape[0], 1)
        let batch = pool.tensor(shape: [indices.count] + inputs.shape.dropFirst())
        inputs.withUnsafeBufferPointer { src in batch.withUnsafeOutputBuffer { dst in
            for (k, i) in indices.enumerated() {
                (dst.baseAddress! + k * per).update(from: src.baseAddress! + i * per, count: per)
            }
        }}
        return batch
    }
}
