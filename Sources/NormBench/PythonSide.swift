import NormCore
import NormPython

/// The float64 references in the embedded interpreter (`normlab_host.reference`: normref
/// for the built-ins, a Python plugin's own `reference` function for custom methods).
public struct PythonBenchReference: BenchReference {
    /// Canonical names of the methods that have a reference (the registry's `hasReference`).
    public let methods: Set<String>

    public init(methods: Set<String>) { self.methods = methods }

    public func covers(_ method: String) -> Bool { methods.contains(method) }

    public func run(method: String, input: Tensor, mode: Mode, gradOutput: Tensor?,
                    parameters: [String: Tensor], buffers: [String: Tensor], options: [String: OptionValue]) throws -> [String: Tensor] {
        let host = try PythonSupport.host()
        return try Python.withGIL {
            let result = try host.attribute("reference").call(arguments: [
                method, input, mode.rawValue, gradOutput, parameters, buffers, 0, options,
            ])
            return try result.item(0).decode([String: Tensor].self)
        }
    }
}

/// `python/normlab_bench.py`: straightforward float32 numpy code per method, timed inside
/// Python (`time.perf_counter` around each call; the Swift→Python call is not included).
public final class NumpySide {
    private let module: PyObjectRef

    public init() throws {
        _ = try PythonSupport.host()   // puts python/ on sys.path
        module = try Python.import("normlab_bench")
    }

    /// Whether `normlab_bench.py` implements `method` (canonical name).
    public func implements(_ method: String) throws -> Bool {
        try module.callMethod("has", method).decode(Bool.self)
    }

    /// An implementation object bound to `x`, parameters, buffers and options.
    public func make(method: String, input: Tensor, parameters: [String: Tensor], buffers: [String: Tensor],
                     options: [String: OptionValue]) throws -> PyObjectRef {
        try module.callMethod("make", method, input, parameters, buffers, options)
    }

    /// (train output, grad_input, eval output) of the numpy implementation.
    public func outputs(_ impl: PyObjectRef, gradOutput: Tensor) throws -> (train: Tensor, gradInput: Tensor, eval: Tensor) {
        try Python.withGIL {
            let out = try module.callMethod("outputs", impl, gradOutput)
            return (try Tensor(numpy: out.item(0)), try Tensor(numpy: out.item(1)), try Tensor(numpy: out.item(2)))
        }
    }

    /// Seconds per call of `op`.
    public func time(_ impl: PyObjectRef, op: BenchOp, gradOutput: Tensor,
                     warmup: Int, minReps: Int, maxReps: Int, minSeconds: Double) throws -> [Double] {
        try module.callMethod("time_op", impl, op.rawValue, gradOutput, warmup, minReps, maxReps, minSeconds)
            .decode([Double].self)
    }
}
