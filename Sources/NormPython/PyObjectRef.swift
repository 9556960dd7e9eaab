import CPython

/// An owned reference to a Python object.
///
/// The handle holds one strong reference (`Py_INCREF`) and gives it back on `deinit`,
/// under the GIL, from whatever thread releases the last Swift reference. Every method
/// takes the GIL itself, so a handle may be shared between threads and tasks
/// (`Sendable`); Python's own thread-safety rules still apply to the object (e.g. two
/// threads appending to one list are serialised by the GIL, not made atomic).
///
/// Every failure of a Python API call — an exception raised by Python code, a missing
/// attribute, a wrong type in a conversion — is thrown as a ``PythonError``.
public final class PyObjectRef: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The object. Valid as long as this handle lives; use it only with the GIL held.
    public let pointer: UnsafeMutablePointer<PyObject>

    /// Takes over a *new* reference (the result of a CPython call that returns one).
    /// Call with the GIL held.
    public init(owning pointer: UnsafeMutablePointer<PyObject>) {
        self.pointer = pointer
    }

    /// Adds a reference to a *borrowed* one (e.g. `PyTuple_GetItem`'s result). Call with the
    /// GIL held.
    public init(borrowing pointer: UnsafeMutablePointer<PyObject>) {
        normlab_py_incref(pointer)
        self.pointer = pointer
    }

    /// Wraps the result of a CPython call returning a new reference, turning `NULL` into
    /// the pending Python exception. Call with the GIL held.
    public static func checked(_ pointer: UnsafeMutablePointer<PyObject>?, context: @autoclosure () -> String = "Python API call") throws -> PyObjectRef {
        guard let pointer else { throw PythonError.fetch(context: context()) }
        return PyObjectRef(owning: pointer)
    }

    deinit {
        let p = pointer
        Python.withStartedGIL { normlab_py_decref(p) }
    }

    // MARK: identity and type

    /// Whether this is `None`.
    public var isNone: Bool { pointer == normlab_py_none() }

    /// The object's type name as CPython spells it (`"int"`, `"numpy.ndarray"`).
    public var typeName: String {
        Python.withStartedGIL { String(cString: normlab_py_type_name(pointer)) }
    }

    /// `type(self)`.
    public func type() -> PyObjectRef {
        Python.withStartedGIL { PyObjectRef(owning: normlab_py_type_of(pointer)) }
    }

    /// `isinstance(self, type)`.
    public func isInstance(of type: PyObjectRef) throws -> Bool {
        try Python.withGIL {
            let r = PyObject_IsInstance(pointer, type.pointer)
            if r < 0 { throw PythonError.fetch(context: "isinstance") }
            return r == 1
        }
    }

    /// Whether both handles refer to the same object (`self is other`).
    public func isIdentical(to other: PyObjectRef) -> Bool { pointer == other.pointer }

    // MARK: attributes

    /// `getattr(self, name)`.
    public func attribute(_ name: String) throws -> PyObjectRef {
        try Python.withGIL { try .checked(PyObject_GetAttrString(pointer, name), context: "getattr \(name)") }
    }

    /// `hasattr(self, name)` (exceptions other than AttributeError propagate).
    public func hasAttribute(_ name: String) throws -> Bool {
        try Python.withGIL {
            if let a = PyObject_GetAttrString(pointer, name) {
                normlab_py_decref(a)
                return true
            }
            if normlab_py_attribute_error_pending() != 0 {
                PyErr_Clear()
                return false
            }
            throw PythonError.fetch(context: "hasattr \(name)")
        }
    }

    /// `setattr(self, name, value)`.
    public func setAttribute(_ name: String, to value: any PythonConvertible) throws {
        try Python.withGIL {
            let v = try value.pythonObject()
            if PyObject_SetAttrString(pointer, name, v.pointer) != 0 {
                throw PythonError.fetch(context: "setattr \(name)")
            }
        }
    }

    // MARK: items

    /// `self[key]`.
    public func item(_ key: any PythonConvertible) throws -> PyObjectRef {
        try Python.withGIL {
            let k = try key.pythonObject()
            return try .checked(PyObject_GetItem(pointer, k.pointer), context: "getitem")
        }
    }

    /// `self[key] = value`.
    public func setItem(_ key: any PythonConvertible, to value: any PythonConvertible) throws {
        try Python.withGIL {
            let k = try key.pythonObject()
            let v = try value.pythonObject()
            if PyObject_SetItem(pointer, k.pointer, v.pointer) != 0 { throw PythonError.fetch(context: "setitem") }
        }
    }

    /// `key in self`.
    public func contains(_ key: any PythonConvertible) throws -> Bool {
        try Python.withGIL {
            let k = try key.pythonObject()
            let r = PySequence_Contains(pointer, k.pointer)
            if r < 0 { throw PythonError.fetch(context: "contains") }
            return r == 1
        }
    }

    /// `len(self)`.
    public func count() throws -> Int {
        try Python.withGIL {
            let n = PyObject_Size(pointer)
            if n < 0 { throw PythonError.fetch(context: "len") }
            return Int(n)
        }
    }

    /// `bool(self)`.
    public func isTruthy() throws -> Bool {
        try Python.withGIL {
            let r = PyObject_IsTrue(pointer)
            if r < 0 { throw PythonError.fetch(context: "bool") }
            return r == 1
        }
    }

    // MARK: calls

    /// `self(*args, **kwargs)`:
    /// `try f.call(x, 2, kwargs: ["mode": "train", "options": options])`.
    @discardableResult
    public func call(_ args: any PythonConvertible..., kwargs: KeyValuePairs<String, any PythonConvertible> = [:]) throws -> PyObjectRef {
        try call(arguments: args, keywords: kwargs.map { (name: $0.key, value: $0.value) })
    }

    /// `self(*arguments, **keywords)` with arguments built at run time.
    @discardableResult
    public func call(arguments: [any PythonConvertible], keywords: [(name: String, value: any PythonConvertible)] = []) throws -> PyObjectRef {
        try Python.withGIL {
            let tuple = try PyObjectRef.tuple(arguments)
            var kwargs: PyObjectRef? = nil
            if !keywords.isEmpty {
                let dict = try PyObjectRef.checked(PyDict_New(), context: "dict()")
                for (name, value) in keywords {
                    let key = try name.pythonObject()
                    if PyDict_Contains(dict.pointer, key.pointer) == 1 {
                        throw PythonError.typeError("keyword argument '\(name)' repeated")
                    }
                    let v = try value.pythonObject()
                    if PyDict_SetItem(dict.pointer, key.pointer, v.pointer) != 0 { throw PythonError.fetch(context: "kwargs") }
                }
                kwargs = dict
            }
            return try .checked(PyObject_Call(pointer, tuple.pointer, kwargs?.pointer), context: "call")
        }
    }

    /// `self.name(*args, **kwargs)`.
    @discardableResult
    public func callMethod(_ name: String, _ args: any PythonConvertible..., kwargs: KeyValuePairs<String, any PythonConvertible> = [:]) throws -> PyObjectRef {
        try attribute(name).call(arguments: args, keywords: kwargs.map { (name: $0.key, value: $0.value) })
    }

    // MARK: text

    /// `str(self)`; a placeholder if `__str__` raises.
    public var description: String {
        Python.withStartedGIL { PythonError.safeStr(self) }
    }

    /// `repr(self)`; a placeholder if `__repr__` raises.
    public var debugDescription: String {
        Python.withStartedGIL {
            guard let r = PyObject_Repr(pointer) else {
                PyErr_Clear()
                return "<unrepresentable \(String(cString: normlab_py_type_name(pointer)))>"
            }
            return PythonError.utf8String(PyObjectRef(owning: r)) ?? "<unrepresentable>"
        }
    }

    // MARK: builders

    /// A new tuple of the converted `items`.
    public static func tuple(_ items: [any PythonConvertible]) throws -> PyObjectRef {
        try Python.withGIL {
            let converted = try items.map { try $0.pythonObject() }
            let tuple = try PyObjectRef.checked(PyTuple_New(Py_ssize_t(converted.count)), context: "tuple()")
            for (i, item) in converted.enumerated() {
                normlab_py_incref(item.pointer)  // PyTuple_SetItem steals a reference
                if PyTuple_SetItem(tuple.pointer, Py_ssize_t(i), item.pointer) != 0 { throw PythonError.fetch(context: "tuple item") }
            }
            return tuple
        }
    }

    /// A new list of the converted `items` (mixed types allowed).
    public static func list(_ items: [any PythonConvertible]) throws -> PyObjectRef {
        try Python.withGIL {
            let converted = try items.map { try $0.pythonObject() }
            let list = try PyObjectRef.checked(PyList_New(Py_ssize_t(converted.count)), context: "list()")
            for (i, item) in converted.enumerated() {
                normlab_py_incref(item.pointer)  // PyList_SetItem steals a reference
                if PyList_SetItem(list.pointer, Py_ssize_t(i), item.pointer) != 0 { throw PythonError.fetch(context: "list item") }
            }
            return list
        }
    }

    /// A new `dict` with string keys, in the given order (mixed value types allowed):
    /// `try .dict(["eps": 1e-3, "affine": false])`.
    public static func dict(_ items: KeyValuePairs<String, any PythonConvertible>) throws -> PyObjectRef {
        try dict(items.map { (key: $0.key as any PythonConvertible, value: $0.value) })
    }

    /// A new `dict` from key/value pairs built at run time (later keys win).
    public static func dict(_ items: [(key: any PythonConvertible, value: any PythonConvertible)]) throws -> PyObjectRef {
        try Python.withGIL {
            let dict = try PyObjectRef.checked(PyDict_New(), context: "dict()")
            for (key, value) in items {
                let k = try key.pythonObject()
                let v = try value.pythonObject()
                if PyDict_SetItem(dict.pointer, k.pointer, v.pointer) != 0 { throw PythonError.fetch(context: "dict item") }
            }
            return dict
        }
    }
}
