import NormCore
import Foundation

/// A typed, ordered tree of YAML values: the form every configuration takes inside the
/// ablation driver (a spec's `base`, grid values, a cell's resolved configuration, a run's
/// telemetry). Maps keep their document order (grid axes are expanded in that order), but
/// the canonical JSON used for hashing sorts keys, so order never changes a hash.
///
/// Scalars follow the YAML 1.2 core schema (see ``YAMLTree``): `true`/`false` are booleans,
/// `yes`/`no` are strings; `1` is an ``integer(_:)``, `1.0`, `1e-3` are ``real(_:)``.
public indirect enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int)
    case real(Double)
    case string(String)
    case list([ConfigValue])
    /// Ordered key/value pairs with unique keys.
    case map([(key: String, value: ConfigValue)])

    public static func == (a: ConfigValue, b: ConfigValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.integer(x), .integer(y)): return x == y
        case let (.real(x), .real(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.string(x), .string(y)): return x == y
        case let (.list(x), .list(y)): return x == y
        case let (.map(x), .map(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    // MARK: typed access

    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var boolValue: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }
    public var listValue: [ConfigValue]? { if case let .list(l) = self { return l } else { return nil } }
    public var mapValue: [(key: String, value: ConfigValue)]? { if case let .map(m) = self { return m } else { return nil } }

    /// An integer, or a real with an integral value that fits (`3.0` → 3).
    public var intValue: Int? {
        switch self {
        case let .integer(i): return i
        case let .real(d) where d.rounded() == d && abs(d) < 9.0e15: return Int(d)
        default: return nil
        }
    }

    /// Any number as a `Double` (integers included).
    public var doubleValue: Double? {
        switch self {
        case let .integer(i): return Double(i)
        case let .real(d): return d
        default: return nil
        }
    }

    /// A short name of the kind of value, for messages ("a map", "a string").
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer: return "an integer"
        case .real: return "a number"
        case .string: return "a string"
        case .list: return "a list"
        case .map: return "a map"
        }
    }

    /// The value of `key` in a map (nil for a missing key or a non-map).
    public subscript(key: String) -> ConfigValue? {
        guard case let .map(pairs) = self else { return nil }
        return pairs.first { $0.key == key }?.value
    }

    /// The value at a dotted path (`"model.norm.name"`); nil when any segment is missing.
    public func value(at path: String) -> ConfigValue? {
        var node: ConfigValue? = self
        for segment in ConfigPath.segments(path) {
            node = node?[segment]
            if node == nil { return nil }
        }
        return node
    }

    /// A copy with `value` stored at `path`, creating missing maps on the way. Throws when
    /// a segment on the way exists but is not a map (the path of that segment is given).
    public func setting(_ value: ConfigValue, at path: String) throws -> ConfigValue {
        try Self.set(value, in: self, segments: ArraySlice(ConfigPath.segments(path)), prefix: "")
    }

    private static func set(_ value: ConfigValue, in node: ConfigValue, segments: ArraySlice<String>, prefix: String) throws -> ConfigValue {
        guard let first = segments.first else { return value }
        guard case var .map(pairs) = node else {
            throw ConfigPathError(path: prefix.isEmpty ? "(root)" : prefix, found: node.kindName)
        }
        let here = prefix.isEmpty ? first : prefix + "." + first
        if let i = pairs.firstIndex(where: { $0.key == first }) {
            pairs[i].value = try set(value, in: pairs[i].value, segments: segments.dropFirst(), prefix: here)
        } else {
            pairs.append((first, try set(value, in: .map([]), segments: segments.dropFirst(), prefix: here)))
        }
        return .map(pairs)
    }

    /// `overlay` merged into this value: maps merge key by key (recursively), anything else
    /// is replaced.
    public func merging(_ overlay: ConfigValue) -> ConfigValue {
        guard case var .map(pairs) = self, case let .map(extra) = overlay else { return overlay }
        for (key, value) in extra {
            if let i = pairs.firstIndex(where: { $0.key == key }) {
                pairs[i].value = pairs[i].value.merging(value)
            } else {
                pairs.append((key, value))
            }
        }
        return .map(pairs)
    }

    /// Every leaf's dotted path (maps only; lists and scalars are leaves).
    public var leafPaths: [String] {
        guard case let .map(pairs) = self else { return [] }
        var out: [String] = []
        for (key, value) in pairs {
            if case let .map(inner) = value, !inner.isEmpty {
                out += value.leafPaths.map { key + "." + $0 }
            } else {
                out.append(key)
            }
        }
        return out
    }

    // MARK: text

    /// Compact text for tables and labels: `bn`, `0.1`, `true`, `[1, 2]`, `{name: gn}`.
    public var description: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .integer(i): return String(i)
        case let .real(d): return JSONWriter.number(d)
        case let .string(s): return s
        case let .list(items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case let .map(pairs): return "{" + pairs.map { "\($0.key): \($0.value.description)" }.joined(separator: ", ") + "}"
        }
    }

    /// A short label for tables and figures: scalars as in ``description``; a map with a
    /// `name` as `name(key=value, ...)` with its nested maps flattened (`options` drops out:
    /// `{name: gn, options: {num_groups: 4}}` → `gn(num_groups=4)`); other maps as `key=value, ...`.
    public var compactLabel: String {
        guard case let .map(pairs) = self else { return description }
        func flat(_ pairs: [(key: String, value: ConfigValue)], prefix: String) -> [String] {
            pairs.flatMap { k, v -> [String] in
                if case let .map(inner) = v { return flat(inner, prefix: k == "options" ? prefix : prefix + k + ".") }
                return ["\(prefix)\(k)=\(v.description)"]
            }
        }
        if let name = pairs.first(where: { $0.key == "name" })?.value {
            let rest = flat(pairs.filter { $0.key != "name" }, prefix: "")
            return name.description + (rest.isEmpty ? "" : "(" + rest.joined(separator: ", ") + ")")
        }
        return flat(pairs, prefix: "").joined(separator: ", ")
    }

    /// Canonical JSON: keys sorted (by UTF-8 bytes), no whitespace, numbers normalized
    /// (an integral real is written as an integer, `1.0` and `1` hash alike; other reals
    /// in the shortest form that reads back exactly). Non-finite reals become `null`.
    public var canonicalJSON: String {
        var out = ""
        JSONWriter.write(self, sorted: true, into: &out)
        return out
    }

    /// JSON in document order (re-readable as YAML, which is a superset of JSON); integral
    /// reals keep a `.0` so the tree reads back with the same types.
    public var orderedJSON: String {
        var out = ""
        JSONWriter.write(self, sorted: false, into: &out)
        return out
    }

    /// The SHA-256 of ``canonicalJSON``, hex.
    public var canonicalHash: String { SHA256.hex(canonicalJSON) }
}

