import NormCore
import Foundation

/// One `normlab apply` call: a method run once on arrays read from `.npy` files
/// (`docs/apply-contract.md`).
public struct ApplyRequest: Sendable {
    public var method: String
    public var input: URL
    public var outputDirectory: URL
    public var mode: Mode = .train
    public var gradOutput: URL?
    /// Parameter files by parameter name (`weight`, `bias`, `tau`, `eps`).
    public var parameterFiles: [(name: String, url: URL)] = []
    /// Buffer files by buffer name (`running_mean`, `running_var`).
    public var bufferFiles: [(name: String, url: URL)] = []
    /// Hyper-parameters as `KEY=VALUE` texts.
    public var settings: [String] = []

    public init(method: String, input: URL, outputDirectory: URL) {
        self.method = method
        self.input = input
        self.outputDirectory = outputDirectory
    }
}

/// What an apply produced, in memory, before anything is written.
public struct ApplyResult: Sendable {
    /// Output files in write order: `output`, `grad_input`, `grad_<param>`, `running_*`.
    public var arrays: [(name: String, tensor: Tensor)] = []
    /// Notes for the user (e.g. a skipped running-stat update); not errors.
    public var warnings: [String] = []

    public func array(_ name: String) -> Tensor? { arrays.first { $0.name == name }?.tensor }
}

/// Why an apply failed; the description is the single line the CLI prints.
public enum ApplyError: Error, CustomStringConvertible, Sendable {
    case file(path: String, NPYError)
    case norm(NormError)
    case usage(String)
    case output(String)

    public var description: String {
        switch self {
        case let .file(path, error): return "\(path): \(error)"
        case let .norm(error): return error.description
        case let .usage(message): return message
        case let .output(message): return message
        }
    }
}
extension ApplyError: UserFacingError {}
