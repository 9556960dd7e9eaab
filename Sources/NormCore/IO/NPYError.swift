/// Why a `.npy` file could not be read or written.
///
/// Every case's ``description`` is a single line that tells the user what is wrong with
/// the file and, where it helps, what was expected instead. The messages do not repeat
/// the file name (except for file-system errors), so callers can prefix it:
/// `"error: weights.npy: truncated data: …"`.
public enum NPYError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file does not exist.
    case fileNotFound(path: String)
    /// The file exists but could not be read (permissions, a directory, I/O error).
    case unreadable(path: String, reason: String)
    /// The file (or its temporary sibling) could not be written or renamed into place.
    case unwritable(path: String, reason: String)
    /// The input holds no bytes at all.
    case emptyFile
    /// The input does not start with the magic string `\x93NUMPY`.
    case badMagic
    /// The format version is not 1.0, 2.0 or 3.0.
    case unsupportedVersion(major: Int, minor: Int)
    /// The input ends inside the preamble (magic, version, header length or header).
    case truncatedHeader(expectedBytes: Int, actualBytes: Int)
    /// A format 3.0 header that is not valid UTF-8.
    case invalidHeaderEncoding
    /// The header is not a well-formed Python dictionary literal.
    case malformedHeader(reason: String)
    /// One of `descr`, `fortran_order` or `shape` is absent from the header.
    case missingKey(String)
    /// The header holds a key other than `descr`, `fortran_order` and `shape`.
    case unknownKey(String)
    /// A header key has a value of the wrong kind (e.g. `fortran_order: 1`).
    case invalidValue(key: String, reason: String)
    /// The element type is not float32 or float64; `kind` names what it is instead.
    case unsupportedDType(descr: String, kind: String)
    /// The shape has a negative or non-integer extent.
    case invalidShape(reason: String)
    /// The element count or byte size of the shape does not fit in a 64-bit integer.
    case shapeTooLarge(shape: String)
    /// The data section is shorter than the header's shape and dtype require.
    case truncatedData(expectedValues: Int, expectedBytes: Int, actualBytes: Int)
    /// The data section is longer than the header's shape and dtype require.
    case trailingBytes(expectedBytes: Int, actualBytes: Int)
    /// A finite float64 value too large for float32, which normlab computes in.
    case valueBeyondFloat32(value: Double)
    /// A pipe goes on after the data section the header declares (not read further).
    case trailingStreamData(expectedBytes: Int)

    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "file not found: \(path)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .unwritable(path, reason):
            return "cannot write \(path): \(reason)"
        case .emptyFile:
            return "empty file (0 bytes); expected a .npy array"
        case .badMagic:
            return "not a .npy file (bad magic string; expected it to start with \\x93NUMPY)"
        case let .unsupportedVersion(major, minor):
            return "unsupported .npy format version \(major).\(minor); expected 1.0, 2.0 or 3.0"
        case let .truncatedHeader(expected, actual):
            return "truncated header: the preamble needs \(expected) bytes, file has \(actual) bytes"
        case .invalidHeaderEncoding:
            return "malformed .npy header: format 3.0 header is not valid UTF-8"
        case let .malformedHeader(reason):
            return "malformed .npy header: \(reason)"
        case let .missingKey(key):
            return "malformed .npy header: missing key '\(key)'; expected 'descr', 'fortran_order' and 'shape'"
        case let .unknownKey(key):
            return "malformed .npy header: unexpected key '\(key)'; expected only 'descr', 'fortran_order' and 'shape'"
        case let .invalidValue(key, reason):
            return "malformed .npy header: '\(key)' \(reason)"
        case let .unsupportedDType(descr, kind):
            return "unsupported dtype '\(descr)' (\(kind)); expected float32 ('<f4') or float64 ('<f8')"
        case let .invalidShape(reason):
            return "invalid shape: \(reason)"
        case let .shapeTooLarge(shape):
            return "shape \(shape) is too large: its element count or byte size overflows a 64-bit integer"
        case let .truncatedData(values, bytes, actual):
            return "truncated data: header promises \(values) values (\(bytes) bytes), file has \(actual) bytes after the header"
        case let .valueBeyondFloat32(value):
            return "float64 value \(value) is beyond float32's range (±\(Float.greatestFiniteMagnitude)); normlab computes in float32"
        case let .trailingStreamData(expected):
            return "unexpected trailing data: header promises \(expected) bytes of values, the pipe goes on after them"
        case let .trailingBytes(expected, actual):
            return "unexpected trailing data: header promises \(expected) bytes of values, file has \(actual) bytes after the header"
        }
    }
}
