import NormCore
import NormNet

/// Hashing entry points used by the driver (public for tools and tests).
public enum AblationHash {
    /// Hex SHA-256 of `text` (UTF-8).
    public static func sha256(_ text: String) -> String { SHA256.hex(text) }
    /// Hex SHA-256 of `bytes`.
    public static func sha256(bytes: [UInt8]) -> String { SHA256.hex(bytes: bytes) }
}
