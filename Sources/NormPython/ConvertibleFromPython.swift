import CPython

/// A Swift type that can be built from a Python object, strictly: a wrong Python type is a
/// ``PythonError`` (`TypeError`), never a silent coercion.
///
/// - `Int`: any object with `__index__` (`int`, `numpy.int64`, `bool`); overflow → OverflowError.
/// - `Double`, `Float`: any real number (`float`, `int`, `numpy.float32`, …), not `str`.
/// - `Bool`: `True`/`False` and `numpy.bool_` only (not `0`/`1`).
/// - `String`: `str` only.
/// - arrays: any iterable except `str`/`bytes`/`dict` (list, tuple, generator, …).
/// - dictionaries: any mapping (`dict`, or an object with `items()`).
/// - `Optional`: `None` → `nil`.
/// - `Tensor`: a floating-point numpy array (or array-like), copied once into Swift memory.
/// - ``PyObjectRef``: the object itself.
///
/// `try object.decode([String: Double].self)` or `try [String: Double](python: object)`.
public protocol ConvertibleFromPython {
    /// Converts `object`, taking the GIL itself.
    init(python object: PyObjectRef) throws
}

extension PyObjectRef {
    /// Converts this object to a Swift value: `try result.decode(Int.self)`.
    public func decode<T: ConvertibleFromPython>(_ type: T.Type = T.self) throws -> T {
        try T(python: self)
    }
}

extension PyObjectRef: ConvertibleFromPython {
    /// The same object, as a new handle.
    public convenience init(python object: PyObjectRef) throws {
        self.init(borrowing: object.pointer)
    }
}

extension Int: ConvertibleFromPython {
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            let index = try PyObjectRef.checked(PyNumber_Index(object.pointer), context: "int conversion")
            let value = PyLong_AsLongLong(index.pointer)
            if value == -1, PyErr_Occurred() != nil { throw PythonError.fetch(context: "int conversion") }
            return Int(value)
        }
    }
}

extension Double: ConvertibleFromPython {
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            if normlab_py_unicode_check(object.pointer) != 0 || normlab_py_bytes_check(object.pointer) != 0 {
                throw PythonError.typeError("expected a real number, got \(String(cString: normlab_py_type_name(object.pointer)))")
            }
            let value = PyFloat_AsDouble(object.pointer)
            if value == -1, PyErr_Occurred() != nil { throw PythonError.fetch(context: "float conversion") }
            return value
        }
    }
}

extension Float: ConvertibleFromPython {
    /// The nearest float32 to the Python number.
    public init(python object: PyObjectRef) throws {
        self = Float(try Double(python: object))
    }
}

extension Bool: ConvertibleFromPython {
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            if object.pointer == normlab_py_true() { return true }
            if object.pointer == normlab_py_false() { return false }
            let type = String(cString: normlab_py_type_name(object.pointer))
            guard type == "numpy.bool_" || type == "numpy.bool" else {
                throw PythonError.typeError("expected bool, got \(type)")
            }
            let r = PyObject_IsTrue(object.pointer)
            if r < 0 { throw PythonError.fetch(context: "bool conversion") }
            return r == 1
        }
    }
}

extension String: ConvertibleFromPython {
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            guard normlab_py_unicode_check(object.pointer) != 0 else {
                throw PythonError.typeError("expected str, got \(String(cString: normlab_py_type_name(object.pointer)))")
            }
            var size: Py_ssize_t = 0
            guard let bytes = PyUnicode_AsUTF8AndSize(object.pointer, &size) else {
                throw PythonError.fetch(context: "str conversion")
            }
            return bytes.withMemoryRebound(to: UInt8.self, capacity: Int(size)) {
                String(decoding: UnsafeBufferPointer(start: $0, count: Int(size)), as: UTF8.self)
            }
        }
    }
}

extension Optional: ConvertibleFromPython where Wrapped: ConvertibleFromPython {
    /// `None` → `nil`, anything else converted as `Wrapped`.
    public init(python object: PyObjectRef) throws {
        self = object.isNone ? .none : .some(try Wrapped(python: object))
    }
}

extension Array: ConvertibleFromPython where Element: ConvertibleFromPython {
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            let p = object.pointer
            if normlab_py_unicode_check(p) != 0 || normlab_py_bytes_check(p) != 0 || normlab_py_dict_check(p) != 0 {
                throw PythonError.typeError("expected a list, tuple or other iterable of items, got \(String(cString: normlab_py_type_name(p)))")
            }
            let iterator = try PyObjectRef.checked(PyObject_GetIter(p), context: "iter")
            var items: [Element] = []
            let hint = PyObject_LengthHint(p, 0)
            if hint > 0 { items.reserveCapacity(Int(hint)) } else if hint < 0 { PyErr_Clear() }
            while let next = PyIter_Next(iterator.pointer) {
                items.append(try Element(python: PyObjectRef(owning: next)))
            }
            if PyErr_Occurred() != nil { throw PythonError.fetch(context: "iteration") }
            return items
        }
    }
}

extension Dictionary: ConvertibleFromPython where Key: ConvertibleFromPython, Value: ConvertibleFromPython {
    /// Keys equal after conversion: the later one wins.
    public init(python object: PyObjectRef) throws {
        self = try Python.withGIL {
            let items = try PyObjectRef.checked(PyMapping_Items(object.pointer), context: "mapping items")
            let n = PyList_Size(items.pointer)
            if n < 0 { throw PythonError.fetch(context: "mapping items") }
            var result: [Key: Value] = [:]
            result.reserveCapacity(Int(n))
            for i in 0..<n {
                guard let pair = PyList_GetItem(items.pointer, i) else { throw PythonError.fetch(context: "mapping item") }
                let pairRef = PyObjectRef(borrowing: pair)
                guard normlab_py_tuple_check(pair) != 0, PyTuple_Size(pair) == 2,
                      let k = PyTuple_GetItem(pairRef.pointer, 0), let v = PyTuple_GetItem(pairRef.pointer, 1) else {
                    PyErr_Clear()
                    throw PythonError.typeError("mapping items() did not yield (key, value) pairs")
                }
                let key = try Key(python: PyObjectRef(borrowing: k))
                result[key] = try Value(python: PyObjectRef(borrowing: v))
            }
            return result
        }
    }
}
