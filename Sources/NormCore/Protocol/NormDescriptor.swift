/// What a normalization method is: its names, a one-line summary, the paper or
/// convention it follows, its option schema and the state it carries.
public struct NormDescriptor: Sendable {
    /// Canonical snake_case name (`batch_norm`).
    public let name: String
    /// Other names it answers to (`bn`); lookup is case-insensitive.
    public let aliases: [String]
    /// One line for `normlab list`.
    public let summary: String
    /// Paper or convention the semantics follow.
    public let reference: String
    /// Typed hyper-parameters with defaults.
    public let options: [OptionSpec]
    /// Input ranks the method accepts (channel axis 1).
    public let ranks: ClosedRange<Int>
    /// Longer notes for `normlab describe` (reduction axes, affine shape, conventions).
    public let notes: [String]
    /// Rules on options and shapes a layer enforces at construction (see ``NormConstraint``);
    /// the parity generator builds only cases that satisfy them and the spec validator names them.
    public let constraints: [NormConstraint]
    /// The axes each statistic is taken over, when the method normalizes by statistics
    /// (`nil` for e.g. a fixed affine); used to keep generated shapes at ≥ 2 values per reduction.
    public let reduction: ReductionAxes?

    public init(name: String, aliases: [String] = [], summary: String, reference: String,
                options: [OptionSpec], ranks: ClosedRange<Int> = 2...5, notes: [String] = [],
                constraints: [NormConstraint] = [], reduction: ReductionAxes? = nil) {
        self.name = name
        self.aliases = aliases
        self.summary = summary
        self.reference = reference
        self.options = options
        self.ranks = ranks
        self.notes = notes
        self.constraints = constraints
        self.reduction = reduction
    }

    /// The schema entry for an option.
    public func option(_ name: String) -> OptionSpec? {
        options.first { $0.name.lowercased() == name.lowercased() }
    }
}