extension ConfigValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: ConfigValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, ConfigValue)...) { self = .map(elements.map { (key: $0.0, value: $0.1) }) }
    public init(nilLiteral: ()) { self = .null }
}

/// A dotted path (`model.norm.name`) could not be followed because a segment is not a map.
public struct ConfigPathError: Error, CustomStringConvertible {
    public let path: String
    public let found: String
    public var description: String { "'\(path)' is \(found), not a map" }
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

    static func isValidSegment(_ s: String) -> Bool {
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
    static func join(_ base: String, _ path: String) -> String {
        if base.isEmpty { return path }
        if path.isEmpty { return base }
        return path.hasPrefix("[") ? base + path : base + "." + path
    }
}

/// JSON text for ``ConfigValue`` and plain Swift values.
public enum JSONWriter {
    public static func write(_ value: ConfigValue, sorted: Bool, into out: inout String) {
        switch value {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .integer(i): out += String(i)
        case let .real(d):
            if !d.isFinite { out += "null" } else if sorted { out += number(d) } else {
                // document order keeps a real a real (2.0 stays 2.0) so a stored spec reads back exactly
                let text = number(d)
                out += text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? text : text + ".0"
            }
        case let .string(s): string(s, into: &out)
        case let .list(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, sorted: sorted, into: &out)
            }
            out += "]"
        case let .map(pairs):
            out += "{"
            let ordered = sorted ? pairs.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) } : pairs
            for (i, pair) in ordered.enumerated() {
                if i > 0 { out += "," }
                string(pair.key, into: &out)
                out += ":"
                write(pair.value, sorted: sorted, into: &out)
            }
            out += "}"
        }
    }

    /// A finite double in JSON: integral values below 2^53 as integers (`2`), others in
    /// Swift's shortest round-trip form (`0.1`, `1e-05`).
    public static func number(_ d: Double) -> String {
        if d == 0 { return "0" }
        if d.rounded() == d && abs(d) < 9_007_199_254_740_992 { return String(Int64(d)) }
        return "\(d)"
    }

    public static func string(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    public static func quoted(_ s: String) -> String {
        var out = ""
        string(s, into: &out)
        return out
    }
}
