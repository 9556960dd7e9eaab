import NormCore
import NormNet
import Foundation

/// The fully resolved configuration of one cell: the spec's `base` with the cell's grid
/// values written in. This is everything a ``CellRunner`` gets to know about *what* to train
/// (the seed and thread count come separately and are not part of it).
///
/// Its identity is ``hash``: SHA-256 of the canonical JSON (sorted keys, normalized
/// numbers), so key order and `1` vs `1.0` never change it.
///
/// Typed accessors throw a ``ConfigProblem`` carrying the config-relative path, which is
/// what ``CellRunner/validate(_:)`` should return (the driver maps it to the spec's YAML
/// path):
///
/// ```swift
/// let lr = try config.double("optimizer.lr")
/// let depth = try config.int("model.depth", default: 4)
/// let name = try config.string("model.norm.name")
/// ```
public struct CellConfig: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The tree (a map).
    public let root: ConfigValue
    /// ``ConfigValue/canonicalJSON`` of ``root``.
    public let canonicalJSON: String
    /// Hex SHA-256 of ``canonicalJSON``: the cell's identity.
    public let hash: String

    public init(_ root: ConfigValue) {
        self.root = root
        canonicalJSON = root.canonicalJSON
        hash = SHA256.hex(canonicalJSON)
    }

    public static func == (a: CellConfig, b: CellConfig) -> Bool { a.hash == b.hash }
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The first 12 hex digits of ``hash`` (what tables and logs show).
    public var shortHash: String { String(hash.prefix(12)) }

    public var description: String { root.description }

    /// The value at a dotted path, nil when absent.
    public subscript(path: String) -> ConfigValue? { root.value(at: path) }

    /// Whether a value (possibly `null`) exists at `path`.
    public func contains(_ path: String) -> Bool { root.value(at: path) != nil }

    /// The keys of the map at `path` (`""` for the top level), in document order.
    public func keys(at path: String = "") -> [String] {
        let node = path.isEmpty ? root : root.value(at: path)
        return node?.mapValue?.map(\.key) ?? []
    }

    // MARK: typed accessors (throwing a ConfigProblem with the path)

    public func value(_ path: String) throws -> ConfigValue {
        guard let v = root.value(at: path) else { throw ConfigProblem(path: path, message: "is required") }
        return v
    }

    public func int(_ path: String) throws -> Int { try typed(path, "an integer", \.intValue) }

    public func int(_ path: String, default fallback: Int) throws -> Int {
        contains(path) ? try int(path) : fallback
    }

    public func double(_ path: String) throws -> Double { try typed(path, "a number", \.doubleValue) }

    public func double(_ path: String, default fallback: Double) throws -> Double {
        contains(path) ? try double(path) : fallback
    }

    public func bool(_ path: String) throws -> Bool { try typed(path, "true or false", \.boolValue) }

    public func bool(_ path: String, default fallback: Bool) throws -> Bool {
        contains(path) ? try bool(path) : fallback
    }

    public func string(_ path: String) throws -> String { try typed(path, "a string", \.stringValue) }

    public func string(_ path: String, default fallback: String) throws -> String {
        contains(path) ? try string(path) : fallback
    }

    /// The value at `path` as a `T`, or a problem saying what it must be and what it is.
    private func typed<T>(_ path: String, _ mustBe: String, _ convert: (ConfigValue) -> T?) throws -> T {
        let v = try value(path)
        guard let t = convert(v) else { throw ConfigProblem(path: path, message: "must be \(mustBe), got \(v.kindName) (\(v))") }
        return t
    }

    /// Problems for keys of the map at `path` that are not in `allowed` (paths are
    /// config-relative, e.g. `optimizer.lrr`), for a runner's ``CellRunner/validate(_:)``.
    public func unknownKeys(at path: String, allowed: [String]) -> [ConfigProblem] {
        let node = path.isEmpty ? root : root.value(at: path)
        guard let node else { return [] }
        guard let pairs = node.mapValue else {
            return [ConfigProblem(path: path, message: "must be a map, got \(node.kindName)")]
        }
        return pairs.filter { !allowed.contains($0.key) }.map {
            ConfigProblem(path: ConfigPath.join(path, $0.key),
                          message: "unknown key '\($0.key)' (expected one of: \(allowed.joined(separator: ", ")))")
        }
    }
}
