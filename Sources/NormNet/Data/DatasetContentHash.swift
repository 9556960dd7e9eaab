import NormCore

extension Dataset {
    /// The content-hash format: `python/normlab_datasets.py` computes the same hash with
    /// `hashlib` when it generates or caches a data set.
    public static let contentHashFormat = "normlab-dataset-v1"

    /// Hex SHA-256 identifying the exact arrays (format `normlab-dataset-v1`): over the line
    /// `normlab-dataset-v1 classes=<classes>\n`, then for `x_train`, `y_train`, `x_test`,
    /// `y_test` in turn the line `<key> <float32|int64> <d0,d1,…>\n` followed by the array's
    /// little-endian bytes (inputs as float32, labels as int64).
    public static func computeContentHash(trainInputs: Tensor, trainLabels: [Int], testInputs: Tensor,
                                          testLabels: [Int], classes: Int) -> String {
        var hasher = SHA256()
        hasher.update("\(contentHashFormat) classes=\(classes)\n")
        func inputs(_ key: String, _ x: Tensor) {
            hasher.update("\(key) float32 \(x.shape.map(String.init).joined(separator: ","))\n")
            x.withUnsafeBufferPointer { values in
                if 1.littleEndian == 1 {
                    hasher.update(UnsafeRawBufferPointer(values))
                } else {
                    let swapped = values.map { $0.bitPattern.littleEndian }
                    swapped.withUnsafeBytes { hasher.update($0) }
                }
            }
        }
        func labels(_ key: String, _ y: [Int]) {
            hasher.update("\(key) int64 \(y.count)\n")
            let little = y.map { Int64($0).littleEndian }
            little.withUnsafeBytes { hasher.update($0) }
        }
        inputs("x_train", trainInputs)
        labels("y_train", trainLabels)
        inputs("x_test", testInputs)
        labels("y_test", testLabels)
        return hasher.hexDigest()
    }

    /// ``computeContentHash(trainInputs:trainLabels:testInputs:testLabels:classes:)`` of this
    /// data set's arrays; equals ``contentHash`` for every data set ``Datasets`` loads.
    public func computedContentHash() -> String {
        Self.computeContentHash(trainInputs: trainInputs, trainLabels: trainLabels, testInputs: testInputs,
                                testLabels: testLabels, classes: classes)
    }
}
