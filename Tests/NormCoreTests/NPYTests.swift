import Foundation
import Testing
@testable import NormCore

// MARK: - Helpers

/// A fresh empty directory under the system temporary directory.
private func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("npy-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private struct PythonFailure: Error, CustomStringConvertible {
    var description: String
}

private let pythonPath = "/usr/bin/python3"

/// Runs `/usr/bin/python3 -c script args...` and returns its standard output.
private func runPython(_ script: String, _ arguments: [String] = []) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: pythonPath)
    process.arguments = ["-c", script] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a large output cannot fill the pipe and block the child.
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw PythonFailure(description: "python exited with \(process.terminationStatus): "
                            + String(decoding: errors, as: UTF8.self))
    }
    return String(decoding: output, as: UTF8.self)
}

/// Whether Debian's python3 with numpy is installed (tests that need it are skipped otherwise).
private let numpyAvailable: Bool = {
    guard FileManager.default.isExecutableFile(atPath: pythonPath) else { return false }
    return (try? runPython("import numpy")) != nil
}()

/// What the numpy fixture script records next to each `.npy` file.
private struct FixtureExpectation: Decodable {
    var shape: [Int]
    /// The array cast to float32 by numpy, in C order, as bit patterns.
    var bits: [UInt32]
    var descr: String
    var fortran: Bool
    var version: [Int]
}

private let fixtureScript = #"""
import sys, json, io
import numpy as np
from numpy.lib import format as fmt
out = sys.argv[1]

s32 = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 1e-45, 3.4028234663852886e38, 0.1, 1.0/3.0, 1e-40]
a32 = np.arange(24, dtype=np.float64) * 0.37 - 3.1
a32[:12] = s32
a32 = a32.astype(np.float32)
# float64 values whose rounding to float32 is delicate: the largest that round to a finite float32,
# underflow, ties, subnormals (finite values beyond float32 are refused: NPYSpecialFileTests).
s64 = [0.1, 3.4028235677973362e38, -3.4e38, 1e-50, 2.0**-149, -3.4028235677973362e38, np.nan, np.inf, -0.0,
       1.0/3.0, 16777217.0, 1.0000000596046448]
a64 = np.arange(24, dtype=np.float64) * 0.1234567891234 - 1.5
a64[:12] = s64

cases = {
    'f4_c': (a32.reshape(2, 3, 4), None),
    'f8_c': (a64.reshape(4, 6), None),
    'f4_be': (a32.reshape(6, 4).astype('>f4'), None),
    'f8_be': (a64.astype('>f8'), None),
    'f4_fortran_2d': (np.asfortranarray(a32.reshape(4, 6)), None),
    'f8_fortran_3d': (np.asfortranarray(a64.reshape(2, 3, 4)), None),
    'f4_be_fortran_3d': (np.asfortranarray(a32.reshape(3, 2, 4).astype('>f4')), None),
    'f8_be_fortran_2d': (np.asfortranarray(a64.reshape(6, 4).astype('>f8')), None),
    'f4_fortran_4d': (np.asfortranarray(np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)), None),
    'scalar_f4': (np.array(3.5, dtype=np.float32), None),
    'scalar_f8': (np.array(0.1, dtype=np.float64), None),
    'one_dim': (np.arange(5, dtype=np.float32), None),
    'empty': (np.zeros((0, 3), dtype=np.float32), None),
    'v2_f4': (a32.reshape(2, 12), (2, 0)),
    'v3_f8_fortran': (np.asfortranarray(a64.reshape(4, 6)), (3, 0)),
    'large': (np.random.default_rng(7).standard_normal((1000, 1003)).astype(np.float32), None),
}
for name, (a, version) in cases.items():
    path = out + '/' + name + '.npy'
    if version is None:
        np.save(path, a)
    else:
        with open(path, 'wb') as f:
            fmt.write_array(f, a, version=version)
    with open(path, 'rb') as f:
        v = fmt.read_magic(f)
    c = np.ascontiguousarray(a.astype('<f4')).ravel(order='C')
    exp = {'shape': list(a.shape), 'bits': c.view('<u4').tolist(), 'descr': fmt.dtype_to_descr(a.dtype),
           'fortran': bool(a.flags.f_contiguous and not a.flags.c_contiguous), 'version': list(v)}
    with open(out + '/' + name + '.json', 'w') as f:
        json.dump(exp, f)
