import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The parsed preamble of a `.npy` file: format version, element type, layout and shape.
public struct NPYHeader: Equatable, Sendable {
    /// The element types normlab can read.
    public enum ScalarType: String, Equatable, Sendable {
        /// IEEE 754 binary32 (`f4`), read without conversion.
        case float32
        /// IEEE 754 binary64 (`f8`), rounded to float32 on reading.
        case float64

        /// Bytes per element in the file.
        public var byteCount: Int { self == .float32 ? 4 : 8 }
    }

    /// The major format version: 1, 2 or 3.
    public var majorVersion: Int
    /// The minor format version (always 0).
    public var minorVersion: Int
    /// The dtype string exactly as written in the header, e.g. `"<f4"` or `">f8"`.
    public var descr: String
    /// The element type stored in the file.
    public var scalarType: ScalarType
    /// Whether the stored elements are big-endian (`'>'`); `'<'`, `'='` and `'|'` mean little-endian/native.
    public var isBigEndian: Bool
    /// Whether the elements are stored in column-major (Fortran) order.
    public var isFortranOrder: Bool
    /// The extents of every axis; `[]` for a scalar.
    public var shape: [Int]
    /// The number of elements, the product of `shape` (1 for a scalar).
    public var count: Int
    /// Byte offset of the first element: magic, version, header length and header.
    public var dataOffset: Int

    /// Size of the data section in bytes, `count * scalarType.byteCount`.
    public var dataByteCount: Int { count * scalarType.byteCount }
}

/// Reading and writing NumPy `.npy` files.
///
/// The reader accepts format versions 1.0, 2.0 and 3.0 holding float32 or float64 values
/// of either byte order in C or Fortran order, and produces a row-major float32 ``Tensor``
/// (float64 values are rounded to the nearest float32). Every malformed, truncated or
/// unsupported input is reported as an ``NPYError``; no input makes it trap.
///
/// The writer produces exactly what `numpy.save` writes for a C-contiguous `'<f4'` array
/// of the same shape (format 1.0, header padded so the data starts on a 64-byte boundary).
///
/// ```swift
/// let x = try NPY.read(contentsOf: URL(fileURLWithPath: "input.npy"))
/// try NPY.write(y, to: URL(fileURLWithPath: "output.npy"))
/// ```
public enum NPY {
    /// The six bytes every `.npy` file starts with: `\x93NUMPY`.
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// numpy aligns the start of the data to this many bytes.
    static let alignment = 64
    /// numpy pads the header with this many digits' worth of spaces so the shape can grow in place.
    static let growthAxisMaxDigits = 21

    // MARK: - Reading

    /// Reads a float32 or float64 array from a `.npy` file (float64 is converted to float32).
    ///
    /// - Parameter url: A file URL.
    /// - Returns: The array as a row-major float32 tensor with the file's shape.
    /// - Throws: ``NPYError/fileNotFound(path:)`` or ``NPYError/unreadable(path:reason:)`` when
    ///   the file cannot be read, or any format error from ``decode(_:)``.
    public static func read(contentsOf url: URL) throws(NPYError) -> Tensor {
        try readFile(url).tensor
    }

    /// Reads a `.npy` file and also returns its parsed header (source dtype, byte order, layout).
    ///
    /// - Parameter url: A file URL.
    /// - Throws: The same errors as ``read(contentsOf:)``.
    public static func readWithInfo(contentsOf url: URL) throws(NPYError) -> (tensor: Tensor, header: NPYHeader) {
        try readFile(url)
    }

    /// Decodes the bytes of a `.npy` file holding float32 or float64 values.
    ///
    /// Float32 little-endian C-order data is copied straight into the tensor's storage;
    /// big-endian data is byte-swapped, float64 is rounded to float32, and Fortran-order data
    /// is transposed into row-major order.
    ///
    /// - Parameter data: The complete file contents.
    /// - Returns: The array as a row-major float32 tensor with the file's shape.
    /// - Throws: An ``NPYError`` describing the first problem found with the bytes.
    public static func decode(_ data: Data) throws(NPYError) -> Tensor {
        try decodeWithInfo(data).tensor
    }

    /// Decodes the bytes of a `.npy` file and returns the tensor with the parsed header.
    ///
    /// Use the header to learn the source dtype (``NPYHeader/scalarType``), byte order or layout.
    ///
    /// - Parameter data: The complete file contents.
    /// - Throws: An ``NPYError`` describing the first problem found with the bytes.
    public static func decodeWithInfo(_ data: Data) throws(NPYError) -> (tensor: Tensor, header: NPYHeader) {
        let result: Result<(tensor: Tensor, header: NPYHeader), NPYError> = data.withUnsafeBytes { bytes in
            Result { () throws(NPYError) -> (tensor: Tensor, header: NPYHeader) in
                let header = try parsePreamble(bytes)
                return (try decodeBody(bytes, header: header), header)
            }
        }
        return try result.get()
    }

