import Foundation
import NormCore

/// A classification data set held in memory: inputs in normlab's layout (`(N, C, L)` or
/// `(N, C, H, W)`, float32) and integer labels, with a fixed train/test split.
public struct Dataset: Sendable {
    public let name: String
    public let trainInputs: Tensor
    public let trainLabels: [Int]
    public let testInputs: Tensor
    public let testLabels: [Int]
    public let classes: Int
    /// Hex SHA-256 over the arrays (shapes, values, labels): identifies the exact data.
    public let contentHash: String

    public init(name: String, trainInputs: Tensor, trainLabels: [Int], testInputs: Tensor, testLabels: [Int],
                classes: Int, contentHash: String) {
        self.name = name
        self.trainInputs = trainInputs
        self.trainLabels = trainLabels
        self.testInputs = testInputs
        self.testLabels = testLabels
        self.classes = classes
        self.contentHash = contentHash
    }

    /// Per-sample input shape `(C, L)` or `(C, H, W)`.
    public var sampleShape: [Int] { Array(trainInputs.shape.dropFirst()) }
}

/// The data sets `normlab train --dataset` knows.
public enum DatasetName: String, CaseIterable, Sendable {
    /// scikit-learn's 8×8 handwritten digits (1,797 images), fixed seeded split.
    case digits
    /// MNIST-1D (Greydanus 2020) generated locally with the package's defaults: 4,000/1,000, length 40.
    case mnist1d
    /// A seeded synthetic 1-D task for quick tests.
    case synthetic
}

/// Loads data sets (through the embedded Python for digits and mnist1d), caching the
/// generated arrays on disk.
public enum Datasets {
    /// Loads `name`. `seed` affects only seeded splits/generators (digits split, synthetic).
    public static func load(_ name: DatasetName, seed: UInt64 = 0, cacheDirectory: URL? = nil) throws -> Dataset {
        switch name {
        case .synthetic: return SyntheticDataset.make(seed: seed)
        default: throw NormError.invalidConfiguration(method: "dataset", reason: "\(name.rawValue) is not available yet")
        }
    }
}

/// A seeded 1-D task: class k is a bump at position k·(L/classes) plus noise, shape (N, 1, 32).
public enum SyntheticDataset {
    public static func make(seed: UInt64, train: Int = 512, test: Int = 256, classes: Int = 4, length: Int = 32) -> Dataset {
        var rng = SeededGenerator(seed: seed)
        func split(_ n: Int) -> (Tensor, [Int]) {
            var labels: [Int] = []
            var values = [Float](repeating: 0, count: n * length)
            for i in 0..<n {
                let k = rng.nextInt(in: 0...(classes - 1))
                labels.append(k)
                let centre = Double(k) * Double(length) / Double(classes) + Double(length) / Double(2 * classes)
                for t in 0..<length {
                    let d = (Double(t) - centre) / 2.0
                    values[i * length + t] = Float(exp(-d * d) + 0.3 * rng.nextNormal())
                }
            }
            return (Tensor(shape: [n, 1, length], scalars: values), labels)
        }
        let (xt, yt) = split(train), (xv, yv) = split(test)
        return Dataset(name: "synthetic", trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv,
                       classes: classes, contentHash: "synthetic-seed-\(seed)")
    }
}