print('ok')
"""#

/// Directory of numpy-written fixtures, generated once per test run.
private let numpyFixtures: Result<URL, any Error> = Result {
    let directory = try makeTemporaryDirectory()
    _ = try runPython(fixtureScript, [directory.path])
    return directory
}

private let fixtureNames = [
    "f4_c", "f8_c", "f4_be", "f8_be", "f4_fortran_2d", "f8_fortran_3d", "f4_be_fortran_3d",
    "f8_be_fortran_2d", "f4_fortran_4d", "scalar_f4", "scalar_f8", "one_dim", "empty",
    "v2_f4", "v3_f8_fortran", "large",
]

/// Checks `tensor` element by element against float32 bit patterns (any NaN matches any NaN).
private func expectBits(_ tensor: Tensor, _ bits: [UInt32], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(tensor.count == bits.count, sourceLocation: sourceLocation)
    var mismatches = 0
    tensor.withUnsafeBufferPointer { values in
        for (i, expected) in bits.enumerated() where i < values.count {
            let want = Float(bitPattern: expected)
            let ok = want.isNaN ? values[i].isNaN : values[i].bitPattern == expected
            if !ok {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("element \(i): got \(values[i]) (0x\(String(values[i].bitPattern, radix: 16))), expected \(want) (0x\(String(expected, radix: 16)))",
                                 sourceLocation: sourceLocation)
                }
            }
        }
    }
    #expect(mismatches == 0, sourceLocation: sourceLocation)
}

/// A `.npy` file with the given header text (a `'\n'` is appended) and body.
private func npyFile(header: String, version: (UInt8, UInt8) = (1, 0), body: [UInt8] = []) -> Data {
    let text = Array(header.utf8) + [0x0A]
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version.0, version.1]
    if version.0 == 1 {
        bytes += [UInt8(text.count & 0xFF), UInt8(text.count >> 8)]
    } else {
        bytes += (0..<4).map { UInt8(truncatingIfNeeded: text.count >> (8 * $0)) }
    }
    return Data(bytes + text + body)
}

/// A header dictionary with the given fields (written verbatim).
private func dict(descr: String = "'<f4'", fortran: String = "False", shape: String = "(2, 3)") -> String {
    "{'descr': \(descr), 'fortran_order': \(fortran), 'shape': \(shape), }"
}

/// Little-endian float32 bytes.
private func f4Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
}

/// The error thrown by decoding `data`, or nil if it decoded.
private func decodeError(_ data: Data) -> NPYError? {
    do {
        _ = try NPY.decode(data)
        return nil
    } catch {
        return error
    }
}

private func sample(_ shape: [Int]) -> Tensor {
    Tensor(shape: shape) { buffer in
        for i in buffer.indices { buffer[i] = Float(i) * 0.25 - 1.5 }
    }
}

// MARK: - Round trip and format

@Suite("NPY round trip")
struct NPYRoundTripTests {
    @Test("encode then decode gives back the same tensor", arguments: [
        [Int](), [1], [5], [2, 3], [2, 3, 4], [2, 3, 4, 5], [0], [0, 3], [3, 0, 2], [1, 1, 1, 1, 1],
    ])
    func roundTrip(shape: [Int]) throws {
        let tensor = sample(shape)
        let data = NPY.encode(tensor)
        let (decoded, header) = try NPY.decodeWithInfo(data)
        #expect(decoded.shape == shape)
        #expect(decoded.isBitIdentical(to: tensor))
        #expect(header.descr == "<f4")
        #expect(header.scalarType == .float32)
        #expect(!header.isBigEndian)
        #expect(!header.isFortranOrder)
        #expect(header.majorVersion == 1 && header.minorVersion == 0)
        #expect(header.dataOffset % 64 == 0)
        #expect(data.count == header.dataOffset + 4 * tensor.count)
    }

    @Test("special values survive bit for bit")
    func specialValues() throws {
        let values: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                               .leastNormalMagnitude, -.leastNonzeroMagnitude, 0.1, Float(bitPattern: 0x7FC0_1234)]
        let tensor = Tensor(shape: [values.count], scalars: values)
        let decoded = try NPY.decode(NPY.encode(tensor))
        #expect(decoded.scalars.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test("preamble matches numpy's layout")
    func preambleLayout() throws {
        let data = NPY.encode(sample([2, 3]))
        let preamble = Array(data.prefix(128))
        let header = String(decoding: preamble[10...], as: UTF8.self)
        #expect(Array(preamble[0..<8]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        #expect(Int(preamble[8]) | Int(preamble[9]) << 8 == 118)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        #expect(header.hasSuffix(" \n"))
        #expect(NPY.shapeRepr([]) == "()")
        #expect(NPY.shapeRepr([5]) == "(5,)")
        #expect(NPY.shapeRepr([2, 3]) == "(2, 3)")
        for rank in 0...8 {
            for first in [0, 1, 9, 10, 99_999, 123_456_789_012] {
                let shape = rank == 0 ? [] : [first] + [Int](repeating: 7, count: rank - 1)
                let preamble = NPY.makePreamble(shape: shape)
                #expect(preamble.count % 64 == 0)
                #expect(preamble.last == 0x0A)
            }
        }
    }

    @Test("decode works on a Data slice that does not start at index 0")
    func dataSlice() throws {
        let tensor = sample([3, 4])
        let padded = Data([1, 2, 3]) + NPY.encode(tensor)
        let slice = padded[3...]
        #expect(slice.startIndex == 3)
        #expect(try NPY.decode(slice).isBitIdentical(to: tensor))
    }

    @Test("write then read a file; the write replaces atomically and leaves no temporary file")
    func writeAndRead() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("x.npy")
        try NPY.write(sample([2, 5]), to: url)
        try NPY.write(sample([4, 3, 2]), to: url)  // replaces the first file
        let (read, header) = try NPY.readWithInfo(contentsOf: url)
        #expect(read.isBitIdentical(to: sample([4, 3, 2])))
        #expect(header.shape == [4, 3, 2])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["x.npy"])
        #expect(try NPY.read(contentsOf: url) == sample([4, 3, 2]))
        // A name near NAME_MAX still leaves room for the temporary file's suffix.
        let long = directory.appendingPathComponent(String(repeating: "n", count: 240) + ".npy")
        try NPY.write(sample([3]), to: long)
        #expect(try NPY.read(contentsOf: long) == sample([3]))
    }

    @Test("a large float32 file takes the copy path and reads back exactly")
    func largeFile() throws {
        let tensor = Tensor(shape: [256, 64, 256]) { buffer in
            var state: UInt32 = 12345
            for i in buffer.indices {
                state = state &* 1_664_525 &+ 1_013_904_223
                buffer[i] = Float(bitPattern: (state >> 9) | 0x3F80_0000) - 1.5
            }
        }
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("big.npy")
        try NPY.write(tensor, to: url)
        #expect(try NPY.read(contentsOf: url).isBitIdentical(to: tensor))
    }
}

// MARK: - Interoperability with numpy

@Suite("NPY and numpy", .enabled(if: numpyAvailable, "needs /usr/bin/python3 with numpy"))
struct NPYNumpyTests {
    @Test("reads files written by numpy exactly", arguments: fixtureNames)
    func readsNumpyFile(name: String) throws {
        let directory = try numpyFixtures.get()
        let expected = try JSONDecoder().decode(
            FixtureExpectation.self, from: Data(contentsOf: directory.appendingPathComponent("\(name).json")))
        let (tensor, header) = try NPY.readWithInfo(contentsOf: directory.appendingPathComponent("\(name).npy"))
        #expect(tensor.shape == expected.shape)
        #expect(header.shape == expected.shape)
        #expect(header.descr == expected.descr)
        #expect(header.isFortranOrder == expected.fortran)
        #expect([header.majorVersion, header.minorVersion] == expected.version)
        #expect(header.isBigEndian == expected.descr.hasPrefix(">"))
        #expect(header.scalarType == (expected.descr.hasSuffix("f8") ? .float64 : .float32))
        expectBits(tensor, expected.bits)
    }

    @Test("the fixtures cover every layout the brief lists")
    func fixtureCoverage() throws {
        let directory = try numpyFixtures.get()
        func expectation(_ name: String) throws -> FixtureExpectation {
            try JSONDecoder().decode(FixtureExpectation.self,
                                     from: Data(contentsOf: directory.appendingPathComponent("\(name).json")))
        }
        #expect(try expectation("f4_be").descr == ">f4")
        #expect(try expectation("f8_be").descr == ">f8")
        #expect(try expectation("f4_fortran_2d").fortran)
        #expect(try expectation("f8_fortran_3d").fortran)
        #expect(try expectation("scalar_f4").shape == [])
        #expect(try expectation("v2_f4").version == [2, 0])
        #expect(try expectation("v3_f8_fortran").version == [3, 0])
    }

    @Test("numpy reads what we write, and our bytes equal numpy.save's")
    func numpyReadsOurFiles() throws {
        let shapes: [[Int]] = [
            [], [1], [5], [2, 3], [2, 3, 4], [2, 3, 4, 5], [0], [0, 3], [3, 0, 2], [1, 1, 1, 1, 1, 1],
            [1000, 2], [17, 1, 19], [123_456_789_012, 0], [7, 0, 99_999_999_999], [3, 5, 7, 2, 1, 4],
            [100], [10_000], [12_345, 1], [2, 2, 2, 2, 2, 2, 2, 2], [64], [31, 33],
        ]
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var tensors: [Tensor] = shapes.map { sample($0) }
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
                                 .greatestFiniteMagnitude, 0.1, -Float.leastNormalMagnitude / 3]
        tensors.append(Tensor(shape: [3, 3], scalars: specials))
        var paths: [String] = []
        for (i, tensor) in tensors.enumerated() {
            let url = directory.appendingPathComponent("t\(i).npy")
            try NPY.write(tensor, to: url)
            paths.append(url.path)
        }
        let script = #"""
