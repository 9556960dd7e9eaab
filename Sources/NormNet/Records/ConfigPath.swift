import NormCore
import Foundation

/// A dotted path (`model.norm.name`) could not be followed because a segment is not a map.
public struct ConfigPathError: Error, CustomStringConvertible {
    public let path: String
    public let found: String
    public var description: String { "'\(path)' is \(found), not a map" }

    public init(path: String, found: String) {
        self.path = path
        self.found = found
    }
}

/// Dotted configuration paths.
public enum ConfigPath {
    public static func segments(_ path: String) -> [String] {
        path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }

    /// Whether `path` is made of identifier segments (`[A-Za-z_][A-Za-z0-9_-]*`) joined by dots.
    public static func isValid(_ path: String) -> Bool {
        let parts = segments(path)
        return !parts.isEmpty && parts.allSatisfy(isValidSegment)
    }

    /// Whether `s` is one identifier segment (`[A-Za-z_][A-Za-z0-9_-]*`).
    public static func isValidSegment(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        let letters = CharacterSet.letters.union(CharacterSet(charactersIn: "_"))
        let rest = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-"))
        return letters.contains(first) && s.unicodeScalars.allSatisfy { rest.contains($0) } && s.allSatisfy(\.isASCII)
    }

    /// Whether `a` equals `b` or lies inside it (`a` = `model.norm.name`, `b` = `model.norm`).
    public static func isWithin(_ a: String, _ b: String) -> Bool {
        a == b || a.hasPrefix(b + ".")
    }

    /// `base` + `.` + `path`, leaving out empty parts.
    public static func join(_ base: String, _ path: String) -> String {
        if base.isEmpty { return path }
        if path.isEmpty { return base }
        return path.hasPrefix("[") ? base + path : base + "." + path
    }
}
extension ConfigPathError: UserFacingError {}
