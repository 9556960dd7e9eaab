import CPython

extension Python {
    /// `import name` (dotted names return the leaf module): `try Python.import("numpy")`.
    public static func `import`(_ name: String) throws -> PyObjectRef {
        try withGIL { try .checked(PyImport_ImportModule(name), context: "import \(name)") }
    }

    /// Prepends `directory` to `sys.path` (made absolute) unless it is already there, so
    /// that packages in it can be imported. Idempotent.
    public static func addToSysPath(_ directory: String) throws {
        try withGIL {
            let absolute = try `import`("os.path").callMethod("abspath", directory)
            let path = try `import`("sys").attribute("path")
            if try !path.contains(absolute) {
                try path.callMethod("insert", 0, absolute)
            }
        }
    }

    /// Loads the Python source file at `path` as a module named `name` (the
    /// `importlib.util.spec_from_file_location` recipe) and registers it in
    /// `sys.modules[name]`, replacing a previous module of that name. Any extension is
    /// accepted. A syntax error throws a ``PythonError`` naming the file and line; any
    /// exception while the module body runs is thrown too, and leaves no half-initialized
    /// module in `sys.modules`.
    @discardableResult
    public static func loadModule(named name: String, fromFile path: String) throws -> PyObjectRef {
        try withGIL {
            let absolute = try `import`("os.path").callMethod("abspath", path)
            let machinery = try `import`("importlib.machinery")
            let util = try `import`("importlib.util")
            let loader = try machinery.callMethod("SourceFileLoader", name, absolute)
            let spec = try util.callMethod("spec_from_file_location", name, absolute, kwargs: ["loader": loader])
            if spec.isNone {
                throw PythonError(typeName: "ImportError", message: "cannot create a module spec for \(absolute)")
            }
            let module = try util.callMethod("module_from_spec", spec)
            let modules = try `import`("sys").attribute("modules")
            try modules.setItem(name, to: module)
            do {
                try loader.callMethod("exec_module", module)
            } catch {
                if let current = try? modules.callMethod("get", name), current.isIdentical(to: module) {
                    _ = try? modules.callMethod("pop", name, Python.none())
                }
                throw error
            }
            return module
        }
    }

    /// A fresh global namespace for ``run(_:in:filename:)``: a `dict` holding
    /// `__builtins__` and `__name__ = "__normlab__"`.
    public static func makeNamespace() throws -> PyObjectRef {
        try withGIL {
            let namespace = try PyObjectRef.dict(["__name__": "__normlab__"])
            try namespace.setItem("__builtins__", to: builtins())
            return namespace
        }
    }

    /// Executes Python statements (`exec`) in `namespace` (a fresh one when `nil`) and
    /// returns the namespace, so definitions can be read back:
    /// `try Python.run("y = 2 * 21").item("y")`. `filename` appears in tracebacks and
    /// syntax errors.
    @discardableResult
    public static func run(_ code: String, in namespace: PyObjectRef? = nil, filename: String = "<string>") throws -> PyObjectRef {
        try withGIL {
            let globals = try namespace ?? makeNamespace()
            let compiled = try PyObjectRef.checked(
                Py_CompileStringExFlags(code, filename, Py_file_input, nil, -1), context: "compile")
            _ = try PyObjectRef.checked(PyEval_EvalCode(compiled.pointer, globals.pointer, globals.pointer), context: "exec")
            return globals
        }
    }

    /// Evaluates one Python expression (`eval`) in `namespace` (a fresh one when `nil`).
    public static func evaluate(_ expression: String, in namespace: PyObjectRef? = nil) throws -> PyObjectRef {
        try withGIL {
            let globals = try namespace ?? makeNamespace()
            let compiled = try PyObjectRef.checked(
                Py_CompileStringExFlags(expression, "<expression>", Py_eval_input, nil, -1), context: "compile")
            return try .checked(PyEval_EvalCode(compiled.pointer, globals.pointer, globals.pointer), context: "eval")
        }
    }
}
