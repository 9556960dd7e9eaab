import NormCore
import Foundation

/// JSON text for ``ConfigValue`` and plain Swift values.
public enum JSONWriter {
    /// `value` as JSON. `sorted`: keys sorted by UTF-8 bytes and integral reals written as
    /// integers (``ConfigValue/canonicalJSON``); otherwise document order, and a real stays a
    /// real (`2.0`). `spaced`: a space after every `,` and `:` (``ConfigValue/rendered()``),
    /// otherwise no whitespace. Non-finite reals become `null`.
    public static func write(_ value: ConfigValue, sorted: Bool, spaced: Bool = false, into out: inout String) {
        switch value {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .integer(i): out += String(i)
        case let .unsigned(u): out += String(u)
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
                if i > 0 { out += spaced ? ", " : "," }
                write(item, sorted: sorted, spaced: spaced, into: &out)
            }
            out += "]"
        case let .map(pairs):
            out += "{"
            let ordered = sorted ? pairs.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) } : pairs
            for (i, pair) in ordered.enumerated() {
                if i > 0 { out += spaced ? ", " : "," }
                string(pair.key, into: &out)
                out += spaced ? ": " : ":"
                write(pair.value, sorted: sorted, spaced: spaced, into: &out)
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
