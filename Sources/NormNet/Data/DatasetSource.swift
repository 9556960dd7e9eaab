import Foundation
import NormCore
import NormPython

/// A user's `.npz` data file, as recorded in run reports and provenance.
public struct DatasetFile: Sendable, Equatable {
    /// The path as given (`--dataset` or the spec's `dataset`).
    public let path: String
    /// Hex SHA-256 of the file's bytes.
    public let sha256: String
    /// Class names from the file's optional `classes` array (nil when it gave none or a count).
    public let classNames: [String]?
    /// What was done to the inputs (e.g. uint8 pixels standardized with the training mean/std).
    public let preprocessing: String

    public init(path: String, sha256: String, classNames: [String]?, preprocessing: String) {
        self.path = path
        self.sha256 = sha256
        self.classNames = classNames
        self.preprocessing = preprocessing
    }
}

/// What `--dataset` and a spec's `dataset` name: a built-in data set or a user's `.npz` file.
///
/// An argument that is a built-in name (``DatasetName``) is that data set; one ending in
/// `.npz` or containing a `/` is a file path (see ``NPZDataset``); anything else is an error
/// listing the choices.
public enum DatasetSource: Sendable, Equatable, CustomStringConvertible {
    case builtin(DatasetName)
    case file(String)

    public init(argument: String) throws {
        if let name = DatasetName(rawValue: argument) {
            self = .builtin(name)
        } else if argument.lowercased().hasSuffix(".npz") || argument.contains("/") {
            self = .file(argument)
        } else {
            throw NetError("unknown dataset '\(argument)'; known: \(DatasetName.allCases.map(\.rawValue).joined(separator: ", ")), or a path to an .npz file")
        }
    }

    public var description: String {
        switch self {
        case let .builtin(name): return name.rawValue
        case let .file(path): return path
        }
    }

    /// The data. `seed` affects only seeded built-in splits/generators.
    public func load(seed: UInt64 = 0, cacheDirectory: URL? = nil) throws -> Dataset {
        switch self {
        case let .builtin(name): return try Datasets.load(name, seed: seed, cacheDirectory: cacheDirectory)
        case let .file(path): return try NPZDataset.load(path: path)
        }
    }
}

/// A user's data set in one `.npz` file, read and validated by `python/normlab_userdata.py`
/// (see its docstring for the format: `x_train`, `y_train`, `x_test`, `y_test`, optional
/// `classes`; channel axis 1; float32/float64/uint8 inputs, uint8 standardized per channel).
/// Every problem is one line naming the file, raised before any training. The run report
/// records the file's SHA-256 beside the content hash of the arrays.
public enum NPZDataset {
    static let moduleName = "normlab_userdata"

    public static func load(path: String) throws -> Dataset {
        let dataset: Dataset, pythonHash: String
        do {
            (dataset, pythonHash) = try Python.withGIL { () -> (Dataset, String) in
                try Python.addToSysPath(try PythonSupport.locateDirectory())
                let result = try Python.import(moduleName).callMethod("load_npz_for_swift", path)
                let hash = try result.item("content_hash").decode(String.self)
                let file = DatasetFile(path: path, sha256: try result.item("file_sha256").decode(String.self),
                                       classNames: try result.item("class_names").decode([String]?.self),
                                       preprocessing: try result.item("preprocessing").decode(String.self))
                let d = Dataset(name: path, trainInputs: try Tensor(numpy: result.item("x_train")),
                                trainLabels: try result.item("y_train").decode([Int].self),
                                testInputs: try Tensor(numpy: result.item("x_test")),
                                testLabels: try result.item("y_test").decode([Int].self),
                                classes: try result.item("classes").decode(Int.self), contentHash: hash, sourceFile: file)
                return (d, hash)
            }
        } catch let error as PythonError {
            let text = error.message.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            throw NormError.invalidConfiguration(
                method: "dataset", reason: error.typeName.hasSuffix("DatasetError") ? text : "\(path): \(error.description)")
        }
        guard dataset.computedContentHash() == pythonHash else {
            throw NormError.invalidConfiguration(method: "dataset", reason: "\(path): arrays changed on the way from Python (content hash mismatch)")
        }
        return dataset
    }
}
