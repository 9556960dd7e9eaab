import Foundation
import NormCore
import NormPython

/// The Swift side of `python/normlab_datasets.py`: calls it through the embedded interpreter
/// and turns its numpy arrays into ``Dataset``s.
enum PythonDatasets {
    static let moduleName = "normlab_datasets"

    /// The folder above normlab's `python/` folder.
    static func repositoryRoot() throws -> URL {
        do {
            return URL(fileURLWithPath: try PythonSupport.locateDirectory(), isDirectory: true)
                .deletingLastPathComponent().standardizedFileURL
        } catch let error as PythonError {
            throw NormError.invalidConfiguration(method: "dataset", reason: error.message)
        }
    }

    /// `normlab_datasets`, imported from normlab's `python/` folder.
    static func module() throws -> PyObjectRef {
        try Python.withGIL {
            try Python.addToSysPath(try PythonSupport.locateDirectory())
            return try Python.import(moduleName)
        }
    }

    static func cacheFileName(_ name: DatasetName, seed: UInt64) throws -> String {
        try converting(name) {
            try module().callMethod("cache_file_name", name.rawValue, String(seed)).decode(String.self)
        }
    }

    /// Seeds go to Python as decimal text (a UInt64 may not fit a C long); Python's `int()` parses them.
    static func load(_ name: DatasetName, seed: UInt64, cacheDirectory: URL?,
                     useCache: Bool) throws -> (dataset: Dataset, cache: DatasetCacheInfo) {
        let (dataset, info, pythonHash) = try converting(name) {
            try Python.withGIL { () -> (Dataset, DatasetCacheInfo, String) in
                let result = try module().callMethod(
                    "load_for_swift", name.rawValue, String(seed),
                    kwargs: ["cache_dir": cacheDirectory?.path, "use_cache": useCache])
                let xTrain = try Tensor(numpy: result.item("x_train"))
                let xTest = try Tensor(numpy: result.item("x_test"))
                let yTrain = try result.item("y_train").decode([Int].self)
                let yTest = try result.item("y_test").decode([Int].self)
                let classes = try result.item("classes").decode(Int.self)
                let hash = try result.item("content_hash").decode(String.self)
                let statusText = try result.item("cache_status").decode(String.self)
                guard let status = DatasetCacheInfo.Status(rawValue: statusText) else {
                    throw NormError.invalidConfiguration(method: "dataset",
                                                         reason: "\(name.rawValue): unknown cache status '\(statusText)'")
                }
                let info = DatasetCacheInfo(status: status, path: try result.item("cache_path").decode(String?.self),
                                            note: try result.item("cache_note").decode(String.self))
                let dataset = Dataset(name: name.rawValue, trainInputs: xTrain, trainLabels: yTrain, testInputs: xTest,
                                      testLabels: yTest, classes: classes, contentHash: hash)
                return (dataset, info, hash)
            }
        }
        try validate(dataset)
        // The hash describes the arrays Swift now holds, not only what Python had.
        let swiftHash = dataset.computedContentHash()
        guard swiftHash == pythonHash else {
            throw NormError.invalidConfiguration(
                method: "dataset",
                reason: "\(name.rawValue): arrays changed on the way from Python (content hash \(swiftHash) != \(pythonHash))")
        }
        return (dataset, info)
    }

    private static func validate(_ d: Dataset) throws {
        func fail(_ reason: String) -> NormError { .invalidConfiguration(method: "dataset", reason: "\(d.name): \(reason)") }
        guard d.classes > 1 else { throw fail("needs at least 2 classes, got \(d.classes)") }
        for (split, x, y) in [("train", d.trainInputs, d.trainLabels), ("test", d.testInputs, d.testLabels)] {
            guard x.rank >= 3, x.shape[0] == y.count else {
                throw fail("\(split) inputs \(x.shape) do not match \(y.count) labels")
            }
            guard x.shape.dropFirst() == d.trainInputs.shape.dropFirst() else {
                throw fail("train and \(split) sample shapes differ")
            }
            if let bad = y.first(where: { $0 < 0 || $0 >= d.classes }) {
                throw fail("\(split) label \(bad) is outside 0..<\(d.classes)")
            }
        }
    }

    /// Runs `body`, turning Python errors into one-line ``NormError``s.
    static func converting<R>(_ name: DatasetName, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as PythonError {
            if error.typeName.hasSuffix("DatasetError") {
                let reason = error.message.split(whereSeparator: \.isWhitespace).joined(separator: " ")
                throw NormError.invalidConfiguration(method: "dataset", reason: reason)
            }
            throw NormError.invalidConfiguration(method: "dataset", reason: "\(name.rawValue): \(error.description)")
        }
    }
}
