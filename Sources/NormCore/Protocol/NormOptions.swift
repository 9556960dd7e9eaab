/// A method's options after validation against its schema: every schema key has a
/// value (given or default), every value has the declared kind, and no unknown key
/// survived. Plugins read these once, at construction, into typed configurations.
public struct NormOptions: Sendable, Equatable {
    /// The method the options belong to (for error messages).
    public let method: String
    /// Resolved values by option name.
    public let values: [String: OptionValue]
    /// The names the caller set explicitly (the rest are defaults).
    public let explicitlySet: Set<String>

    /// Validates `given` against `schema`: unknown keys, bad values and missing required
    /// options are errors naming the option.
    public init(method: String, schema: [OptionSpec], given: [String: OptionValue]) throws {
        var resolved: [String: OptionValue] = [:]
        let byName = Dictionary(uniqueKeysWithValues: schema.map { ($0.name.lowercased(), $0) })
        var explicit = Set<String>()
        for (key, value) in given {
            guard let spec = byName[key.lowercased()] else {
                throw NormError.unknownOption(method: method, option: key, known: schema.map(\.name))
            }
            resolved[spec.name] = try spec.validate(value, method: method)
            explicit.insert(spec.name)
        }
        for spec in schema where resolved[spec.name] == nil {
            guard let d = spec.defaultValue else { throw NormError.missingOption(method: method, option: spec.name) }
            resolved[spec.name] = d
        }
        self.method = method
        self.values = resolved
        self.explicitlySet = explicit
    }

    /// Parses `KEY=VALUE` texts (CLI `--set`) against the schema.
    public static func parse(method: String, schema: [OptionSpec], settings: [String]) throws -> [String: OptionValue] {
        var out: [String: OptionValue] = [:]
        for setting in settings {
            guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
                throw NormError.invalidConfiguration(method: method, reason: "setting '\(setting)' is not KEY=VALUE")
            }
            let key = String(setting[..<eq]).trimmingCharacters(in: .whitespaces)
            let text = String(setting[setting.index(after: eq)...])
            guard let spec = schema.first(where: { $0.name.lowercased() == key.lowercased() }) else {
                throw NormError.unknownOption(method: method, option: key, known: schema.map(\.name))
            }
            if out[spec.name] != nil {
                throw NormError.invalidConfiguration(method: method, reason: "option '\(spec.name)' is set twice")
            }
            out[spec.name] = try spec.parse(text, method: method)
        }
        return out
    }

    /// Whether the caller set `name` explicitly.
    public func isSet(_ name: String) -> Bool { explicitlySet.contains(name) }

    public func bool(_ name: String) -> Bool {
        if case let .bool(b)? = values[name] { return b }
        preconditionFailure("\(method): option \(name) is not a declared bool")
    }

    public func integer(_ name: String) -> Int {
        if case let .integer(i)? = values[name] { return i }
        preconditionFailure("\(method): option \(name) is not a declared integer")
    }

    public func real(_ name: String) -> Double {
        switch values[name] {
        case let .real(d)?: return d
        case let .integer(i)?: return Double(i)
        default: preconditionFailure("\(method): option \(name) is not a declared real")
        }
    }

    /// A real-or-none option: `nil` for `none`.
    public func optionalReal(_ name: String) -> Double? {
        switch values[name] {
        case let .real(d)?: return d
        case let .integer(i)?: return Double(i)
        case .none?: return nil
        default: preconditionFailure("\(method): option \(name) is not a declared real-or-none")
        }
    }

    public func choice(_ name: String) -> String {
        if case let .text(s)? = values[name] { return s }
        preconditionFailure("\(method): option \(name) is not a declared choice")
    }
}

import Foundation
