import Foundation
import NormCore
import NormNet
import Yams

/// One problem in a spec or a configuration, at a YAML path.
///
/// Paths are dotted with list indexes in brackets, exactly as written in the spec:
/// `base.optimizer.lr`, `grid.batch_size[2]`, `grid.zip[0].optimizer.lr`, `report.rows[1]`.
/// A ``CellRunner`` reports paths relative to the cell configuration (`optimizer.lr`); the
/// driver rewrites them to the spec path the value came from.
public struct ConfigProblem: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// 1-based line in the spec file, when known.
    public var line: Int?

    public init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    public var description: String { (path.isEmpty ? "" : path + ": ") + message }
}

/// A spec that cannot run: every problem found, each with its YAML path.
public struct SpecError: Error, CustomStringConvertible, Sendable {
    /// The spec file (or preset) the problems are in, for messages.
    public var source: String
    public var problems: [ConfigProblem]

    public init(source: String, problems: [ConfigProblem]) {
        self.source = source
        self.problems = problems
    }

    /// One line per problem: `spec.yaml:12: grid.batch_size[2]: must be a positive integer`.
    public var lines: [String] {
        problems.map { p in
            let location = p.line.map { "\(source):\($0)" } ?? source
            return "\(location): \(p.description)"
        }
    }

    public var description: String { lines.joined(separator: "\n") }
}

/// YAML text → ``ConfigValue`` with the line of every path, resolving plain scalars by the
/// YAML 1.2 core schema (Yams' default resolver is YAML 1.1, where `1e-3` is a string and
/// `no` is false). Quoted scalars are always strings; anchors and aliases are expanded;
/// duplicate keys, non-string keys and non-finite numbers (`.nan`, `.inf`) are errors.
public struct YAMLTree {
    public let root: ConfigValue
    /// Line of each YAML path (`base.model.depth`, `grid.batch_size[1]`).
    public let lines: [String: Int]

    public init(text: String, source: String) throws {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw SpecError(source: source, problems: [Self.problem(from: error)])
        } catch {
            throw SpecError(source: source, problems: [ConfigProblem(path: "", message: "not valid YAML: \(error)")])
        }
        guard let node else {
            throw SpecError(source: source, problems: [ConfigProblem(path: "", message: "the spec is empty")])
        }
        var lines: [String: Int] = [:]
        var problems: [ConfigProblem] = []
        let value = Self.convert(node, path: "", lines: &lines, problems: &problems)
        if !problems.isEmpty { throw SpecError(source: source, problems: problems) }
        root = value
        self.lines = lines
    }

    private static func problem(from error: YamlError) -> ConfigProblem {
        let text = error.description.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var line: Int? = nil
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _):
            line = mark.line
        case let .duplicatedKeysInMapping(_, context):
            line = context.mark.line
        default: break
        }
        let first = text.first.map { String($0) } ?? "\(error)"
        let message = first.hasPrefix("Parser: expected all keys to be unique")
            ? first.replacingOccurrences(of: "Parser: expected all keys to be unique but found the following duplicated key(s)", with: "duplicate key(s)")
            : first
        return ConfigProblem(path: "", message: "not valid YAML: \(message)", line: line)
    }

    private static func convert(_ node: Node, path: String, lines: inout [String: Int], problems: inout [ConfigProblem]) -> ConfigValue {
        if let mark = node.mark, lines[path] == nil { lines[path] = mark.line }
        switch node {
        case let .scalar(scalar):
            let value = resolve(scalar)
            if case let .real(d) = value, !d.isFinite {
                problems.append(ConfigProblem(path: path, message: "'\(scalar.string)' is not a finite number", line: node.mark?.line))
            }
            return value
        case let .sequence(sequence):
            return .list(sequence.enumerated().map { i, child in
                convert(child, path: "\(path)[\(i)]", lines: &lines, problems: &problems)
            })
        case let .mapping(mapping):
            var pairs: [(key: String, value: ConfigValue)] = []
            for (keyNode, valueNode) in mapping {
                guard case let .scalar(keyScalar) = keyNode else {
                    problems.append(ConfigProblem(path: path, message: "map keys must be plain strings", line: keyNode.mark?.line))
                    continue
                }
                let key = keyScalar.string
                let childPath = path.isEmpty ? key : path + "." + key
                if key == "<<" {
                    problems.append(ConfigProblem(path: childPath, message: "YAML merge keys ('<<') are not supported; write the values out or use an alias", line: keyNode.mark?.line))
                    continue
                }
                if pairs.contains(where: { $0.key == key }) {
                    problems.append(ConfigProblem(path: childPath, message: "duplicate key", line: keyNode.mark?.line))
                    continue
                }
                if let mark = keyNode.mark { lines[childPath] = mark.line }
                pairs.append((key, convert(valueNode, path: childPath, lines: &lines, problems: &problems)))
            }
            return .map(pairs)
        case let .alias(alias):
            problems.append(ConfigProblem(path: path, message: "unresolved alias *\(alias.anchor.rawValue)", line: node.mark?.line))
            return .null
        }
    }

    /// YAML 1.2 core schema for plain scalars; quoted/block scalars are strings.
    static func resolve(_ scalar: Node.Scalar) -> ConfigValue {
        let s = scalar.string
        guard scalar.style == .plain || scalar.style == .any else { return .string(s) }
        return resolvePlain(s)
    }

    static func resolvePlain(_ s: String) -> ConfigValue {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .real(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .real(-.infinity)
        case ".nan", ".NaN", ".NAN": return .real(.nan)
        default: break
        }
        if isDecimalInteger(s), let i = Int(s.hasPrefix("+") ? String(s.dropFirst()) : s) { return .integer(i) }
        if s.hasPrefix("0x"), let i = Int(s.dropFirst(2), radix: 16) { return .integer(i) }
        if s.hasPrefix("0o"), let i = Int(s.dropFirst(2), radix: 8) { return .integer(i) }
        if isFloat(s), let d = Double(s) { return .real(d) }
        return .string(s)
    }

    private static func isDecimalInteger(_ s: String) -> Bool {
        var body = Substring(s)
        if body.first == "-" || body.first == "+" { body = body.dropFirst() }
        return !body.isEmpty && body.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat(_ s: String) -> Bool {
        var chars = Array(s.utf8)[...]
        if chars.first == UInt8(ascii: "-") || chars.first == UInt8(ascii: "+") { chars = chars.dropFirst() }
        func digits() -> Int {
            var n = 0
            while let c = chars.first, c >= 48, c <= 57 { chars = chars.dropFirst(); n += 1 }
            return n
        }
        let intDigits = digits()
        var fracDigits = 0
        if chars.first == UInt8(ascii: ".") {
            chars = chars.dropFirst()
            fracDigits = digits()
        }
        if intDigits == 0 && fracDigits == 0 { return false }
        if let c = chars.first, c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            chars = chars.dropFirst()
            if chars.first == UInt8(ascii: "-") || chars.first == UInt8(ascii: "+") { chars = chars.dropFirst() }
            if digits() == 0 { return false }
        }
        return chars.isEmpty
    }
}

extension ConfigProblem: UserFacingError {}
extension SpecError: UserFacingError {}
