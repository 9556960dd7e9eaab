/// Lets a negative number follow an option: `--steps -1`, `--frozen-stages -1`, `--lr -0.5`.
///
/// ArgumentParser reads every token that starts with `-` as an option name, so `--steps -1`
/// used to fail with "Missing value for '--steps'" although the value is there. Such a pair
/// is joined into `--steps=-1` before parsing, so the value reaches the option's own range
/// check ("steps must be at least 1, got -1"); an unsigned option (seeds) that receives a
/// negative value gets a message saying so (``message(rewriting:)``).
enum NegativeNumberArguments {
    /// The arguments with every `--name <negative number>` pair joined as `--name=<number>`.
    static func joined(_ arguments: [String]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(arguments.count)
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            if token == "--" { out += arguments[index...]; break }
            if index + 1 < arguments.count, isLongOptionName(token), isNegativeNumber(arguments[index + 1]) {
                out.append(token + "=" + arguments[index + 1])
                index += 2
                continue
            }
            out.append(token)
            index += 1
        }
        return out
    }

    /// ArgumentParser's "The value '-1' is invalid for '--seed <seed>'" said plainly for a
    /// negative value: "--seed: the value -1 is negative; expected a whole number >= 0".
    /// Returns nil for every other message.
    static func message(rewriting text: String) -> String? {
        let prefix = "The value '", middle = "' is invalid for '"
        guard text.hasPrefix(prefix), let split = text.range(of: middle) else { return nil }
        let value = String(text[text.index(text.startIndex, offsetBy: prefix.count)..<split.lowerBound])
        guard isNegativeNumber(value) else { return nil }
        let option = text[split.upperBound...].prefix { $0 != " " && $0 != "'" }
        return "\(option): the value \(value) is negative; expected a whole number >= 0"
    }

    /// `--name` without an attached `=value`.
    static func isLongOptionName(_ token: String) -> Bool {
        token.hasPrefix("--") && token.count > 2 && !token.contains("=")
    }

    /// `-1`, `-0.5`, `-1e3`, `-.5`: a minus sign followed by a decimal number.
    static func isNegativeNumber(_ token: String) -> Bool {
        guard token.hasPrefix("-"), token.count > 1 else { return false }
        let body = token.dropFirst()
        guard let first = body.first, first.isASCII, first.isNumber || first == "." else { return false }
        return Double(body) != nil
    }
}
