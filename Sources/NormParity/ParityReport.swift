import Foundation
import NormCore

/// Aggregated parity of one method: the JSON record `normlab parity --json` writes.
public struct MethodParity: Sendable, Codable {
    public var method: String
    public var cases: Int
    public var failed: Int
    /// Cases the layer refused (options or shape outside what it accepts): not mismatches.
    public var skipped: Int
    /// Up to five skip reasons, `case: reason`.
    public var skipReasons: [String]
    public var maxAbsError: Double
    public var maxRelError: Double
    /// The case with the largest relative error (or the first failing case).
    public var worstCase: String
    /// Up to five failure messages, `case: message`.
    public var failures: [String]

    enum CodingKeys: String, CodingKey {
        case method, cases, failed, failures, skipped
        case skipReasons = "skip_reasons"
        case maxAbsError = "max_abs_error", maxRelError = "max_rel_error", worstCase = "worst_case"
    }

    public init(method: String, results: [ParityRunner.CaseResult]) {
        self.method = method
        cases = results.count
        let failing = results.filter { $0.failure != nil }
        failed = failing.count
        let refused = results.filter { $0.skipped != nil }
        skipped = refused.count
        skipReasons = refused.prefix(5).map { "\($0.name): \($0.skipped!)" }
        maxAbsError = results.map(\.maxAbsError).max() ?? 0
        maxRelError = results.map(\.maxRelError).max() ?? 0
        worstCase = failing.first?.name ?? results.max { $0.maxRelError < $1.maxRelError }?.name ?? ""
        failures = failing.prefix(5).map { "\($0.name): \($0.failure!)" }
    }
}

/// The whole parity run.
public struct ParityReport: Sendable, Codable {
    public var methods: [MethodParity]
    public var tolerance: Double
    public var seed: UInt64

    public init(methods: [MethodParity], seed: UInt64) {
        self.methods = methods
        self.tolerance = ParityRunner.tolerance
        self.seed = seed
    }

    /// Every method matched on every case it accepted, and accepted at least one.
    public var passed: Bool { methods.allSatisfy { $0.failed == 0 && $0.cases > $0.skipped } }

    /// The per-method table `normlab parity` prints.
    public var table: String {
        let rows = methods.map { m in
            [m.method, String(m.cases), String(m.failed), String(m.skipped), String(format: "%.2e", m.maxAbsError),
             String(format: "%.2e", m.maxRelError), m.worstCase]
        }
        var text = DescriptorText.render(header: ["method", "cases", "failed", "skipped", "max_abs_error", "max_rel_error", "worst_case"], rows: rows)
        for m in methods where !m.failures.isEmpty {
            text += "\n\n\(m.method) failures:\n" + m.failures.map { "  - " + $0 }.joined(separator: "\n")
        }
        for m in methods where !m.skipReasons.isEmpty {
            text += "\n\n\(m.method) skipped (refused by the layer):\n" + m.skipReasons.map { "  - " + $0 }.joined(separator: "\n")
        }
        return text
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}
