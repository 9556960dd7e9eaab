import CPython
import Foundation

/// The embedded CPython interpreter: one per process, started on first use, never
/// finalized.
///
/// Every call into Python goes through ``withGIL(_:)``, which starts the interpreter if
/// needed and holds the global interpreter lock for the duration of a *synchronous*
/// closure. Because the closure cannot `await`, the GIL is never held across a
/// suspension point (a task may resume on another thread, which would corrupt
/// CPython's thread state). Everything in `NormPython` (``PyObjectRef``, conversions,
/// the numpy bridge) takes the GIL itself, so callers on any thread or task may use it
/// concurrently; `withGIL` is re-entrant, so wrapping a batch of calls in one `withGIL`
/// only saves lock traffic.
///
/// The interpreter is configured *isolated*: `PYTHONHOME`, `PYTHONPATH` and the other
/// `PYTHON*` variables, the user site directory and the working directory are ignored,
/// so a different Python on `PATH` (pyenv, a virtualenv) cannot leak its site-packages
/// into the interpreter this binary links (`pkg-config python3-embed`; Debian's
/// `/usr/bin/python3.11` with apt's numpy). Set `NORMLAB_PYTHON_EXECUTABLE` to the
/// interpreter whose installation matches the linked libpython when it is not
/// `/usr/bin/pythonX.Y`. Add import directories with ``addToSysPath(_:)``. No signal
/// handlers are installed, no bytecode is written, stdio is unbuffered.
///
/// The thread that starts the interpreter becomes Python's main thread. Any thread may
/// do it (tests start it from whichever runs first); a program that wants Python's main
/// thread to be its own (e.g. for Python code that uses `signal`) calls
/// ``initialize()`` early, on the main thread. The interpreter is never finalized:
/// CPython cannot be restarted once extension modules such as numpy were imported.
public enum Python {
    /// The environment variable naming the interpreter executable whose prefix provides the
    /// standard library and site-packages (default `/usr/bin/pythonX.Y` when it exists).
    public static let executableEnvironmentVariable = "NORMLAB_PYTHON_EXECUTABLE"

    /// Outcome of the one-time start. A lazily initialized `static let` is initialized
    /// exactly once, thread-safely (other callers block until it is done). It never takes
    /// the GIL through `PyGILState_Ensure`, so a thread holding the GIL can't deadlock on it.
    private static let startup: Result<Void, PythonError> = start()

    private static func start() -> Result<Void, PythonError> {
        var program: String? = nil
        if let configured = ProcessInfo.processInfo.environment[executableEnvironmentVariable], !configured.isEmpty {
            program = configured
        } else {
            let fallback = String(cString: normlab_py_default_program_name())
            if FileManager.default.isExecutableFile(atPath: fallback) { program = fallback }
        }
        var message = [CChar](repeating: 0, count: 512)
        let status: Int32 = message.withUnsafeMutableBufferPointer { buffer in
            if let program {
                return program.withCString { normlab_py_initialize($0, buffer.baseAddress, buffer.count) }
            }
            return normlab_py_initialize(nil, buffer.baseAddress, buffer.count)
        }
        guard status >= 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(PythonError(
                typeName: "RuntimeError",
                message: "cannot start the embedded Python \(String(cString: normlab_py_compiled_version())) (\(program ?? "default program name")): \(text)"))
        }
        return .success(())
    }

    /// Starts the interpreter if it is not running yet. Idempotent and thread-safe; any
    /// thread may be the first. Throws when the interpreter cannot start (the failure is
    /// remembered: later calls throw the same error).
    public static func initialize() throws {
        try startup.get()
    }

    /// Whether the interpreter is running.
    public static var isInitialized: Bool { Py_IsInitialized() != 0 }

    /// Runs `body` holding the GIL, starting the interpreter first if needed. Re-entrant:
    /// nested calls on the same thread are fine. `body` is synchronous on purpose — never
    /// hold the GIL across an `await`.
    public static func withGIL<R>(_ body: () throws -> R) throws -> R {
        try initialize()
        return try withStartedGIL(body)
    }

    /// `withGIL` for code that can only run once the interpreter started (a
    /// ``PyObjectRef`` exists), e.g. a deinitializer, which cannot throw.
    static func withStartedGIL<R>(_ body: () throws -> R) rethrows -> R {
        let state = PyGILState_Ensure()
        defer { PyGILState_Release(state) }
        return try body()
    }

    /// Whether the current thread holds the GIL.
    public static var currentThreadHoldsGIL: Bool {
        isInitialized && PyGILState_Check() != 0
    }

    /// The running interpreter's `sys.version`, e.g. `"3.11.2 (main, …) [GCC 12.2.0]"`.
    public static func version() throws -> String {
        try `import`("sys").attribute("version").decode(String.self)
    }

    /// A new reference to `None`.
    public static func none() throws -> PyObjectRef {
        try withGIL { PyObjectRef(borrowing: normlab_py_none()) }
    }

    /// The `builtins` module (`len`, `isinstance`, `ValueError`, …).
    public static func builtins() throws -> PyObjectRef {
        try `import`("builtins")
    }
}
