import CPython

/// A Swift value that can be turned into a new Python object.
///
/// Conformers: ``PyObjectRef`` (itself), `Int`, `Double`, `Float`, `Bool`, `String`,
/// `Optional` (`nil` → `None`), arrays (→ `list`), dictionaries (→ `dict`) of
/// convertible elements, and `Tensor` (→ a read-only, zero-copy numpy view; see
/// `Tensor.numpyView()`). Heterogeneous containers: ``PyObjectRef/list(_:)``,
/// ``PyObjectRef/tuple(_:)``, ``PyObjectRef/dict(_:)-swift.type.method``.
public protocol PythonConvertible {
    /// A new Python object for this value. Takes the GIL itself.
    func pythonObject() throws -> PyObjectRef
}

extension PyObjectRef: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef { self }
}

extension Int: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef {
        try Python.withGIL { try .checked(PyLong_FromLongLong(Int64(self)), context: "int(\(self))") }
    }
}

extension Double: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef {
        try Python.withGIL { try .checked(PyFloat_FromDouble(self), context: "float(\(self))") }
    }
}

extension Float: PythonConvertible {
    /// A Python `float` (float64) holding this value exactly.
    public func pythonObject() throws -> PyObjectRef { try Double(self).pythonObject() }
}

extension Bool: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef {
        try Python.withGIL { PyObjectRef(borrowing: self ? normlab_py_true() : normlab_py_false()) }
    }
}

extension String: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef {
        var text = self
        return try Python.withGIL {
            try text.withUTF8 { utf8 in
                try utf8.withMemoryRebound(to: CChar.self) { chars in
                    try .checked(PyUnicode_FromStringAndSize(chars.baseAddress, Py_ssize_t(chars.count)), context: "str")
                }
            }
        }
    }
}

extension Substring: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef { try String(self).pythonObject() }
}

extension Optional: PythonConvertible where Wrapped: PythonConvertible {
    /// `nil` becomes `None`.
    public func pythonObject() throws -> PyObjectRef {
        switch self {
        case .none: return try Python.none()
        case let .some(value): return try value.pythonObject()
        }
    }
}

extension Array: PythonConvertible where Element: PythonConvertible {
    /// A new `list`.
    public func pythonObject() throws -> PyObjectRef { try PyObjectRef.list(self) }
}

extension Dictionary: PythonConvertible where Key: PythonConvertible, Value: PythonConvertible {
    /// A new `dict` (Swift dictionary order, i.e. unspecified).
    public func pythonObject() throws -> PyObjectRef {
        try PyObjectRef.dict(map { (key: $0.key as any PythonConvertible, value: $0.value as any PythonConvertible) })
    }
}