    /// Parses only the preamble of a `.npy` file (magic, version and header dictionary).
    ///
    /// The data section is not checked; use it to inspect a file's shape and dtype cheaply.
    ///
    /// - Parameter data: The file contents, or at least its first ``NPYHeader/dataOffset`` bytes.
    /// - Throws: An ``NPYError`` describing the first problem found with the preamble.
    public static func decodeHeader(_ data: Data) throws(NPYError) -> NPYHeader {
        let result: Result<NPYHeader, NPYError> = data.withUnsafeBytes { bytes in
            Result { () throws(NPYError) -> NPYHeader in try parsePreamble(bytes) }
        }
        return try result.get()
    }

    // MARK: - Writing

    /// Encodes a tensor as a `.npy` file: format 1.0, dtype `'<f4'`, C order.
    ///
    /// The bytes are identical to what `numpy.save` writes for the same float32 array: the
    /// header dictionary is padded with spaces and ends in `'\n'` so the data starts at a
    /// multiple of 64 bytes. (A header longer than 65535 bytes, which only a tensor of rank
    /// in the thousands could need, switches to format 2.0 as numpy does.)
    ///
    /// - Parameter tensor: The tensor to encode.
    /// - Returns: The complete file contents.
    public static func encode(_ tensor: Tensor) -> Data {
        let preamble = makePreamble(shape: tensor.shape)
        var data = Data(capacity: preamble.count + tensor.count * MemoryLayout<Float>.size)
        data.append(contentsOf: preamble)
        tensor.withUnsafeBufferPointer { values in
            #if _endian(little)
            data.append(values)
            #else
            var swapped = [UInt32](); swapped.reserveCapacity(values.count)
            for v in values { swapped.append(v.bitPattern.littleEndian) }
            swapped.withUnsafeBufferPointer { data.append($0) }
            #endif
        }
        return data
    }

