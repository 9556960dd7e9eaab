import Foundation
import Testing
import NormPython

/// Python exceptions become `PythonError`s carrying the type and a one-line message.
@Suite struct ErrorTests {
    private func error(_ body: () throws -> Void) -> PythonError? {
        do {
            try body()
            return nil
        } catch let error as PythonError {
            return error
        } catch {
            Issue.record("unexpected error type \(error)")
            return nil
        }
    }

    @Test func raisedExceptionCarriesTypeAndMessage() throws {
        let namespace = try Python.run("""
            def check(c, g):
                if c % g:
                    raise ValueError("num_groups must divide C")
                return c // g
            """, filename: "checks.py")
        #expect(try namespace.item("check").call(8, 4).decode(Int.self) == 2)
        let e = error { _ = try namespace.item("check").call(6, 4) }
        #expect(e?.typeName == "ValueError")
        #expect(e?.message == "num_groups must divide C")
        #expect(e?.description == "ValueError: num_groups must divide C")
        #expect(e?.file == nil)
        #expect(e?.traceback?.contains("checks.py") == true)
        #expect(e?.traceback?.contains("in check") == true)
    }

    @Test func commonFailuresAreErrors() throws {
        #expect(error { _ = try Python.import("no_such_module_normlab") }?.typeName == "ModuleNotFoundError")
        #expect(error { _ = try Python.builtins().attribute("no_such_attribute") }?.typeName == "AttributeError")
        #expect(error { _ = try PyObjectRef.dict(["a": 1]).item("b") }?.description == "KeyError: 'b'")
        #expect(error { _ = try Python.evaluate("1 / 0") }?.description == "ZeroDivisionError: division by zero")
        #expect(error { _ = try 3.pythonObject().call() }?.description == "TypeError: 'int' object is not callable")
        #expect(error { _ = try Python.builtins().callMethod("len", 1, kwargs: ["x": 1, "x": 2]) }?.description
                == "TypeError: keyword argument 'x' repeated")
    }

    @Test func nonBuiltinExceptionsAreQualified() throws {
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("custom_errors.py")
        try """
            class BadShape(Exception):
                pass
            def fail():
                raise BadShape("expected (N, C, *) got (3,)\\nsecond line")
            """.write(to: file, atomically: true, encoding: .utf8)
        let module = try Python.loadModule(named: "normpython_custom_errors", fromFile: file.path)
        let e = error { _ = try module.callMethod("fail") }
        #expect(e?.typeName == "normpython_custom_errors.BadShape")
        #expect(e?.description == "normpython_custom_errors.BadShape: expected (N, C, *) got (3,) second line")
        let np = error { _ = try Numpy.module().callMethod("zeros", 3).callMethod("sum", kwargs: ["axis": 2]) }
        #expect(np?.typeName == "numpy.AxisError")
    }

    @Test func syntaxErrorInLoadedFileNamesFileAndLine() throws {
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("broken_plugin.py")
        try "import numpy as np\n\ndef forward(x):\n    return x +\n".write(to: file, atomically: true, encoding: .utf8)
        let e = error { _ = try Python.loadModule(named: "normpython_broken", fromFile: file.path) }
        #expect(e?.typeName == "SyntaxError")
        #expect(e?.file == file.path)
        #expect(e?.line == 4)
        #expect(e?.description == "SyntaxError: invalid syntax (\(file.path), line 4)")
        #expect(e.map { !$0.description.contains("\n") } == true)
        // no half-initialized module is left behind
        #expect(try !Python.import("sys").attribute("modules").contains("normpython_broken"))

        let indented = dir.appendingPathComponent("indent.py")
        try "def f():\nreturn 1\n".write(to: indented, atomically: true, encoding: .utf8)
        let i = error { _ = try Python.loadModule(named: "normpython_indent", fromFile: indented.path) }
        #expect(i?.typeName == "IndentationError")
        #expect(i?.line == 2)
        #expect(i?.file == indented.path)

        let code = error { _ = try Python.run("x = (1,\n", filename: "inline.py") }
        #expect(code?.typeName == "SyntaxError")
        #expect(code?.file == "inline.py")
        #expect(code?.line == 1)
    }

    @Test func exceptionWhileLoadingLeavesNoModule() throws {
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("raises.py")
        try "raise RuntimeError('plugin refused to load')\n".write(to: file, atomically: true, encoding: .utf8)
        let e = error { _ = try Python.loadModule(named: "normpython_raises", fromFile: file.path) }
        #expect(e?.description == "RuntimeError: plugin refused to load")
        #expect(try !Python.import("sys").attribute("modules").contains("normpython_raises"))
        let missing = error { _ = try Python.loadModule(named: "normpython_missing", fromFile: dir.appendingPathComponent("nope.py").path) }
        #expect(missing?.typeName == "FileNotFoundError")
    }
}