import sys, json, io
import numpy as np
result = []
for p in sys.argv[1:]:
    a = np.load(p)
    raw = open(p, 'rb').read()
    b = io.BytesIO()
    np.save(b, a)
    result.append({'shape': list(a.shape), 'dtype': a.dtype.str, 'c': bool(a.flags.c_contiguous),
                   'bits': a.ravel().view('<u4').tolist(), 'same': b.getvalue() == raw})
print(json.dumps(result))
"""#
        struct Loaded: Decodable { var shape: [Int]; var dtype: String; var c: Bool; var bits: [UInt32]; var same: Bool }
        let output = try runPython(script, paths)
        let loaded = try JSONDecoder().decode([Loaded].self, from: Data(output.utf8))
        try #require(loaded.count == tensors.count)
        for (tensor, numpy) in zip(tensors, loaded) {
            #expect(numpy.shape == tensor.shape)
            #expect(numpy.dtype == "<f4")
            #expect(numpy.c)
            #expect(numpy.same, "bytes differ from numpy.save for shape \(tensor.shape)")
            expectBits(tensor, numpy.bits)
        }
    }
}

// MARK: - Header parsing leniency

@Suite("NPY header parsing")
struct NPYHeaderParsingTests {
    static let values: [Float] = [1, 2, 3, 4, 5, 6]

    @Test("accepts every spelling Python would", arguments: [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "  {  'descr' :'<f4' ,\n\t'fortran_order':False,'shape':( 2 ,3 , ) , }   \n  ",
        "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{u'descr': u'<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        "{'descr': '<f4', 'fortran_order': (False), 'shape': (2, +3), }",
    ])
    func lenientHeaders(header: String) throws {
        let tensor = try NPY.decode(npyFile(header: header, body: f4Bytes(Self.values)))
        #expect(tensor.shape == [2, 3])
        #expect(tensor.scalars == Self.values)
    }

    @Test("scalar and one-dimensional shapes")
    func scalarAndVector() throws {
        let scalar = try NPY.decode(npyFile(header: dict(shape: "()"), body: f4Bytes([42])))
        #expect(scalar.shape == [] && scalar.scalars == [42])
        let vector = try NPY.decode(npyFile(header: dict(shape: "(5,)"), body: f4Bytes([1, 2, 3, 4, 5])))
        #expect(vector.shape == [5] && vector.scalars == [1, 2, 3, 4, 5])
    }

    @Test("format 2.0 and 3.0 headers; 3.0 is UTF-8")
    func laterVersions() throws {
        let v2 = try NPY.decodeWithInfo(npyFile(header: dict(), version: (2, 0), body: f4Bytes(Self.values)))
        #expect(v2.header.majorVersion == 2 && v2.tensor.scalars == Self.values)
        let v3 = try NPY.decodeWithInfo(npyFile(header: dict(), version: (3, 0), body: f4Bytes(Self.values)))
        #expect(v3.header.majorVersion == 3 && v3.tensor.scalars == Self.values)
        // A 3.0 header must be valid UTF-8.
        var bad = Array(npyFile(header: dict(), version: (3, 0), body: f4Bytes(Self.values)))
        bad[14] = 0xFF
        #expect(decodeError(Data(bad)) == .invalidHeaderEncoding)
    }

    @Test("Fortran order with a hand-made big-endian float64 body")
    func fortranBigEndian() throws {
        // Column-major (2, 3): memory order is a00 a10 a01 a11 a02 a12.
        let memory: [Double] = [0, 3, 1, 4, 2, 5]
        let body = memory.flatMap { v in (0..<8).reversed().map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
        let tensor = try NPY.decode(npyFile(header: dict(descr: "'>f8'", fortran: "True"), body: body))
        #expect(tensor.shape == [2, 3])
        #expect(tensor.scalars == [0, 1, 2, 3, 4, 5])
    }

    @Test("decodeHeader reads only the preamble")
    func headerOnly() throws {
        let header = try NPY.decodeHeader(npyFile(header: dict(descr: "'>f8'", shape: "(4, 5)")))
        #expect(header.shape == [4, 5] && header.count == 20 && header.scalarType == .float64 && header.isBigEndian)
        #expect(header.dataByteCount == 160)
    }
}

// MARK: - Errors

@Suite("NPY errors")
struct NPYErrorTests {
    @Test("empty input and missing files")
    func emptyAndMissing() throws {
        #expect(decodeError(Data()) == .emptyFile)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("nope.npy")
        #expect(throws: NPYError.fileNotFound(path: missing.path)) { try NPY.read(contentsOf: missing) }
        #expect(NPYError.fileNotFound(path: missing.path).description == "file not found: \(missing.path)")
        let empty = directory.appendingPathComponent("empty.npy")
        #expect(FileManager.default.createFile(atPath: empty.path, contents: Data()))
        #expect(throws: NPYError.emptyFile) { try NPY.read(contentsOf: empty) }
        #expect(throws: NPYError.unreadable(path: directory.path, reason: "is a directory, not a file")) {
            try NPY.read(contentsOf: directory)
        }
    }

    @Test("write into a missing directory fails with a typed error")
    func unwritable() throws {
        let url = URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)/x.npy")
        do {
            try NPY.write(sample([2]), to: url)
            Issue.record("write should fail")
        } catch {
            guard case let .unwritable(path, reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path == url.path)
            #expect(!reason.isEmpty)
        }
    }

    @Test("bad magic")
    func badMagic() {
        #expect(decodeError(Data("hello, this is not numpy".utf8)) == .badMagic)
        #expect(decodeError(Data([0x93] + Array("NUMPX".utf8) + [1, 0, 0, 0])) == .badMagic)
        #expect(decodeError(Data([0x93, 0x4E, 0x58])) == .badMagic)
        #expect(NPYError.badMagic.description.hasPrefix("not a .npy file (bad magic string"))
    }

    @Test("unsupported versions")
    func versions() {
        for (major, minor) in [(4, 0), (0, 0), (1, 1), (255, 255)] {
            #expect(decodeError(npyFile(header: dict(), version: (UInt8(major), UInt8(minor))))
                    == .unsupportedVersion(major: major, minor: minor))
        }
        #expect(NPYError.unsupportedVersion(major: 4, minor: 0).description
                == "unsupported .npy format version 4.0; expected 1.0, 2.0 or 3.0")
    }

    @Test("truncated preamble")
    func truncatedHeader() {
        #expect(decodeError(Data([0x93, 0x4E, 0x55, 0x4D])) == .truncatedHeader(expectedBytes: 10, actualBytes: 4))
        #expect(decodeError(Data([0x93] + Array("NUMPY".utf8) + [1, 0, 0x76])) == .truncatedHeader(expectedBytes: 10, actualBytes: 9))
        #expect(decodeError(Data([0x93] + Array("NUMPY".utf8) + [2, 0, 0x76, 0])) == .truncatedHeader(expectedBytes: 12, actualBytes: 10))
        let full = NPY.encode(sample([2, 3]))
        #expect(decodeError(full.prefix(60)) == .truncatedHeader(expectedBytes: 128, actualBytes: 60))
        // A header length that runs past the end of a short v2 file.
        let huge = Data([0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0xFF] + Array("{}".utf8))
        #expect(decodeError(huge) == .truncatedHeader(expectedBytes: 12 + 0xFFFF_FFFF, actualBytes: 14))
    }

    @Test("truncated data and trailing bytes")
    func bodyLength() {
        let truncated = npyFile(header: dict(shape: "(2, 3, 4)"), body: [UInt8](repeating: 0, count: 40))
        let error = decodeError(truncated)
        #expect(error == .truncatedData(expectedValues: 24, expectedBytes: 96, actualBytes: 40))
        #expect(error?.description == "truncated data: header promises 24 values (96 bytes), file has 40 bytes after the header")
        // float64: 6 values are 48 bytes.
        #expect(decodeError(npyFile(header: dict(descr: "'<f8'"), body: [UInt8](repeating: 0, count: 24)))
                == .truncatedData(expectedValues: 6, expectedBytes: 48, actualBytes: 24))
        #expect(decodeError(npyFile(header: dict(shape: "(2,)"), body: [UInt8](repeating: 0, count: 12)))
                == .trailingBytes(expectedBytes: 8, actualBytes: 12))
        #expect(decodeError(NPY.encode(sample([3])) + Data([0])) == .trailingBytes(expectedBytes: 12, actualBytes: 13))
        // A huge (but representable) shape is checked against the file size before allocating.
        #expect(decodeError(npyFile(header: dict(shape: "(1099511627776,)"), body: f4Bytes([1])))
                == .truncatedData(expectedValues: 1 << 40, expectedBytes: 1 << 42, actualBytes: 4))
    }

    @Test("malformed dictionary literals", arguments: [
        "",
        "   ",
        "not a dict",
        "[1, 2]",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)",
        "{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4', 'fortran_order': Fals, 'shape': (2, 3)}",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),, }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} extra",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3e)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-,)}",
        "{1: '<f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': " + String(repeating: "(", count: 10_000) + "}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}\0",
    ])
    func malformed(header: String) {
        let error = decodeError(npyFile(header: header, body: f4Bytes([1, 2, 3, 4, 5, 6])))
        guard case .malformedHeader = error else {
            Issue.record("expected malformedHeader for \(header.prefix(80)), got \(String(describing: error))")
            return
        }
    }

    @Test("missing and unknown keys")
    func keys() {
        #expect(decodeError(npyFile(header: "{'descr': '<f4', 'fortran_order': False}")) == .missingKey("shape"))
        #expect(decodeError(npyFile(header: "{'shape': (2,), 'fortran_order': False}")) == .missingKey("descr"))
        #expect(decodeError(npyFile(header: "{'descr': '<f4', 'shape': (2,)}")) == .missingKey("fortran_order"))
        #expect(decodeError(npyFile(header: "{}")) == .missingKey("descr"))
        #expect(decodeError(npyFile(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'foo': 1}"))
                == .unknownKey("foo"))
    }

    @Test("unsupported dtypes name the dtype", arguments: [
        ("'<i8'", "<i8", "integer"),
        ("'|i1'", "|i1", "integer"),
        ("'<u2'", "<u2", "unsigned integer"),
        ("'|b1'", "|b1", "bool"),
        ("'<f2'", "<f2", "float16"),
        ("'<f16'", "<f16", "float128"),
        ("'<c8'", "<c8", "complex"),
        ("'|O'", "|O", "Python object"),
        ("'<U3'", "<U3", "unicode string"),
        ("'|S4'", "|S4", "byte string"),
        ("'|V8'", "|V8", "raw bytes/void"),
        ("'<M8[ns]'", "<M8[ns]", "datetime"),
        ("'float32'", "float32", "unrecognized"),
        ("''", "", "unrecognized"),
        ("[('a', '<f4'), ('b', '<f4')]", "[('a', '<f4'), ('b', '<f4')]", "structured"),
    ])
    func dtypes(literal: String, descr: String, kind: String) {
        #expect(decodeError(npyFile(header: dict(descr: literal))) == .unsupportedDType(descr: descr, kind: kind))
    }

    @Test("dtype error message")
    func dtypeMessage() {
        #expect(decodeError(npyFile(header: dict(descr: "'<i8'")))?.description
                == "unsupported dtype '<i8' (integer); expected float32 ('<f4') or float64 ('<f8')")
    }

    @Test("values of the wrong kind")
    func wrongKinds() {
        #expect(decodeError(npyFile(header: dict(fortran: "1"))) == .invalidValue(key: "fortran_order", reason: "must be True or False, got 1"))
        #expect(decodeError(npyFile(header: dict(descr: "4"))) == .invalidValue(key: "descr", reason: "must be a dtype string such as '<f4', got 4"))
        for shape in ["[2, 3]", "6", "(6)", "None", "'(2, 3)'"] {
            guard case .invalidValue(key: "shape", _) = decodeError(npyFile(header: dict(shape: shape))) else {
                Issue.record("shape \(shape) should be rejected as invalidValue"); continue
            }
        }
    }

    @Test("negative and non-integer extents")
    func badExtents() {
        #expect(decodeError(npyFile(header: dict(shape: "(2, -3)"))) == .invalidShape(reason: "extent -3 in (2, -3) is negative"))
        #expect(decodeError(npyFile(header: dict(shape: "(-1,)"))) == .invalidShape(reason: "extent -1 in (-1,) is negative"))
        for shape in ["(2.0, 3)", "(2, 3.5)", "('2',)", "(True,)", "(None,)", "((2,), 3)", "(1e3,)"] {
            guard case .invalidShape = decodeError(npyFile(header: dict(shape: shape))) else {
                Issue.record("shape \(shape) should be rejected as invalidShape"); continue
            }
        }
        #expect(decodeError(npyFile(header: dict(shape: "(-99999999999999999999999,)")))
                == .invalidShape(reason: "extent -99999999999999999999999 in (-99999999999999999999999,) is negative"))
    }

    @Test("shapes whose size overflows", arguments: [
        "(4294967296, 4294967296)",
        "(99999999999999999999999,)",
        "(4611686018427387904, 4611686018427387904, 0)",
        "(0, 9223372036854775807, 2)",
        "(2305843009213693952,)",  // 2^61 float32 values: 2^63 bytes
    ])
    func overflow(shape: String) {
        let error = decodeError(npyFile(header: dict(shape: shape)))
        guard case .shapeTooLarge = error else {
            Issue.record("expected shapeTooLarge for \(shape), got \(String(describing: error))"); return
        }
    }

    @Test("reading a file gives the same result as decoding its bytes")
    func fileReaderMatchesDecoder() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let longHeader = dict(shape: "(2, 3)") + String(repeating: " ", count: 10_000)
        let inputs: [Data] = [
            NPY.encode(sample([2, 3])),
            NPY.encode(sample([])),
            NPY.encode(sample([0, 4])),
            npyFile(header: dict(descr: "'>f8'", fortran: "True"), body: [UInt8](repeating: 0x40, count: 48)),
            npyFile(header: dict(fortran: "True"), body: f4Bytes([1, 2, 3, 4, 5, 6])),
            npyFile(header: longHeader, version: (2, 0), body: f4Bytes([1, 2, 3, 4, 5, 6])),  // preamble > 4096 bytes
            npyFile(header: longHeader, version: (2, 0), body: f4Bytes([1, 2, 3])),
            npyFile(header: longHeader, version: (2, 0)).prefix(5000),
            Data(), Data([0x93]), Data("NUMPY".utf8), NPY.encode(sample([2, 3])).prefix(100),
            NPY.encode(sample([2, 3])).prefix(130), NPY.encode(sample([2, 3])) + Data([1, 2]),
            npyFile(header: dict(descr: "'<i4'")), npyFile(header: "{]"),
        ]
        for (i, input) in inputs.enumerated() {
            let url = directory.appendingPathComponent("in\(i).npy")
            try input.write(to: url)
            let fromBytes = Result { () throws(NPYError) in try NPY.decodeWithInfo(input) }
            let fromFile = Result { () throws(NPYError) in try NPY.readWithInfo(contentsOf: url) }
            switch (fromBytes, fromFile) {
            case let (.success(a), .success(b)):
                #expect(a.tensor.isBitIdentical(to: b.tensor), "input \(i)")
                #expect(a.header == b.header, "input \(i)")
            case let (.failure(a), .failure(b)):
                #expect(a == b, "input \(i)")
            default:
                Issue.record("input \(i): decode gave \(fromBytes), read gave \(fromFile)")
            }
        }
    }

    @Test("reading from a pipe (no file size) works")
    func readFromPipe() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("source.npy")
        let fifo = directory.appendingPathComponent("fifo.npy")
        let tensor = sample([3, 70_000])
        try NPY.write(tensor, to: source)
        try #require(mkfifo(fifo.path, 0o600) == 0)
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "cat \"$0\" > \"$1\"", source.path, fifo.path]
        try writer.run()
        let read = try NPY.read(contentsOf: fifo)
        writer.waitUntilExit()
        #expect(read.isBitIdentical(to: tensor))
    }

    @Test("every error description is a single non-empty line")
    func oneLineDescriptions() {
        var errors: [NPYError] = [
            .fileNotFound(path: "/x"), .unreadable(path: "/x", reason: "r"), .unwritable(path: "/x", reason: "r"),
            .emptyFile, .badMagic, .unsupportedVersion(major: 9, minor: 1),
            .truncatedHeader(expectedBytes: 128, actualBytes: 3), .invalidHeaderEncoding,
            .missingKey("shape"), .unknownKey("x"), .shapeTooLarge(shape: "(1,)"),
            .truncatedData(expectedValues: 1, expectedBytes: 4, actualBytes: 0), .trailingBytes(expectedBytes: 0, actualBytes: 1),
        ]
        for header in ["{'descr': '<f4',\n 'fortran_order': \n False, 'shape': (2\n 3)}",
                       "{'descr': '<f4',\n\n\n 'fortran_order': False, 'shape': (2,), '\\n\\nfoo\\n': 1}",
                       "{'descr': '\\n<i8\\n', 'fortran_order': False, 'shape': (2,)}",
                       "{'descr': ['\\n'], 'fortran_order': False, 'shape': (2,)}",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': ('\\n',)}",
                       "{'descr': '<f4', 'fortran_order': '\\n', 'shape': (1,)}",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n\n\u{01}"] {
            if let error = decodeError(npyFile(header: header)) { errors.append(error) } else { Issue.record("\(header) decoded") }
        }
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"), "\(error.description)")
            #expect(!error.description.contains("\r"))
        }
    }
}

// MARK: - Robustness

@Suite("NPY robustness")
struct NPYRobustnessTests {
    /// Valid inputs of several kinds to mutate.
    static func seeds() -> [Data] {
        [
            NPY.encode(sample([2, 3])),
            NPY.encode(Tensor(shape: [], scalars: [1])),
            npyFile(header: dict(descr: "'>f8'", fortran: "True", shape: "(2, 2, 2)"), version: (2, 0),
                    body: [UInt8](repeating: 0x3F, count: 64)),
        ]
    }

    @Test("every truncation of a valid file throws instead of crashing")
    func truncations() {
        for seed in Self.seeds() {
            for length in 0..<seed.count {
                #expect(decodeError(seed.prefix(length)) != nil, "prefix of \(length) bytes decoded")
            }
            #expect(decodeError(seed) == nil)
        }
    }

    @Test("every single-byte change in the preamble is handled")
    func singleByteMutations() {
        for seed in Self.seeds() {
            let bytes = Array(seed)
            let preamble = (try? NPY.decodeHeader(seed).dataOffset) ?? 0
            for position in 0..<preamble {
                for value in 0...255 where UInt8(value) != bytes[position] {
                    var mutated = bytes
                    mutated[position] = UInt8(value)
                    // Must return or throw; a decoded tensor must be consistent with its header.
                    if let (tensor, header) = try? NPY.decodeWithInfo(Data(mutated)) {
                        #expect(tensor.shape == header.shape)
                        #expect(tensor.count == header.count)
                    }
                }
            }
        }
    }

    @Test("random garbage headers are handled")
    func randomHeaders() {
        let alphabet = Array("{}()[],:'\" \n\t0123456789-+.eLTrueFalseNonedescrshapefortran_order<>=|f48ui\\".utf8)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for _ in 0..<3000 {
            let length = next() % 80
            let header = String(decoding: (0..<length).map { _ in alphabet[next() % alphabet.count] }, as: UTF8.self)
            _ = decodeError(npyFile(header: header, body: f4Bytes([1, 2])))
            // Also splice random junk into a valid header.
            var valid = Array(dict(shape: "(2,)").utf8)
            valid[next() % valid.count] = alphabet[next() % alphabet.count]
            _ = decodeError(npyFile(header: String(decoding: valid, as: UTF8.self), body: f4Bytes([1, 2])))
        }
    }
}