    /// Writes a tensor to a `.npy` file (format 1.0, `'<f4'`, C order), atomically.
    ///
    /// The bytes go to a temporary file in the destination's directory, are flushed to disk,
    /// and the temporary file is then renamed over `url`, so readers never see a partial file.
    ///
    /// - Parameters:
    ///   - tensor: The tensor to write.
    ///   - url: A file URL; an existing file is replaced.
    /// - Throws: ``NPYError/unwritable(path:reason:)`` if the file cannot be created or renamed.
    public static func write(_ tensor: Tensor, to url: URL) throws(NPYError) {
        let path = url.path
        guard url.isFileURL else { throw .unwritable(path: url.absoluteString, reason: "not a file URL") }
        let directory = url.deletingLastPathComponent()
        // Same directory (so rename is atomic); name kept well under NAME_MAX.
        let stem = String(url.lastPathComponent.prefix(100))
        let temporary = directory.appendingPathComponent(".\(stem).\(UUID().uuidString).tmp").path

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw .unwritable(path: path, reason: errnoText()) }
        var failure: String?
        #if _endian(little)
        // The storage already holds little-endian float32: write it directly, no intermediate copy.
        let preamble = makePreamble(shape: tensor.shape)
        failure = preamble.withUnsafeBytes { writeFully(fd, $0) }
        if failure == nil {
            failure = tensor.withUnsafeBufferPointer { writeFully(fd, UnsafeRawBufferPointer($0)) }
        }
        #else
        failure = encode(tensor).withUnsafeBytes { writeFully(fd, $0) }
        #endif
        if failure == nil, fsync(fd) != 0 { failure = errnoText() }
        if close(fd) != 0, failure == nil { failure = errnoText() }
        if failure == nil, rename(temporary, path) != 0 { failure = errnoText() }
        if let failure {
            unlink(temporary)
            throw .unwritable(path: path, reason: failure)
        }
    }

    /// Writes all of `bytes`; returns the error text on failure.
    private static func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> String? {
        guard var next = bytes.baseAddress else { return nil }
        var remaining = bytes.count
        while remaining > 0 {
            let n = Glibc_write(fd, next, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                return errnoText()
            }
            next += n
            remaining -= n
        }
        return nil
    }

    // MARK: - Implementation

    /// The host's `read(2)`, named so it does not clash with ``read(contentsOf:)``.
    @inline(__always)
    private static func Glibc_read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.read(fd, buffer, count)
        #elseif canImport(Musl)
        return Musl.read(fd, buffer, count)
        #else
        return Darwin.read(fd, buffer, count)
        #endif
    }

    /// The host's `write(2)`, named so it does not clash with ``write(_:to:)``.
    @inline(__always)
    private static func Glibc_write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, buffer, count)
        #elseif canImport(Musl)
        return Musl.write(fd, buffer, count)
        #else
        return Darwin.write(fd, buffer, count)
        #endif
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }

    private static let hostIsBigEndian: Bool = {
        #if _endian(big)
        return true
        #else
        return false
        #endif
    }()

    /// Reads and decodes a file with `pread(2)`: the preamble first, then the data section
    /// straight into the tensor's storage when no conversion is needed (no intermediate copy).
    private static func readFile(_ url: URL) throws(NPYError) -> (tensor: Tensor, header: NPYHeader) {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .fileNotFound(path: path) }
            throw .unreadable(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, reason: errnoText()) }
        let fileType = info.st_mode & S_IFMT
        if fileType == S_IFDIR { throw .unreadable(path: path, reason: "is a directory, not a file") }
        if fileType == S_IFIFO { return try readStream(fd, path: path) }
        guard fileType == S_IFREG else {
            // A device such as /dev/zero or /dev/urandom never ends: refuse it before reading a byte.
            throw .unreadable(path: path, reason: "is \(fileTypeName(fileType)), not a regular file or a pipe")
        }
        let size = Int(info.st_size)

        // Preamble: numpy's is 128 bytes for any ordinary shape; read more if the header says so.
        var prefix = try readBytes(fd, path: path, offset: 0, count: min(size, 4096))
        var header: NPYHeader
        do {
            header = try parsePreamble(prefix)
        } catch let NPYError.truncatedHeader(expected, _) where expected > prefix.count {
            guard expected <= size else { throw .truncatedHeader(expectedBytes: expected, actualBytes: size) }
            prefix = try readBytes(fd, path: path, offset: 0, count: expected)
            header = try parsePreamble(prefix)
        }

        try checkBodyLength(header, available: size - header.dataOffset)
        let needed = header.dataByteCount
        if isDirectCopy(header) {
            var shortRead: Int?
            let tensor = Tensor(shape: header.shape) { out in
                guard let base = out.baseAddress else { return }
                let got = preadFully(fd, into: UnsafeMutableRawPointer(base), count: needed, offset: header.dataOffset)
                if got != needed {
                    shortRead = got
                    out.initialize(repeating: 0)  // every element must be set before the tensor is dropped
                }
            }
            if let got = shortRead { throw readFailure(path: path, header: header, got: got) }
            return (tensor, header)
        }
        let body = UnsafeMutableRawPointer.allocate(byteCount: max(needed, 1), alignment: 16)
        defer { body.deallocate() }
        let got = preadFully(fd, into: body, count: needed, offset: header.dataOffset)
        if got != needed { throw readFailure(path: path, header: header, got: got) }
        try checkFloat32Range(header, data: UnsafeRawPointer(body))
        return (makeTensor(header, data: UnsafeRawPointer(body)), header)
    }

    /// The error for a data section that came back short: the file shrank, or an I/O error.
    private static func readFailure(path: String, header: NPYHeader, got: Int) -> NPYError {
        if got < 0 { return .unreadable(path: path, reason: errnoText()) }
        return .truncatedData(expectedValues: header.count, expectedBytes: header.dataByteCount, actualBytes: got)
    }

    /// Reads up to `count` bytes at `offset`; returns how many were read, or -1 on an I/O error.
    private static func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, offset: Int) -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                return -1
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Exactly `count` bytes at `offset`, or fewer if the file ends first.
    private static func readBytes(_ fd: Int32, path: String, offset: Int, count: Int) throws(NPYError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { buffer in
            buffer.baseAddress.map { preadFully(fd, into: $0, count: count, offset: offset) } ?? 0
        }
        if got < 0 { throw .unreadable(path: path, reason: errnoText()) }
        bytes.removeLast(count - got)
        return bytes
    }

    /// The largest data section a pipe may declare: half the machine's memory. A regular file's
    /// declared size is checked against the file's real size instead.
    static var streamByteLimit: Int {
        Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)
    }

    /// Reads a `.npy` array from a pipe, which has no size to plan with.
    ///
    /// The preamble is read first, so a stream that is not a `.npy` array is refused after a
    /// few bytes; then exactly the declared data section is read, and one more byte decides
    /// whether the stream has trailing data. Memory never exceeds the declared size, and a
    /// declared size above ``streamByteLimit`` is refused before any data is read.
    private static func readStream(_ fd: Int32, path: String) throws(NPYError) -> (tensor: Tensor, header: NPYHeader) {
        var bytes: [UInt8] = []
        var wanted = 128  // numpy's preamble length for any ordinary shape
        var header: NPYHeader
        while true {
            let ended = try readStream(fd, path: path, appendingTo: &bytes, upTo: wanted)
            do {
                header = try parsePreamble(bytes)
                break
            } catch let NPYError.truncatedHeader(expected, _) where expected > bytes.count && !ended {
                wanted = expected
            }
        }
        let needed = header.dataByteCount
        if needed > streamByteLimit {
            throw .unreadable(path: path, reason: "the header declares \(needed) bytes of values, more than a pipe "
                              + "may hold (\(streamByteLimit) bytes, half the memory); save the array to a file")
        }
        bytes.reserveCapacity(header.dataOffset + needed)
        _ = try readStream(fd, path: path, appendingTo: &bytes, upTo: header.dataOffset + needed)
        if bytes.count == header.dataOffset + needed {
            var extra: [UInt8] = []
            _ = try readStream(fd, path: path, appendingTo: &extra, upTo: 1)
            if !extra.isEmpty { throw .trailingStreamData(expectedBytes: needed) }
        }
        let result: Result<Tensor, NPYError> = bytes.withUnsafeBytes { raw in
            Result { () throws(NPYError) -> Tensor in try decodeBody(raw, header: header) }
        }
        return (try result.get(), header)
    }

    /// Reads from a stream until `bytes` holds `count` bytes or the stream ends; returns
    /// whether it ended.
    private static func readStream(_ fd: Int32, path: String, appendingTo bytes: inout [UInt8],
                                   upTo count: Int) throws(NPYError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count < count {
            let n = chunk.withUnsafeMutableBytes { buffer in
                buffer.baseAddress.map { Glibc_read(fd, $0, min(buffer.count, count - bytes.count)) } ?? 0
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: errnoText())
            }
            if n == 0 { return true }
            bytes += chunk[0..<n]
        }
        return false
    }

    /// A file type from `stat(2)` in words, for an error message.
    private static func fileTypeName(_ type: mode_t) -> String {
        switch type {
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "a special file"
        }
    }

    /// Magic, version, header length and header dictionary, with trailing padding.
    static func makePreamble(shape: [Int]) -> [UInt8] {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeRepr(shape)), }"
        if let first = shape.first {
            header += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).count))
        }
        let body = Array(header.utf8)
        let withNewline = body.count + 1
        var major: UInt8 = 1
        var lengthBytes = 2
        var padding = alignment - (8 + lengthBytes + withNewline) % alignment
        if withNewline + padding > Int(UInt16.max) {
            major = 2
            lengthBytes = 4
            padding = alignment - (8 + lengthBytes + withNewline) % alignment
        }
        let headerLength = withNewline + padding
        var out = magic
        out += [major, 0]
        for k in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: headerLength >> (8 * k))) }
        out += body
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }

    /// A shape as Python prints a tuple: `()`, `(5,)`, `(2, 3)`.
    static func shapeRepr(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// ``parsePreamble(_:)-(UnsafeRawBufferPointer)`` for bytes in an array.
    private static func parsePreamble(_ bytes: [UInt8]) throws(NPYError) -> NPYHeader {
        let result: Result<NPYHeader, NPYError> = bytes.withUnsafeBytes { raw in
            Result { () throws(NPYError) -> NPYHeader in try parsePreamble(raw) }
        }
        return try result.get()
    }

    /// Checks magic, version and lengths, and parses and validates the header dictionary.
    static func parsePreamble(_ bytes: UnsafeRawBufferPointer) throws(NPYError) -> NPYHeader {
        let size = bytes.count
        if size == 0 { throw .emptyFile }
        for k in 0..<min(size, magic.count) where bytes[k] != magic[k] { throw .badMagic }
        if size < 10 { throw .truncatedHeader(expectedBytes: 10, actualBytes: size) }
        let major = Int(bytes[6]), minor = Int(bytes[7])
        let lengthBytes: Int
        switch (major, minor) {
        case (1, 0): lengthBytes = 2
        case (2, 0), (3, 0): lengthBytes = 4
        default: throw .unsupportedVersion(major: major, minor: minor)
        }
        let fixed = 8 + lengthBytes
        if size < fixed { throw .truncatedHeader(expectedBytes: fixed, actualBytes: size) }
        var headerLength = 0
        for k in 0..<lengthBytes { headerLength |= Int(bytes[8 + k]) << (8 * k) }
        let dataOffset = fixed + headerLength
        if size < dataOffset { throw .truncatedHeader(expectedBytes: dataOffset, actualBytes: size) }

        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[fixed..<dataOffset])
        let scalars: [Unicode.Scalar]
        if major == 3 {
            guard let text = String(validating: headerBytes, as: UTF8.self) else { throw .invalidHeaderEncoding }
            scalars = Array(text.unicodeScalars)
        } else {
            scalars = headerBytes.map { Unicode.Scalar($0) }  // latin-1
        }
        let literal = try PyLiteralParser.parse(scalars)
        let fields = try interpret(literal)
        return NPYHeader(majorVersion: major, minorVersion: minor,
                         descr: fields.descr, scalarType: fields.type, isBigEndian: fields.bigEndian,
                         isFortranOrder: fields.fortran, shape: fields.shape, count: fields.count,
                         dataOffset: dataOffset)
    }

    /// Validates the header dictionary's keys and values.
    private static func interpret(_ literal: PyLiteral) throws(NPYError)
        -> (descr: String, type: NPYHeader.ScalarType, bigEndian: Bool, fortran: Bool, shape: [Int], count: Int)
    {
        guard case let .dict(entries) = literal else {
            throw .malformedHeader(reason: "header is \(literal.kindName) \(literal.shortRepr), not a dictionary")
        }
        var descrValue: PyLiteral?, fortranValue: PyLiteral?, shapeValue: PyLiteral?
        for (key, value) in entries {
            guard case let .string(name) = key else {
                throw .malformedHeader(reason: "dictionary key \(key.shortRepr) is not a string")
            }
            switch name {
            case "descr":
                if descrValue != nil { throw .malformedHeader(reason: "duplicate key 'descr'") }
                descrValue = value
            case "fortran_order":
                if fortranValue != nil { throw .malformedHeader(reason: "duplicate key 'fortran_order'") }
                fortranValue = value
            case "shape":
                if shapeValue != nil { throw .malformedHeader(reason: "duplicate key 'shape'") }
                shapeValue = value
            default:
                throw .unknownKey(oneLine(name, limit: 40))
            }
        }
        guard let descrValue else { throw .missingKey("descr") }
        guard let fortranValue else { throw .missingKey("fortran_order") }
        guard let shapeValue else { throw .missingKey("shape") }

        // dtype
        let descr: String
        switch descrValue {
        case let .string(text): descr = text
        case .list, .tuple: throw .unsupportedDType(descr: descrValue.shortRepr, kind: "structured")
        default:
            throw .invalidValue(key: "descr", reason: "must be a dtype string such as '<f4', got \(descrValue.shortRepr)")
        }
        let (type, bigEndian) = try parseDescr(descr)

        // layout
        guard case let .bool(fortran) = fortranValue else {
            throw .invalidValue(key: "fortran_order", reason: "must be True or False, got \(fortranValue.shortRepr)")
        }

        // shape
        guard case let .tuple(items) = shapeValue else {
            throw .invalidValue(key: "shape",
                                reason: "must be a tuple of non-negative integers such as (2, 3), got \(shapeValue.shortRepr)")
        }
        let shapeText = shapeValue.shortRepr
        var shape: [Int] = []
        shape.reserveCapacity(items.count)
        for item in items {
            switch item {
            case let .integer(n):
                if n < 0 { throw .invalidShape(reason: "extent \(n) in \(shapeText) is negative") }
                shape.append(n)
            case let .bigInteger(text):
                if text.hasPrefix("-") { throw .invalidShape(reason: "extent \(text) in \(shapeText) is negative") }
                throw .shapeTooLarge(shape: shapeText)
            default:
                throw .invalidShape(reason: "extent \(item.shortRepr) in \(shapeText) is not an integer")
            }
        }
        // Every partial product of the extents (and the byte size) must fit in an Int, even
        // when some extent is zero: other code multiplies subsets of the shape.
        var bound = type.byteCount
        for extent in shape {
            let (product, overflow) = bound.multipliedReportingOverflow(by: max(extent, 1))
            if overflow { throw .shapeTooLarge(shape: shapeText) }
            bound = product
        }
        let count = shape.reduce(1, *)
        return (oneLine(descr, limit: 40), type, bigEndian, fortran, shape, count)
    }

    /// Interprets a dtype string such as `'<f4'`; anything but float32/float64 is an error naming the type.
    static func parseDescr(_ descr: String) throws(NPYError) -> (NPYHeader.ScalarType, bigEndian: Bool) {
        var chars = Array(descr.unicodeScalars)
        var bigEndian = hostIsBigEndian
        if let first = chars.first, "<>=|".unicodeScalars.contains(first) {
            if first == "<" { bigEndian = false } else if first == ">" { bigEndian = true }
            chars.removeFirst()
        }
        let shown = oneLine(descr, limit: 40)
        guard let kind = chars.first else { throw .unsupportedDType(descr: shown, kind: "unrecognized") }
        let digits = chars.dropFirst()
        var size: Int?
        if !digits.isEmpty, digits.count <= 6, digits.allSatisfy({ $0.properties.numericType == .decimal && $0.isASCII }) {
            size = Int(String(String.UnicodeScalarView(digits)))
        }
        let kindName: String
        switch kind {
        case "f":
            if size == 4 { return (.float32, bigEndian) }
            if size == 8 { return (.float64, bigEndian) }
            if let size { kindName = size == 2 ? "float16" : "float\(size * 8)" } else { kindName = "unrecognized" }
        case "i": kindName = "integer"
        case "u": kindName = "unsigned integer"
        case "b", "?": kindName = "bool"
        case "c": kindName = "complex"
        case "O": kindName = "Python object"
        case "S", "a": kindName = "byte string"
        case "U": kindName = "unicode string"
        case "V": kindName = "raw bytes/void"
        case "M": kindName = "datetime"
        case "m": kindName = "timedelta"
        default: kindName = "unrecognized"
        }
        throw .unsupportedDType(descr: shown, kind: kindName)
    }

    /// Converts the data section into a row-major float32 tensor.
    private static func decodeBody(_ bytes: UnsafeRawBufferPointer, header: NPYHeader) throws(NPYError) -> Tensor {
        try checkBodyLength(header, available: bytes.count - header.dataOffset)
        guard let base = bytes.baseAddress else { return Tensor(shape: header.shape, initializingWith: { _ in }) }
        try checkFloat32Range(header, data: base + header.dataOffset)
        return makeTensor(header, data: base + header.dataOffset)
    }

    /// Rejects a float64 data section holding a finite value that rounds to infinity in
    /// float32 (|x| at or above 2^128 - 2^103, about 3.4028236e38); infinities and NaNs
    /// stored as such pass through unchanged.
    private static func checkFloat32Range(_ header: NPYHeader, data source: UnsafeRawPointer) throws(NPYError) {
        guard header.scalarType == .float64 else { return }
        let swap = header.isBigEndian != hostIsBigEndian
        for i in 0..<header.count {
            let bits = source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
            let value = Double(bitPattern: swap ? bits.byteSwapped : bits)
            if value.isFinite && Float(value).isInfinite { throw .valueBeyondFloat32(value: value) }
        }
    }

    /// Rejects a data section that is not exactly `count * itemsize` bytes.
    private static func checkBodyLength(_ header: NPYHeader, available: Int) throws(NPYError) {
        let needed = header.dataByteCount
        if available < needed {
            throw .truncatedData(expectedValues: header.count, expectedBytes: needed, actualBytes: available)
        }
        if available > needed { throw .trailingBytes(expectedBytes: needed, actualBytes: available) }
    }

    /// Whether the stored bytes are already the tensor's bytes: float32, host byte order, row-major.
    private static func isDirectCopy(_ header: NPYHeader) -> Bool {
        header.scalarType == .float32 && header.isBigEndian == hostIsBigEndian
            && (!header.isFortranOrder || header.shape.count < 2)
    }

    /// Builds the tensor from a data section of exactly `header.dataByteCount` bytes.
    private static func makeTensor(_ header: NPYHeader, data source: UnsafeRawPointer) -> Tensor {
        let swap = header.isBigEndian != hostIsBigEndian
        if !header.isFortranOrder || header.shape.count < 2 {
            return Tensor(shape: header.shape) { out in
                guard let base = out.baseAddress else { return }
                convert(source, count: header.count, type: header.scalarType, swap: swap, into: base)
            }
        }
        let fileOrder = TensorStorage(uninitializedCount: header.count)
        convert(source, count: header.count, type: header.scalarType, swap: swap, into: fileOrder.base)
        return Tensor(shape: header.shape) { out in
            guard let base = out.baseAddress else { return }
            fortranToC(fileOrder.base, shape: header.shape, into: base)
        }
    }

    /// Copies `count` stored elements into float32, byte-swapping and narrowing as needed.
    private static func convert(_ source: UnsafeRawPointer, count: Int, type: NPYHeader.ScalarType, swap: Bool,
                                into out: UnsafeMutablePointer<Float>) {
        switch (type, swap) {
        case (.float32, false):
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)
        case (.float32, true):
            for i in 0..<count {
                out[i] = Float(bitPattern: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).byteSwapped)
            }
        case (.float64, false):
            for i in 0..<count {
                out[i] = Float(Double(bitPattern: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
        case (.float64, true):
            for i in 0..<count {
                out[i] = Float(Double(bitPattern: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).byteSwapped))
            }
        }
    }

    /// Reorders column-major elements of `shape` into row-major order.
    private static func fortranToC(_ source: UnsafePointer<Float>, shape: [Int], into out: UnsafeMutablePointer<Float>) {
        let rank = shape.count
        // Column-major strides: axis 0 is contiguous.
        var strides = [Int](repeating: 1, count: rank)
        for k in 1..<rank { strides[k] = strides[k - 1] * shape[k - 1] }
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        let total = shape.reduce(1, *)
        guard inner > 0, total > 0 else { return }
        var index = [Int](repeating: 0, count: rank - 1)
        var rowStart = 0
        var o = 0
        for _ in 0..<(total / inner) {
            var s = rowStart
            for _ in 0..<inner {
                out[o] = source[s]
                o += 1
                s += innerStride
            }
            var k = rank - 2
            while k >= 0 {
                index[k] += 1
                rowStart += strides[k]
                if index[k] < shape[k] { break }
                rowStart -= strides[k] * shape[k]
                index[k] = 0
                k -= 1
            }
        }
    }
}

