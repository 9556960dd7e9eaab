import Foundation
import NormCore

/// Where normlab's Python files live and how the embedded interpreter reaches them: the
/// `python/` folder (the `normref` reference package and the `normlab_host` bridge module).
public enum PythonSupport {
    /// Environment variable naming the `python/` folder explicitly.
    public static let directoryVariable = "NORMLAB_PYTHON_DIR"

    /// The first folder holding `normlab_host.py`: `$NORMLAB_PYTHON_DIR`, then `python/` next to
    /// the package root the executable was built in (`<root>/.build/<config>/normlab`), then
    /// `./python`.
    public static func locateDirectory() throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment[directoryVariable], !env.isEmpty { candidates.append(env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("python").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/python")
        for c in candidates where FileManager.default.fileExists(atPath: c + "/normlab_host.py") {
            return URL(fileURLWithPath: c).standardizedFileURL.path
        }
        throw PythonError(typeName: "FileNotFoundError",
                          message: "normlab's python/ folder (normlab_host.py, normref) was not found; set \(directoryVariable)")
    }

    /// The `normlab_host` module, imported once (the interpreter starts on first use).
    public static func host() throws -> PyObjectRef {
        try Python.withGIL {
            if let cached = hostModule.value { return cached }
            try Python.addToSysPath(try locateDirectory())
            let module = try Python.import("normlab_host")
            hostModule.value = module
            return module
        }
    }

    private static let hostModule = LockedBox<PyObjectRef?>(nil)
}

/// A value guarded by a lock (used under the GIL, kept simple).
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

extension OptionValue: PythonConvertible {
    public func pythonObject() throws -> PyObjectRef {
        switch self {
        case let .bool(b): return try b.pythonObject()
        case let .integer(i): return try i.pythonObject()
        case let .real(d): return try d.pythonObject()
        case let .text(s): return try s.pythonObject()
        case .none: return try Python.none()
        }
    }
}

extension PythonError {
    /// A plugin-contract error as a ``NormError`` naming the method.
    func asPluginFailure(method: String) -> NormError {
        var reason = description
        if typeName.hasSuffix("PluginError") {
            reason = message
            let prefix = "plugin \(method): "
            if reason.hasPrefix(prefix) { reason.removeFirst(prefix.count) }
        }
        return .pluginFailure(method: method, reason: reason)
    }
}
