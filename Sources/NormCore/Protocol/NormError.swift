/// Everything that can go wrong building or running a normalization layer.
///
/// Each case's `description` is one line that names the layer or option and says what
/// to change; the CLI prints exactly that line.
public enum NormError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No plugin is registered under that name or alias.
    case unknownMethod(String, known: [String])
    /// The option is not in the method's schema.
    case unknownOption(method: String, option: String, known: [String])
    /// The option's value does not parse or is out of range.
    case invalidOption(method: String, option: String, value: String, expected: String)
    /// A required option (e.g. GN's `num_groups`) was not given.
    case missingOption(method: String, option: String)
    /// Options that cannot hold together (e.g. C not divisible by num_groups).
    case invalidConfiguration(method: String, reason: String)
    /// The input's rank or shape does not suit the layer.
    case invalidInput(method: String, reason: String)
    /// A reduction would run over a single value (mean 0, variance 0: a silent trap).
    case singleValueReduction(method: String, reason: String)
    /// A named parameter or buffer that the layer does not have.
    case unknownState(method: String, name: String, known: [String])
    /// A parameter or buffer array of the wrong shape.
    case stateShape(method: String, name: String, expected: [Int], got: [Int])
    /// `backward` was called without a preceding `forward`, or with a mismatched gradient.
    case invalidBackward(method: String, reason: String)
    /// A custom (e.g. Python) plugin failed or broke the protocol.
    case pluginFailure(method: String, reason: String)
    /// A plugin file could not be loaded (the message names the file and the problem).
    case pluginLoad(String)

    public var description: String {
        switch self {
        case let .unknownMethod(name, known):
            return "unknown normalization method '\(name)'; known: \(known.joined(separator: ", "))"
        case let .unknownOption(method, option, known):
            return "\(method): unknown option '\(option)'; options are: \(known.isEmpty ? "(none)" : known.joined(separator: ", "))"
        case let .invalidOption(method, option, value, expected):
            return "\(method): invalid value '\(value)' for option '\(option)': expected \(expected)"
        case let .missingOption(method, option):
            return "\(method): option '\(option)' is required (e.g. --set \(option)=VALUE)"
        case let .invalidConfiguration(method, reason):
            return "\(method): \(reason)"
        case let .invalidInput(method, reason):
            return "\(method): \(reason)"
        case let .singleValueReduction(method, reason):
            return "\(method): \(reason)"
        case let .unknownState(method, name, known):
            return "\(method): no parameter or buffer named '\(name)'; it has: \(known.isEmpty ? "(none)" : known.joined(separator: ", "))"
        case let .stateShape(method, name, expected, got):
            return "\(method): '\(name)' must have shape \(expected.shapeText), got \(got.shapeText)"
        case let .invalidBackward(method, reason):
            return "\(method): \(reason)"
        case let .pluginFailure(method, reason):
            return "plugin \(method): \(reason)"
        case let .pluginLoad(message):
            return message
        }
    }
}