/// Shortens `text` to one line of at most `limit` characters for an error message.
fileprivate func oneLine(_ text: String, limit: Int) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\x" + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        if out.count > limit { return String(out.prefix(limit)) + "…" }
    }
    return out
}

// MARK: - Python literal parser

/// A value of the Python literal subset that `.npy` headers use.
indirect enum PyLiteral {
    case string(String)
    case integer(Int)
    /// An integer literal too large for `Int`, kept as text (with its sign).
    case bigInteger(String)
    /// A floating-point literal, kept as text.
    case float(String)
    case bool(Bool)
    case none
    case tuple([PyLiteral])
    case list([PyLiteral])
    case dict([(key: PyLiteral, value: PyLiteral)])

    /// The value as Python would print it.
    var repr: String {
        switch self {
        case let .string(s): return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        case let .integer(n): return String(n)
        case let .bigInteger(text), let .float(text): return text
        case let .bool(b): return b ? "True" : "False"
        case .none: return "None"
        case let .tuple(items):
            return items.count == 1 ? "(\(items[0].repr),)" : "(" + items.map(\.repr).joined(separator: ", ") + ")"
        case let .list(items): return "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case let .dict(entries): return "{" + entries.map { "\($0.key.repr): \($0.value.repr)" }.joined(separator: ", ") + "}"
        }
    }

    /// ``repr`` shortened to one line for error messages.
    var shortRepr: String { oneLine(repr, limit: 60) }

    /// What kind of value this is, for error messages.
    var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer, .bigInteger: return "an integer"
        case .float: return "a float"
        case .bool: return "a bool"
        case .none: return "None"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dictionary"
        }
    }
}

