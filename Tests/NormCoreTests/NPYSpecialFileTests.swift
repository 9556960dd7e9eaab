import Foundation
import Testing
@testable import NormCore

/// Inputs that are not regular files: devices are refused before a byte is read, pipes are
/// read only as far as their header declares (issue 17, item 1).
@Suite("NPY special files")
struct NPYSpecialFileTests {
    /// A fresh directory holding a FIFO named `fifo.npy`.
    private func makeFIFO() throws -> (directory: URL, fifo: URL) {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("npy-special-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let fifo = directory.appendingPathComponent("fifo.npy")
        try #require(mkfifo(fifo.path, 0o600) == 0)
        return (directory, fifo)
    }

    /// Starts `sh -c script` with `$1` = the FIFO; the caller must read the FIFO.
    private func feed(_ fifo: URL, _ script: String, _ extra: [String] = []) throws -> Process {
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", script, "sh", fifo.path] + extra
        writer.standardError = FileHandle.nullDevice
        try writer.run()
        return writer
    }

    private func readError(_ url: URL) -> NPYError? {
        do { _ = try NPY.read(contentsOf: url); return nil } catch { return error }
    }

    @Test("a character device such as /dev/zero is refused at once")
    func characterDevice() {
        for path in ["/dev/zero", "/dev/urandom", "/dev/null"] {
            let error = readError(URL(fileURLWithPath: path))
            #expect(error == .unreadable(path: path, reason: "is a character device, not a regular file or a pipe"), "\(path)")
        }
    }

    @Test("a pipe of zeros is refused after its first bytes")
    func pipeOfZeros() throws {
        let (directory, fifo) = try makeFIFO()
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try feed(fifo, "cat /dev/zero > \"$1\"")
        #expect(readError(fifo) == .badMagic)
        writer.terminate()
        writer.waitUntilExit()
    }

    @Test("a pipe that goes on after the declared data is refused without reading it all")
    func pipeWithEndlessTail() throws {
        let (directory, fifo) = try makeFIFO()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("source.npy")
        try NPY.write(Tensor(shape: [2, 3], scalars: Array(repeating: 1, count: 6)), to: source)
        let writer = try feed(fifo, "cat \"$2\" /dev/zero > \"$1\"", [source.path])
        #expect(readError(fifo) == .trailingStreamData(expectedBytes: 24))
        writer.terminate()
        writer.waitUntilExit()
    }

    @Test("a pipe whose header declares more than memory can hold is refused before its data")
    func pipeDeclaringTooMuch() throws {
        let (directory, fifo) = try makeFIFO()
        defer { try? FileManager.default.removeItem(at: directory) }
        let header = directory.appendingPathComponent("header.bin")
        let count = NPY.streamByteLimit / 4 + 1
        try Data(NPY.makePreamble(shape: [count])).write(to: header)
        let writer = try feed(fifo, "cat \"$2\" /dev/zero > \"$1\"", [header.path])
        let error = readError(fifo)
        guard case let .unreadable(_, reason)? = error else {
            Issue.record("expected a refusal, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("more than a pipe may hold"))
        writer.terminate()
        writer.waitUntilExit()
    }

    @Test("the description of the pipe error is one line")
    func oneLine() {
        let text = NPYError.trailingStreamData(expectedBytes: 8).description
        #expect(!text.contains("\n") && text.contains("8 bytes"))
    }

    @Test("a finite float64 value beyond float32's range is refused, infinities pass", arguments: [
        (1e39, true), (-3.4028235677973366e38, true), (3.4028235677973362e38, false), (Double.infinity, false),
    ])
    func float64BeyondFloat32(value: Double, refused: Bool) {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }".padding(toLength: 117, withPad: " ", startingAt: 0) + "\n"
        var bytes: [UInt8] = NPY.magic + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
        for v in [1.5, value] { bytes += (0..<8).map { UInt8(truncatingIfNeeded: v.bitPattern.littleEndian >> (8 * $0)) } }
        do {
            let tensor = try NPY.decode(Data(bytes))
            #expect(!refused, "decoded \(value)")
            #expect(tensor.withUnsafeBufferPointer { $0[1] } == Float(value))
        } catch {
            #expect(refused && error == .valueBeyondFloat32(value: value), "\(error)")
        }
    }
}
