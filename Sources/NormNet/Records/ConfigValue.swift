import NormCore
/// A typed, ordered tree of JSON/YAML values: the form every configuration takes inside the
/// ablation driver (a spec's `base`, grid values, a cell's resolved configuration, a run's
/// telemetry) and the object `normlab train --json` prints (`RunReport`). Maps keep their
/// document order (grid axes are expanded in that order), but the canonical JSON used for
/// hashing sorts keys, so order never changes a hash.
///
/// Scalars follow the YAML 1.2 core schema (NormAblate's `YAMLTree` reads them): `true`/`false`
/// are booleans, `yes`/`no` are strings; `1` is an ``integer(_:)``, `1.0`, `1e-3` are ``real(_:)``.
public indirect enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int)
    /// An unsigned integer, for values above `Int.max` (a `UInt64` seed); equal to the
    /// ``integer(_:)`` of the same value and written the same way.
    case unsigned(UInt64)
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
        case let (.unsigned(x), .unsigned(y)): return x == y
        case let (.integer(x), .unsigned(y)), let (.unsigned(y), .integer(x)): return UInt64(exactly: x) == y
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
        case let .unsigned(u): return Int(exactly: u)
        case let .real(d) where d.rounded() == d && abs(d) < 9.0e15: return Int(d)
        default: return nil
        }
    }

    /// Any number as a `Double` (integers included).
    public var doubleValue: Double? {
        switch self {
        case let .integer(i): return Double(i)
        case let .unsigned(u): return Double(u)
        case let .real(d): return d
        default: return nil
        }
    }

    /// A short name of the kind of value, for messages ("a map", "a string").
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .unsigned: return "an integer"
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
        case let .unsigned(u): return String(u)
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

    /// One line of JSON in document order with a space after every `,` and `:` (the
    /// `normlab train --json` line); numbers as in ``orderedJSON``.
    public func rendered() -> String {
        var out = ""
        JSONWriter.write(self, sorted: false, spaced: true, into: &out)
        return out
    }

    /// The SHA-256 of ``canonicalJSON``, hex.
    public var canonicalHash: String { SHA256.hex(canonicalJSON) }
}

extension ConfigValue {
    /// `nil` → ``null``.
    public static func optional(_ d: Double?) -> ConfigValue { d.map(ConfigValue.real) ?? .null }
    public static func optional(_ s: String?) -> ConfigValue { s.map(ConfigValue.string) ?? .null }
    public static func optional(_ i: Int?) -> ConfigValue { i.map(ConfigValue.integer) ?? .null }

    /// A norm option's value (`OptionValue.none` → ``null``).
    public init(_ option: OptionValue) {
        switch option {
        case let .bool(b): self = .bool(b)
        case let .integer(i): self = .integer(i)
        case let .real(d): self = .real(d)
        case let .text(s): self = .string(s)
        case .none: self = .null
        }
    }
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