/// A recursive-descent parser for Python literals: dicts, tuples, lists, strings, integers,
/// floats, `True`, `False` and `None`. Errors are ``NPYError/malformedHeader(reason:)``.
struct PyLiteralParser {
    private let s: [Unicode.Scalar]
    private var i = 0
    private var depth = 0
    /// Deeper nesting is rejected rather than risking the stack.
    static let maxDepth = 32

    private init(_ scalars: [Unicode.Scalar]) { s = scalars }

    /// Parses one literal that must span the whole text (surrounding whitespace allowed).
    static func parse(_ scalars: [Unicode.Scalar]) throws(NPYError) -> PyLiteral {
        var parser = PyLiteralParser(scalars)
        parser.skipSpace()
        if parser.i == parser.s.count { throw .malformedHeader(reason: "header is empty") }
        let value = try parser.value()
        parser.skipSpace()
        if parser.i < parser.s.count {
            throw parser.failure("unexpected \(parser.current) after the end of the dictionary")
        }
        return value
    }

    private var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    /// The character at the cursor, described for an error message.
    private var current: String {
        guard let c = peek else { return "end of header" }
        if c.value < 0x20 || c.value == 0x7F { return "control character 0x" + String(c.value, radix: 16) }
        return "'\(Character(c))'"
    }

