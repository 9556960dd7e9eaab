import NormCore
import CPython
import Foundation

/// A Python exception (or a failed conversion between Swift and Python values) as a
/// Swift error.
///
/// `description` is one line in Python's own format, `"ValueError: num_groups must divide
/// C"`; a `SyntaxError` (or `IndentationError`, `TabError`) also names the file and line:
/// `"SyntaxError: invalid syntax (/path/plugin.py, line 3)"`. The full Python traceback,
/// when there was one, is in ``traceback``.
public struct PythonError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The exception class, qualified by its module unless it is a builtin:
    /// `"ValueError"`, `"numpy.AxisError"`, `"myplugin.BadShape"`.
    public var typeName: String
    /// `str(exception)`; for syntax errors the bare message (`exception.msg`).
    public var message: String
    /// For syntax errors: the file the error is in (`exception.filename`).
    public var file: String?
    /// For syntax errors: the 1-based line (`exception.lineno`).
    public var line: Int?
    /// The formatted Python traceback (several lines), when Python produced one.
    public var traceback: String?

    /// An error with the given parts (Python exceptions are converted by `NormPython`
    /// itself; this is for Swift code reporting a Python-side problem the same way).
    public init(typeName: String, message: String, file: String? = nil, line: Int? = nil, traceback: String? = nil) {
        self.typeName = typeName
        self.message = message
        self.file = file
        self.line = line
        self.traceback = traceback
    }

    /// One line: `Type: message`, plus ` (file, line N)` for syntax errors.
    public var description: String {
        var text = message.isEmpty ? typeName : "\(typeName): \(message)"
        if let file {
            text += line.map { " (\(file), line \($0))" } ?? " (\(file))"
        } else if let line {
            text += " (line \(line))"
        }
        return Self.oneLine(text)
    }

    /// Collapses line breaks (multi-line numpy messages) into single spaces.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }

    /// A `TypeError` raised by the Swift side of a conversion.
    static func typeError(_ message: String) -> PythonError {
        PythonError(typeName: "TypeError", message: message)
    }

    /// Takes (and clears) the pending Python exception. Call with the GIL held, right
    /// after a Python API call reported failure. If no exception is pending, returns a
    /// `SystemError` naming `context`.
    static func fetch(context: String = "Python API call") -> PythonError {
        var typePointer: UnsafeMutablePointer<PyObject>? = nil
        var valuePointer: UnsafeMutablePointer<PyObject>? = nil
        var tracebackPointer: UnsafeMutablePointer<PyObject>? = nil
        normlab_py_fetch_exception(&typePointer, &valuePointer, &tracebackPointer)
        let traceback = tracebackPointer.map { PyObjectRef(owning: $0) }
        defer { withExtendedLifetime(traceback) {} }
        guard let typePointer else {
            return PythonError(typeName: "SystemError", message: "\(context) failed without setting a Python exception")
        }
        let type = PyObjectRef(owning: typePointer)
        let value = valuePointer.map { PyObjectRef(owning: $0) }

        var error = PythonError(typeName: qualifiedName(ofType: type), message: "")
        if normlab_py_is_syntax_error(type.pointer) != 0, let value {
            error.message = stringAttribute(value, "msg") ?? safeStr(value)
            error.file = stringAttribute(value, "filename")
            error.line = intAttribute(value, "lineno")
        } else if let value {
            error.message = safeStr(value)
        }
        if let value {
            error.traceback = formattedTraceback(value)
        }
        PyErr_Clear()
        return error
    }

    /// `module.QualName`, or `QualName` for builtins / `__main__`.
    private static func qualifiedName(ofType type: PyObjectRef) -> String {
        let name = stringAttribute(type, "__qualname__")
            ?? String(cString: normlab_py_type_name(type.pointer))
        guard let module = stringAttribute(type, "__module__"), module != "builtins", module != "__main__" else {
            return name
        }
        return "\(module).\(name)"
    }

    /// `str(object)`, or a placeholder when `__str__` itself fails.
    static func safeStr(_ object: PyObjectRef) -> String {
        guard let s = PyObject_Str(object.pointer) else {
            PyErr_Clear()
            return "<unprintable \(String(cString: normlab_py_type_name(object.pointer)))>"
        }
        let str = PyObjectRef(owning: s)
        return utf8String(str) ?? "<unprintable \(String(cString: normlab_py_type_name(object.pointer)))>"
    }

    /// The UTF-8 contents of a `str` object (nil, error cleared, otherwise).
    static func utf8String(_ object: PyObjectRef) -> String? {
        guard normlab_py_unicode_check(object.pointer) != 0 else { return nil }
        var size: Py_ssize_t = 0
        guard let bytes = PyUnicode_AsUTF8AndSize(object.pointer, &size) else {
            PyErr_Clear()
            return nil
        }
        return bytes.withMemoryRebound(to: UInt8.self, capacity: Int(size)) {
            String(decoding: UnsafeBufferPointer(start: $0, count: Int(size)), as: UTF8.self)
        }
    }

    private static func attribute(_ object: PyObjectRef, _ name: String) -> PyObjectRef? {
        guard let a = PyObject_GetAttrString(object.pointer, name) else {
            PyErr_Clear()
            return nil
        }
        return PyObjectRef(owning: a)
    }

    private static func stringAttribute(_ object: PyObjectRef, _ name: String) -> String? {
        guard let a = attribute(object, name), normlab_py_is_none(a.pointer) == 0 else { return nil }
        return utf8String(a) ?? safeStr(a)
    }

    private static func intAttribute(_ object: PyObjectRef, _ name: String) -> Int? {
        guard let a = attribute(object, name), normlab_py_long_check(a.pointer) != 0 else { return nil }
        let v = PyLong_AsLongLong(a.pointer)
        if v == -1, PyErr_Occurred() != nil {
            PyErr_Clear()
            return nil
        }
        return Int(v)
    }

    /// `"".join(traceback.format_exception(value))`, nil when that fails.
    private static func formattedTraceback(_ value: PyObjectRef) -> String? {
        guard let module = PyImport_ImportModule("traceback") else {
            PyErr_Clear()
            return nil
        }
        let traceback = PyObjectRef(owning: module)
        guard let format = attribute(traceback, "format_exception"),
              let lines = PyObject_CallOneArg(format.pointer, value.pointer) else {
            PyErr_Clear()
            return nil
        }
        let list = PyObjectRef(owning: lines)
        guard let emptyPointer = PyUnicode_FromString("") else {
            PyErr_Clear()
            return nil
        }
        let empty = PyObjectRef(owning: emptyPointer)
        guard let joined = PyUnicode_Join(empty.pointer, list.pointer) else {
            PyErr_Clear()
            return nil
        }
        let text = PyObjectRef(owning: joined)
        return utf8String(text)
    }
}
extension PythonError: UserFacingError {}
