/// A hyper-parameter value as it crosses the boundary (CLI `--set`, YAML, Python).
/// Plugins decode these into typed configurations at construction.
public enum OptionValue: Sendable, Equatable, Hashable, CustomStringConvertible {
    case bool(Bool)
    case integer(Int)
    case real(Double)
    case text(String)
    /// Python's `None`, e.g. `momentum: none` (cumulative average).
    case none

    public var description: String {
        switch self {
        case let .bool(b): return b ? "true" : "false"
        case let .integer(i): return String(i)
        case let .real(d): return String(d)
        case let .text(s): return s
        case .none: return "none"
        }
    }
}

/// The type an option takes, which decides how text is parsed and how the value is shown.
public enum OptionKind: Sendable, Equatable {
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    case bool
    /// A whole number within bounds.
    case integer(ClosedRange<Int>)
    /// A finite real number within bounds.
    case real(ClosedRange<Double>)
    /// A real number within bounds, or `none`.
    case realOrNone(ClosedRange<Double>)
    /// One of a fixed set of words.
    case choice([String])

    /// Human-readable expectation, used in error messages and `describe`.
    public var expectation: String {
        switch self {
        case .bool: return "true or false"
        case let .integer(r): return r.upperBound == Int.max ? "an integer >= \(r.lowerBound)" : "an integer in [\(r.lowerBound), \(r.upperBound)]"
        case let .real(r): return "a number in " + Self.rangeText(r)
        case let .realOrNone(r): return "a number in " + Self.rangeText(r) + " or none"
        case let .choice(words): return "one of " + words.joined(separator: ", ")
        }
    }

    static func rangeText(_ r: ClosedRange<Double>) -> String {
        let lo = r.lowerBound == -.greatestFiniteMagnitude ? "-inf" : "\(r.lowerBound)"
        let hi = r.upperBound == .greatestFiniteMagnitude ? "inf" : "\(r.upperBound)"
        return "[\(lo), \(hi)]"
    }
}

/// One entry of a method's option schema: name, type, default and meaning.
public struct OptionSpec: Sendable, Equatable {
    public let name: String
    public let kind: OptionKind
    /// `nil` means the option is required.
    public let defaultValue: OptionValue?
    public let summary: String
    /// Values `normlab parity` tries besides the default (edge cases of this option); bool
    /// and choice options are tried at every value without being listed.
    public let samples: [OptionValue]

    public init(_ name: String, _ kind: OptionKind, default defaultValue: OptionValue?, _ summary: String,
                samples: [OptionValue] = []) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.summary = summary
        self.samples = samples
    }

    /// Every value parity should try: the declared samples, or all values of a bool or choice.
    public var parityValues: [OptionValue] {
        if !samples.isEmpty { return samples }
        switch kind {
        case .bool: return [.bool(true), .bool(false)]
        case let .choice(words): return words.map { .text($0) }
        default: return []
        }
    }

    /// Parses CLI text (`--set name=text`) into a value of this option's kind.
    public func parse(_ text: String, method: String) throws -> OptionValue {
        let t = text.trimmingCharacters(in: .whitespaces)
        let bad = NormError.invalidOption(method: method, option: name, value: text, expected: kind.expectation)
        switch kind {
        case .bool:
            switch t.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw bad
            }
        case .integer:
            guard let i = Int(t) else { throw bad }
            return try validate(.integer(i), method: method)
        case .real, .realOrNone:
            if case .realOrNone = kind, ["none", "null", "~"].contains(t.lowercased()) { return .none }
            guard let d = Double(t), d.isFinite else { throw bad }
            return try validate(.real(d), method: method)
        case let .choice(words):
            guard let w = words.first(where: { $0.lowercased() == t.lowercased() }) else { throw bad }
            return .text(w)
        }
    }

    /// Checks (and normalises, e.g. an integer given for a real) a typed value.
    public func validate(_ value: OptionValue, method: String) throws -> OptionValue {
        let bad = NormError.invalidOption(method: method, option: name, value: value.description, expected: kind.expectation)
        switch (kind, value) {
        case (.bool, .bool): return value
        case let (.integer(r), .integer(i)): guard r.contains(i) else { throw bad }; return value
        case let (.integer(r), .real(d)):
            guard d.rounded() == d, let i = Int(exactly: d), r.contains(i) else { throw bad }
            return .integer(i)
        case let (.real(r), .real(d)), let (.realOrNone(r), .real(d)):
            guard d.isFinite, r.contains(d) else { throw bad }; return value
        case let (.real(r), .integer(i)), let (.realOrNone(r), .integer(i)):
            guard r.contains(Double(i)) else { throw bad }; return .real(Double(i))
        case (.realOrNone, .none): return value
        case let (.choice(words), .text(s)):
            guard let w = words.first(where: { $0.lowercased() == s.lowercased() }) else { throw bad }
            return .text(w)
        case let (_, .text(s)): return try parse(s, method: method)
        default: throw bad
        }
    }
}

import Foundation
