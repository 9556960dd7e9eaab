import Foundation
import Testing
import NormCore

// Helpers to drive the real `normlab` binary as a subprocess.

struct CLIRun: CustomStringConvertible {
    let status: Int32
    let reason: Process.TerminationReason
    let stdout: String
    let stderr: String

    /// Ended by `exit` (not a signal) with status 0.
    var succeeded: Bool { reason == .exit && status == 0 }
    /// Lines of stderr (a final newline does not start an extra line).
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stderr.hasSuffix("\n") ? 1 : 0) }

    var description: String {
        "exit \(status) (\(reason == .exit ? "exit" : "signal")); stdout: \(stdout.prefix(400)); stderr: \(stderr.prefix(400))"
    }
}

struct BinaryNotFound: Error, CustomStringConvertible {
    let tried: [String]
    var description: String { "normlab binary not found (set NORMLAB_BIN); tried: \(tried.joined(separator: ", "))" }
}

/// The binary under test: `$NORMLAB_BIN`; else next to the running test executable (SwiftPM
/// puts `normlab` in the same build directory) or one level up; else `.build/debug/normlab`
/// under the package root found from this file's path.
let normlabBinary: Result<URL, BinaryNotFound> = {
    let fm = FileManager.default
    var candidates: [URL] = []
    if let env = ProcessInfo.processInfo.environment["NORMLAB_BIN"], !env.isEmpty {
        candidates.append(URL(fileURLWithPath: env))
    }
    var dirs = [Bundle.main.bundleURL, Bundle.main.executableURL?.deletingLastPathComponent(),
                URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()].compactMap { $0 }
    dirs += dirs.map { $0.deletingLastPathComponent() }
    candidates += dirs.map { $0.appendingPathComponent("normlab") }
    var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while root.path != "/" {
        if fm.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            candidates.append(root.appendingPathComponent(".build/debug/normlab"))
            break
        }
        root.deleteLastPathComponent()
    }
    for url in candidates {
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: url.path) {
            return .success(url.standardizedFileURL)
        }
    }
    return .failure(BinaryNotFound(tried: candidates.map(\.path)))
}()

/// Runs `normlab args...` with no standard input and returns its status and output.
func normlab(_ args: [String]) throws -> CLIRun {
    let process = Process()
    process.executableURL = try normlabBinary.get()
    process.arguments = args
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read stderr on another thread so neither pipe can fill up and block the child.
    let errBox = DataBox()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    process.waitUntilExit()
    return CLIRun(status: process.terminationStatus, reason: process.terminationReason,
                  stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable { var data = Data() }

/// A fresh directory, removed by `cleanUp()`.
struct Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-cli-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `tensor` as `<name>` and returns its path.
    @discardableResult
    func write(_ name: String, _ tensor: Tensor) throws -> String {
        try NPY.write(tensor, to: url.appendingPathComponent(name))
        return path(name)
    }

    /// Writes raw bytes as `<name>` and returns its path.
    @discardableResult
    func write(_ name: String, bytes: Data) throws -> String {
        try bytes.write(to: url.appendingPathComponent(name))
        return path(name)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: url) }
}

/// Every entry of a directory, hidden ones included; `nil` when it does not exist.
func directoryEntries(_ path: String) -> Set<String>? {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return nil }
    return Set(names)
}

/// A `.npy` file with an arbitrary dtype descriptor (format 1.0, C order), for the dtypes
/// `NPY.encode` does not write (float64, integers).
func npyBytes(descr: String, shape: [Int], payload: Data) -> Data {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
    let n = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
    data.append(contentsOf: Array(header.utf8))
    data.append(payload)
    return data
}

/// Little-endian bytes of `values`.
func littleEndianBytes(_ values: [Double]) -> Data {
    var d = Data()
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
    return d
}

func littleEndianBytes(_ values: [Int32]) -> Data {
    var d = Data()
    for v in values { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    return d
}