    private func failure(_ what: String) -> NPYError {
        .malformedHeader(reason: "\(what) (at character \(i + 1))")
    }

    private mutating func skipSpace() {
        while let c = peek, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" {
            i += 1
        }
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }
    private static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || isDigit(c) || c == "_"
    }

    private mutating func value() throws(NPYError) -> PyLiteral {
        guard let c = peek else { throw failure("unexpected end of header") }
        switch c {
        case "{", "(", "[":
            depth += 1
            defer { depth -= 1 }
            if depth > Self.maxDepth { throw failure("literal nested too deeply") }
            if c == "{" { return try dict() }
            if c == "[" { return .list(try sequence(close: "]").items) }
            let (items, sawComma) = try sequence(close: ")")
            if items.count == 1 && !sawComma { return items[0] }  // parenthesised value, not a tuple
            return .tuple(items)
        case "'", "\"":
            return try string()
        case "-", "+", ".", "0"..."9":
            return try number()
        default:
            if "uUbB".unicodeScalars.contains(c), i + 1 < s.count, s[i + 1] == "'" || s[i + 1] == "\"" {
                i += 1
                return try string()
            }
            guard Self.isNameCharacter(c) else { throw failure("unexpected \(current)") }
            let start = i
            while let n = peek, Self.isNameCharacter(n) { i += 1 }
            let name = String(String.UnicodeScalarView(s[start..<i]))
            switch name {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                i = start
                throw failure("unknown name '\(oneLine(name, limit: 30))'")
            }
        }
    }

    private mutating func dict() throws(NPYError) -> PyLiteral {
        i += 1  // '{'
        var entries: [(key: PyLiteral, value: PyLiteral)] = []
        while true {
            skipSpace()
            if peek == "}" { i += 1; return .dict(entries) }
            let key = try value()
            skipSpace()
            guard peek == ":" else { throw failure("expected ':' after key \(key.shortRepr) but found \(current)") }
            i += 1
            skipSpace()
            let item = try value()
            entries.append((key, item))
            skipSpace()
            if peek == "," { i += 1; continue }
            if peek == "}" { i += 1; return .dict(entries) }
            throw failure("expected ',' or '}' after the value of \(key.shortRepr) but found \(current)")
        }
    }

    /// Items of a tuple or list up to `close`, and whether any comma separated them.
    private mutating func sequence(close: Unicode.Scalar) throws(NPYError) -> (items: [PyLiteral], sawComma: Bool) {
        i += 1  // opening bracket
        var items: [PyLiteral] = []
        var sawComma = false
        while true {
            skipSpace()
            if peek == close { i += 1; return (items, sawComma) }
            items.append(try value())
            skipSpace()
            if peek == "," { i += 1; sawComma = true; continue }
            if peek == close { i += 1; return (items, sawComma) }
            throw failure("expected ',' or '\(Character(close))' but found \(current)")
        }
    }

    private mutating func string() throws(NPYError) -> PyLiteral {
        guard let quote = peek else { throw failure("unexpected end of header") }
        let start = i
        i += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek, c != "\n", c != "\r" else {
                i = start
                throw failure("unterminated string")
            }
            i += 1
            if c == quote { return .string(String(out)) }
            if c == "\\" {
                guard let e = peek else { i = start; throw failure("unterminated string") }
                i += 1
                switch e {
                case "\\", "'", "\"": out.append(e)
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                default: out.append("\\"); out.append(e)
                }
                continue
            }
            out.append(c)
        }
    }

    private mutating func number() throws(NPYError) -> PyLiteral {
        let start = i
        var negative = false
        while let c = peek, c == "-" || c == "+" {
            if c == "-" { negative.toggle() }
            i += 1
            skipSpace()
        }
        var digits = String.UnicodeScalarView()
        var isFloat = false
        while let c = peek, Self.isDigit(c) { digits.append(c); i += 1 }
        var fractionDigits = 0
        if peek == "." {
            isFloat = true
            i += 1
            while let c = peek, Self.isDigit(c) { fractionDigits += 1; i += 1 }
        }
        if digits.isEmpty && fractionDigits == 0 {
            i = start
            throw failure("expected a number but found \(current)")
        }
        if let e = peek, e == "e" || e == "E" {
            isFloat = true
            i += 1
            if let sign = peek, sign == "+" || sign == "-" { i += 1 }
            var exponentDigits = 0
            while let c = peek, Self.isDigit(c) { exponentDigits += 1; i += 1 }
            if exponentDigits == 0 { throw failure("malformed number exponent") }
        }
        if !isFloat, let suffix = peek, suffix == "L" || suffix == "l" { i += 1 }  // Python 2 long
        if let c = peek, Self.isNameCharacter(c) || c == "." {
            throw failure("malformed number")
        }
        let text = String(String.UnicodeScalarView(s[start..<i])).filter { !$0.isWhitespace }
        if isFloat { return .float(text) }
        var magnitude = 0
        for d in digits {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(d.value - 48))
            if o1 || o2 { return .bigInteger((negative ? "-" : "") + String(digits)) }
            magnitude = sum
        }
        return .integer(negative ? -magnitude : magnitude)
    }
}
