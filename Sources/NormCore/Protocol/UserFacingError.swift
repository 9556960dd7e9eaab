/// The one protocol every normlab library error conforms to: a message a user can act on
/// (one line, naming the file, option, layer or cell and what to change) and the process exit
/// status the CLI ends with. The CLI catches this protocol once, prints
/// `normlab: error: <message>` on stderr and exits with ``exitStatus``.
public protocol UserFacingError: Error, CustomStringConvertible {
    /// One line for the user (default: `description` with line breaks folded).
    var userMessage: String { get }
    /// The exit status (default 1).
    var exitStatus: Int32 { get }
}

extension UserFacingError {
    public var userMessage: String { description.split(whereSeparator: \.isNewline).joined(separator: " ") }
    public var exitStatus: Int32 { 1 }
}

extension NormError: UserFacingError {}
extension NPYError: UserFacingError {}
extension FoldingRefusal: UserFacingError {}
