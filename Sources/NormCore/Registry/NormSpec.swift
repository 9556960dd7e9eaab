/// A method chosen by name plus its hyper-parameters, as written in a CLI call or a
/// YAML spec (`{norm: gn, num_groups: 8}`). Resolved against a ``NormRegistry``.
public struct NormSpec: Sendable, Equatable, Hashable {
    /// Method name or alias, any case.
    public var name: String
    /// Hyper-parameters by option name.
    public var options: [String: OptionValue]

    public init(_ name: String, options: [String: OptionValue] = [:]) {
        self.name = name
        self.options = options
    }

    /// The name that resolves to the registry's default method (``NormRegistry/defaultMethod``).
    public static let defaultMethodName = "default"
    /// The registry's default method with its default options.
    public static let registryDefault = NormSpec(defaultMethodName)
}
