import CPython

/// numpy, as the tensor bridge uses it: the module and the few callables it needs,
/// imported once per process.
///
/// numpy comes from the embedded interpreter's own site-packages (Debian's apt numpy
/// 1.24 for `/usr/bin/python3.11`); see ``Python`` for why another Python's numpy
/// cannot be picked up.
public enum Numpy {
    struct Handles {
        let module: PyObjectRef
        let asarray: PyObjectRef
        let ndarray: PyObjectRef
        let float32: PyObjectRef
    }

    /// Read and written only with the GIL held (the GIL is the lock).
    nonisolated(unsafe) private static var cached: Handles?

    /// The cached handles; call with the GIL held.
    static func handles() throws -> Handles {
        if let cached { return cached }
        let module = try Python.import("numpy")
        let handles = Handles(
            module: module,
            asarray: try module.attribute("asarray"),
            ndarray: try module.attribute("ndarray"),
            float32: try module.attribute("float32"))
        cached = handles
        return handles
    }

    /// The `numpy` module.
    public static func module() throws -> PyObjectRef {
        try Python.withGIL { try handles().module }
    }

    /// `numpy.__version__`, e.g. `"1.24.2"`.
    public static func version() throws -> String {
        try module().attribute("__version__").decode(String.self)
    }
}
