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
    /// The user's `.npz` file the arrays came from (nil for built-in data sets).
    public var sourceFile: DatasetFile?
    /// What a recipe uses where it states nothing (``DatasetName/recipeDefaults``; for user data
    /// no augmentation and ``TrainPresets/defaults``' length).
    public var recipeDefaults = DatasetRecipeDefaults()

    public init(name: String, trainInputs: Tensor, trainLabels: [Int], testInputs: Tensor, testLabels: [Int],
                classes: Int, contentHash: String, sourceFile: DatasetFile? = nil) {
        self.sourceFile = sourceFile
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

/// The training settings a data set declares for recipes that state none (applied by
/// ``TrainPresets/config(for:)``).
public struct DatasetRecipeDefaults: Sendable, Equatable {
    /// Training-image augmentation.
    public var augmentation = AugmentationConfig.none
    /// Training length; nil: ``TrainPresets/defaults``' 30 epochs.
    public var duration: TrainingDuration?

    public init(augmentation: AugmentationConfig = .none, duration: TrainingDuration? = nil) {
        self.augmentation = augmentation
        self.duration = duration
    }
}

/// The data sets `normlab train --dataset` knows.
public enum DatasetName: String, CaseIterable, Sendable {
    /// scikit-learn's 8×8 handwritten digits (1,797 images), fixed seeded split.
    case digits
    /// MNIST-1D (Greydanus 2020) generated locally with the package's defaults: 4,000/1,000, length 40.
    case mnist1d
    /// A seeded synthetic 1-D task for quick tests.
    case synthetic
    /// Fashion-MNIST (Xiao et al. 2017) from Debian's `dataset-fashion-mnist` IDX files:
    /// 60,000/10,000 images `(1, 28, 28)`, standardized with the training mean/std.
    case fashionMNIST = "fashion-mnist"

    /// What a recipe uses where it states nothing, as a loaded ``Dataset`` carries it.
    ///
    /// - Augmentation: He et al. 2016's CIFAR recipe (pad 4, random crop, horizontal flip) for
    ///   Fashion-MNIST — the usual practice for 28×28 natural-image benchmarks, and what the
    ///   published anchors on its test set use (ResNet-18 with augmentation 94.9 %) — and none for
    ///   the 8×8 digits (a 4-pixel shift is half the image) and 1-D data.
    /// - Duration (nil: ``TrainPresets/defaults``' 30 epochs): Fashion-MNIST 20 epochs of 60,000
    ///   images — ResNet-20 with BN reaches 93.8 % after 15 and 94.6 % after 30 (seed 0), and the
    ///   per-method tables are 16 runs or more, so 20 epochs keeps the 93.5 % anchor at two thirds
    ///   of the cost.
    public var recipeDefaults: DatasetRecipeDefaults {
        switch self {
        case .fashionMNIST: DatasetRecipeDefaults(augmentation: .standard, duration: .epochs(20))
        case .digits, .mnist1d, .synthetic: DatasetRecipeDefaults()
        }
    }
}

/// Loads data sets (through the embedded Python for digits, mnist1d and fashion-mnist), caching the
/// generated arrays on disk.
///
/// `digits`, `mnist1d` and `fashion-mnist` are generated (read, for fashion-mnist) by `python/normlab_datasets.py` (see its docstring
/// for the exact recipes) and cached as `.npz` files in the cache directory — the
/// `cacheDirectory` argument, else ``defaultCacheDirectory()`` — named
/// `<name>-seed<seed>-<hash of the generator arguments>.npz` and written atomically. A cached
/// file's arguments and content hash are verified on every load; a corrupt or mismatched file
/// is regenerated. `synthetic` is generated in Swift and never cached. Failures are one-line
/// ``NormError/invalidConfiguration(method:reason:)`` errors with method `"dataset"`.
public enum Datasets {
    /// Environment variable naming the data-set cache directory (the folder the `.npz` files go in).
    public static let cacheDirectoryVariable = "NORMLAB_CACHE"
    /// Environment variable with extra folders (`:`-separated) searched for project-local
    /// Python packages (`mnist1d`), before `<repo>/.deps/python`.
    public static let pythonDependenciesVariable = "NORMLAB_PYDEPS"

    /// Loads `name`. `seed` affects only seeded splits/generators (digits split, synthetic).
    public static func load(_ name: DatasetName, seed: UInt64 = 0, cacheDirectory: URL? = nil) throws -> Dataset {
        try loadWithCacheInfo(name, seed: seed, cacheDirectory: cacheDirectory).dataset
    }

    /// ``load(_:seed:cacheDirectory:)`` that also says what the cache did. `useCache: false`
    /// generates without reading or writing any file.
    public static func loadWithCacheInfo(_ name: DatasetName, seed: UInt64 = 0, cacheDirectory: URL? = nil,
                                         useCache: Bool = true) throws -> (dataset: Dataset, cache: DatasetCacheInfo) {
        switch name {
        case .synthetic:
            return (SyntheticDataset.make(seed: seed), DatasetCacheInfo(status: .disabled, path: nil, note: "generated in Swift"))
        case .digits, .mnist1d, .fashionMNIST:
            let directory = useCache ? try (cacheDirectory ?? defaultCacheDirectory()) : nil
            var loaded = try PythonDatasets.load(name, seed: seed, cacheDirectory: directory, useCache: useCache)
            loaded.dataset.recipeDefaults = name.recipeDefaults
            return loaded
        }
    }

    /// `$NORMLAB_CACHE` when set, else `<repo>/.cache/datasets`, where `<repo>` is the folder
    /// above normlab's `python/` folder (``PythonSupport/locateDirectory()``).
    public static func defaultCacheDirectory() throws -> URL {
        if let env = ProcessInfo.processInfo.environment[cacheDirectoryVariable], !env.isEmpty {
            return URL(fileURLWithPath: (env as NSString).expandingTildeInPath, isDirectory: true).standardizedFileURL
        }
        return try PythonDatasets.repositoryRoot().appendingPathComponent(".cache/datasets", isDirectory: true)
    }

    /// The cache file `name`/`seed` uses in `cacheDirectory` (default ``defaultCacheDirectory()``);
    /// nil for `synthetic`, which is not cached. The file need not exist.
    public static func cacheFile(for name: DatasetName, seed: UInt64 = 0, cacheDirectory: URL? = nil) throws -> URL? {
        guard name != .synthetic else { return nil }
        let directory = try cacheDirectory ?? defaultCacheDirectory()
        return directory.appendingPathComponent(try PythonDatasets.cacheFileName(name, seed: seed))
    }
}

/// What the on-disk cache did during one load.
public struct DatasetCacheInfo: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Read from a verified cache file.
        case hit
        /// Generated; there was no cache file, one was written.
        case generated
        /// The cache file was unreadable, incomplete or did not verify; regenerated and rewritten.
        case regenerated
        /// Caching not used (`synthetic`, or `useCache: false`).
        case disabled
        /// Generated, but the cache file could not be written (``note`` says why).
        case unwritable
    }
    public let status: Status
    /// The cache file (nil when caching is disabled).
    public let path: String?
    /// Why a file was regenerated or not written; empty otherwise.
    public let note: String

    public init(status: Status, path: String?, note: String) {
        self.status = status
        self.path = path
        self.note = note
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
        let hash = Dataset.computeContentHash(trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv,
                                              classes: classes)
        return Dataset(name: "synthetic", trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv,
                       classes: classes, contentHash: hash)
    }
}
