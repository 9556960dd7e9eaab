import Foundation
import NormCore
import NormNet

/// The claims' verdicts and the paired differences in the report's renderings.
extension AblationReport {
    /// `+0.0123`, signed.
    static func signed(_ x: Double) -> String { (x >= 0 ? "+" : "") + number(x) }

    static func interval(_ test: PairedTest?) -> String {
        guard let i = test?.interval, let lo = i.lower, let hi = i.upper else { return "—" }
        return "[\(signed(lo)), \(signed(hi))]"
    }

    static func pValue(_ p: Double?) -> String {
        guard let p else { return "—" }
        if p < 1e-4 { return String(format: "%.1e", p) }
        return String(format: "%.4f", p)
    }

    /// `compare vs against` in short axis labels.
    func claimCells(_ r: ClaimResult) -> String {
        guard let c = r.compareCell, let a = r.againstCell else { return "—" }
        return "\(varyingLabel(c)) vs \(varyingLabel(a))"
    }

    /// A cell's values on the axes that vary between cells (`norm=bn, batch_size=2`).
    func varyingLabel(_ cell: Cell) -> String {
        let parts = spec.axes.indices.filter { spec.axes[$0].count > 1 }.map { "\(axisLabel($0))=\(valueText($0, cell.coordinates[$0]))" }
        return parts.isEmpty ? "all" : parts.joined(separator: ", ")
    }

    /// What a claim's effect is, in words.
    func effectDefinition(_ r: ClaimResult) -> String {
        switch r.claim.expect {
        case .greater: return "Δ \(r.claim.metric) > 0"
        case .less: return "Δ \(r.claim.metric) < 0"
        case let .lessThanFraction(f, other): return "Δ − \(Self.number(f))·Δ('\(other)') < 0 (in its direction)"
        }
    }

    /// One row per claim: cells, the expected sign, the effect with its CI, p, seeds, MDE, verdict.
    public func claimsMarkdown() -> String {
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| claim | cells (compare vs against) | expects | means | effect | 95 % CI | p | seeds | MDE | verdict |\n"
        out += "|---|---|---|---:|---:|---:|---:|---:|---:|---|\n"
        for r in claimResults {
            let means = zip([r.compareMean], [r.againstMean]).map { a, b in
                (a.map(Self.number) ?? "—") + " vs " + (b.map(Self.number) ?? "—")
            }[0]
            let ratio = r.ratio.map { " (ratio \(Self.number($0)))" } ?? ""
            let verdict = "**\(r.verdict.rawValue)**" + (r.note.map { " (\($0))" } ?? "")
            let cols = [r.claim.name, claimCells(r), effectDefinition(r), means,
                        (r.test.map { Self.signed($0.mean) } ?? "—") + ratio, Self.interval(r.test), Self.pValue(r.test?.p),
                        r.test.map { String($0.n) } ?? "0", r.test?.minimalDetectableEffect.map(Self.number) ?? "—", verdict]
            out += "| " + cols.map(esc).joined(separator: " | ") + " |\n"
        }
        out += "\n" + claimsLegend + "\n"
        return out
    }

    public var claimsLegend: String {
        "Effect: the paired difference compare − against over the seeds both cells ran (a fraction claim: "
            + "s·(Δ − f·Δ_ref) per seed, s = +1 when the referenced claim expects greater, −1 when less; expected < 0). "
            + "supported: the 95 % t-interval of the effect lies on the expected side of 0; contradicted: on the other side; "
            + "inconclusive: it includes 0. p: two-sided paired t-test of effect = 0 (per claim, not corrected). "
            + "MDE: the smallest effect these seeds detect with 80 % power at α = 0.05, (t(0.975, n−1) + t(0.80, n−1))·s_d/√n."
    }

    /// One row per (cell, metric): the paired difference against the baseline cell.
    public func differencesMarkdown() -> String {
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var out = "| cell | metric | Δ mean | 95 % CI | p | p (Holm) | seeds | MDE |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
        for d in baselineDifferences {
            let cols = [varyingLabel(d.cell), d.metric, d.test.map { Self.signed($0.mean) } ?? "—", Self.interval(d.test),
                        Self.pValue(d.test?.p), Self.pValue(d.holmP), d.test.map { String($0.n) } ?? "0",
                        d.test?.minimalDetectableEffect.map(Self.number) ?? "—"]
            out += "| " + cols.map(esc).joined(separator: " | ") + " |\n"
        }
        out += "\nΔ = cell − baseline per seed (paired over the seeds both ran); p: two-sided paired t-test; "
            + "p (Holm): Holm-corrected across the \(baselineDifferences.filter { $0.holmP != nil }.count) tests of this table.\n"
        return out
    }

    static func testJSON(_ t: PairedTest?) -> [(key: String, value: ConfigValue)] {
        [("effect", jsonNumber(t?.mean)), ("ci_low", jsonNumber(t?.interval.lower)), ("ci_high", jsonNumber(t?.interval.upper)),
         ("ci_halfwidth", jsonNumber(t?.interval.halfWidth)), ("std", jsonNumber(t?.interval.std)),
         ("t", jsonNumber(t?.t)), ("p", jsonNumber(t?.p)), ("n", .integer(t?.n ?? 0)),
         ("mde", jsonNumber(t?.minimalDetectableEffect))]
    }

    var claimsJSON: ConfigValue {
        .list(claimResults.map { r in
            var expect: ConfigValue = .string(r.claim.expect.text)
            if case let .lessThanFraction(f, other) = r.claim.expect {
                expect = .map([("less_than_fraction", .real(f)), ("of", .string(other))])
            }
            return .map([
                ("name", .string(r.claim.name)), ("metric", .string(r.claim.metric)), ("expect", expect),
                ("compare", .string(r.compareCell.map(varyingLabel) ?? "")), ("against", .string(r.againstCell.map(varyingLabel) ?? "")),
                ("compare_hash", r.compareCell.map { .string($0.hash) } ?? .null),
                ("against_hash", r.againstCell.map { .string($0.hash) } ?? .null),
                ("compare_mean", Self.jsonNumber(r.compareMean)), ("against_mean", Self.jsonNumber(r.againstMean)),
                ("ratio", Self.jsonNumber(r.ratio)),
            ] + Self.testJSON(r.test) + [
                ("verdict", .string(r.verdict.rawValue)), ("note", r.note.map { .string($0) } ?? .null),
            ])
        })
    }

    var differencesJSON: ConfigValue {
        .list(baselineDifferences.map { d in
            .map([("cell", .string(varyingLabel(d.cell))), ("cell_hash", .string(d.cell.hash)), ("metric", .string(d.metric))]
                 + Self.testJSON(d.test) + [("p_holm", Self.jsonNumber(d.holmP))])
        })
    }

    /// The claims figure: each claim's effect with its 95 % CI and a line at 0.
    var claimsFigurePayload: ConfigValue? {
        guard !claimResults.isEmpty else { return nil }
        return .map([
            ("kind", "claims"), ("name", "claims-effects"),
            ("title", .string("\(study.name): claims — effect with 95 % CI (paired over seeds)")),
            ("claims", .list(claimResults.map { r in
                .map([("label", .string(r.claim.name)), ("effect", Self.jsonNumber(r.test?.mean)),
                      ("ci_low", Self.jsonNumber(r.test?.interval.lower)), ("ci_high", Self.jsonNumber(r.test?.interval.upper)),
                      ("expect_below_zero", .bool(r.claim.expect != .greater)), ("verdict", .string(r.verdict.rawValue)),
                      ("definition", .string(effectDefinition(r)))])
            })),
        ])
    }
}
