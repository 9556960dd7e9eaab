import NormCore

/// One step of a parity case: an input, a mode, and an optional output gradient.
public struct ParityStep: Sendable {
    public var input: Tensor
    public var mode: Mode
    public var gradOutput: Tensor?
}

/// A seeded parity scenario: a layer built with `options`, given initial parameters and
/// buffers, then run through `steps` (a multi-step trajectory compares running statistics
/// after every step).
public struct ParityCase: Sendable {
    /// Short description, e.g. `rank4 train affine eps=1 momentum=none`.
    public var name: String
    /// Canonical method name.
    public var method: String
    public var options: [String: OptionValue]
    public var parameters: [String: Tensor]
    public var buffers: [String: Tensor]
    public var steps: [ParityStep]
}
