import Testing
import NormPython

/// The embedded interpreter starts, is Debian's Python 3.11 and sees Debian's numpy, not
/// the pyenv interpreter on PATH.
@Suite struct InterpreterTests {
    @Test func startsIdempotently() throws {
        try Python.initialize()
        try Python.initialize()
        #expect(Python.isInitialized)
        #expect(!Python.currentThreadHoldsGIL)
        try Python.withGIL { #expect(Python.currentThreadHoldsGIL) }
        let version = try Python.version()
        #expect(version.hasPrefix("3.11."), "embedded Python is \(version)")
    }

    @Test func numpyIsDebians() throws {
        let version = try Numpy.version()
        #expect(version.hasPrefix("1.24."), "numpy \(version)")
        let file = try Numpy.module().attribute("__file__").decode(String.self)
        #expect(file.hasPrefix("/usr/lib/python3/dist-packages/numpy/"), "numpy from \(file)")
    }

    @Test func sysPathIgnoresPyenvAndEnvironment() throws {
        let sys = try Python.import("sys")
        let path = try sys.attribute("path").decode([String].self)
        #expect(!path.contains { $0.contains(".pyenv") }, "sys.path = \(path)")
        #expect(path.contains("/usr/lib/python3/dist-packages"), "sys.path = \(path)")
        #expect(try sys.attribute("prefix").decode(String.self) == "/usr")
        #expect(try sys.attribute("executable").decode(String.self).hasPrefix("/usr/bin/python3"))
        // isolated: no bytecode written into the repository's python/ tree
        #expect(try sys.attribute("dont_write_bytecode").decode(Bool.self))
    }

    @Test func withGILIsReentrant() throws {
        let value = try Python.withGIL {
            try Python.withGIL {
                try Python.evaluate("6 * 7").decode(Int.self)
            }
        }
        #expect(value == 42)
    }

    @Test func runAndEvaluateInANamespace() throws {
        let namespace = try Python.run("""
            def square(v):
                return v * v
            answer = square(12)
            """)
        #expect(try namespace.item("answer").decode(Int.self) == 144)
        let square = try namespace.item("square")
        #expect(try square.call(5).decode(Int.self) == 25)
        #expect(try Python.evaluate("square(3) + answer", in: namespace).decode(Int.self) == 153)
    }

    @Test func loadsAFileAsAModuleAndAddsToSysPath() throws {
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("helper_source.txt")
        try "SCALE = 3\ndef triple(x):\n    return SCALE * x\n".write(to: file, atomically: true, encoding: .utf8)
        let module = try Python.loadModule(named: "normpython_test_helper", fromFile: file.path)
        #expect(try module.callMethod("triple", 7).decode(Int.self) == 21)
        #expect(try Python.import("sys").attribute("modules").contains("normpython_test_helper"))

        let pkg = dir.appendingPathComponent("normpython_pathpkg.py")
        try "VALUE = 'from sys.path'\n".write(to: pkg, atomically: true, encoding: .utf8)
        try Python.addToSysPath(dir.path)
        try Python.addToSysPath(dir.path)
        let path = try Python.import("sys").attribute("path").decode([String].self)
        #expect(path.filter { $0 == dir.path }.count == 1)
        #expect(try Python.import("normpython_pathpkg").attribute("VALUE").decode(String.self) == "from sys.path")
    }
}
