import NormCore
import NormParity
import NormPython

/// The float64 references run in the embedded interpreter: `python/normref` for the
/// built-ins and a plugin file's own `reference` function for custom methods. Arrays go to
/// numpy as zero-copy views.
public struct PythonReferenceBackend: ReferenceBackend {
    public init() {}

    public func hasReference(for method: String) -> Bool { true }

    public func run(_ call: ReferenceCall) throws -> ReferenceResult {
        let host = try PythonSupport.host()
        return try Python.withGIL {
            let result = try host.attribute("reference").call(arguments: [
                call.method, call.input, call.mode.rawValue, call.gradOutput as Tensor?,
                call.parameters, call.buffers, call.batchesTracked, call.options,
            ])
            let arrays = try result.item(0).decode([String: Tensor].self)
            let batches = try result.item(1).decode(Int?.self)
            return ReferenceResult(arrays: arrays, batchesTracked: batches)
        }
    }
}
