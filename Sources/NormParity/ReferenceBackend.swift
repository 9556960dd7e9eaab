import NormCore

/// One call of a reference implementation: the same inputs a plugin gets, as plain data.
public struct ReferenceCall: Sendable {
    /// Canonical method name.
    public var method: String
    public var input: Tensor
    public var mode: Mode
    public var gradOutput: Tensor?
    /// Parameter values by name (`weight`, `bias`, `tau`, `eps`).
    public var parameters: [String: Tensor]
    /// Buffer values by name (`running_mean`, `running_var`); the batch counter separately.
    public var buffers: [String: Tensor]
    public var batchesTracked: Int
    /// Hyper-parameters as given to the plugin.
    public var options: [String: OptionValue]
}

/// What a reference returned: arrays by name (`output`, `grad_input`, `grad_<param>`,
/// `running_mean`, `running_var`) and the batch counter after the call.
public struct ReferenceResult: Sendable {
    public var arrays: [String: Tensor]
    public var batchesTracked: Int?

    public init(arrays: [String: Tensor], batchesTracked: Int?) {
        self.arrays = arrays
        self.batchesTracked = batchesTracked
    }
}

/// Something that can compute reference results, e.g. the numpy package `python/normref`
/// run through the embedded interpreter (`NormPython`).
public protocol ReferenceBackend: Sendable {
    /// Whether a reference exists for this canonical method name.
    func hasReference(for method: String) -> Bool
    func run(_ call: ReferenceCall) throws -> ReferenceResult
}
