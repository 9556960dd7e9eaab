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
}
