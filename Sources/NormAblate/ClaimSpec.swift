import Foundation
import NormCore
import NormNet

/// A claim a study tests, declared in the spec's `claims:` list and given a verdict by the
/// report (see ``ClaimResult``).
///
/// ```yaml
/// claims:
///   - name: BN degrades at small batch           # unique; other claims refer to it
///     metric: test_error
///     compare: {norm: bn, batch_size: 2}         # grid axis (path or short label): value → one cell
///     against: {norm: bn, batch_size: 32}
///     expect: greater                            # compare − against > 0 (or: less)
///   - name: GN's change is under a third of BN's
///     metric: test_error
///     compare: {norm: gn, batch_size: 2}
///     against: {norm: gn, batch_size: 32}
///     expect: {less_than_fraction: 0.333, of: BN degrades at small batch}
/// ```
///
/// The effect of a `greater`/`less` claim is the paired difference `compare − against` over
/// the seeds both cells ran. A fraction claim `{less_than_fraction: f, of: C}` says "this
/// change is smaller than f times C's change, in C's direction": its effect is the
/// difference of differences `s·(Δ − f·Δ_C)` per seed, with `s = +1` when C expects
/// `greater` and `−1` when C expects `less`, and the claim expects that effect to be below 0.
public struct ClaimSpec: Sendable, Equatable {
    public enum Expectation: Sendable, Equatable {
        /// compare − against > 0.
        case greater
        /// compare − against < 0.
        case less
        /// `s·(Δ − fraction·Δ_other) < 0`, see ``ClaimSpec``.
        case lessThanFraction(Double, of: String)

        /// `greater`, `less`, `< 0.333 × (BN degrades …)`.
        public var text: String {
            switch self {
            case .greater: return "greater"
            case .less: return "less"
            case let .lessThanFraction(f, other): return "less than \(AblationReport.number(f)) of '\(other)'"
            }
        }
    }

    /// A cell selector: axis (a path of the grid or its short label, as written) → value.
    public typealias Selector = [(key: String, value: ConfigValue)]

    public let name: String
    public let metric: String
    public let compare: Selector
    public let against: Selector
    public let expect: Expectation
    /// `claims[2]` (or `quick.claims[0]` in a quick variant, after location).
    public let yamlPath: String

    public static let keys = ["name", "metric", "compare", "against", "expect"]

    public static func == (a: ClaimSpec, b: ClaimSpec) -> Bool {
        a.name == b.name && a.metric == b.metric && a.expect == b.expect && a.yamlPath == b.yamlPath
            && a.compare.map(\.key) == b.compare.map(\.key) && a.compare.map(\.value) == b.compare.map(\.value)
            && a.against.map(\.key) == b.against.map(\.key) && a.against.map(\.value) == b.against.map(\.value)
    }

    /// Parses the `claims` list structurally (cells are resolved by
    /// ``AblationSpec/validateClaims(cells:runner:)``).
    static func parseList(_ value: ConfigValue?, problem: (String, String) -> Void) -> [ClaimSpec] {
        guard let value, !value.isNull else { return [] }
        guard let items = value.listValue else {
            problem("claims", "must be a list of {name, metric, compare, against, expect} maps")
            return []
        }
        var claims: [ClaimSpec] = []
        var names: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            let path = "claims[\(i)]"
            guard let pairs = item.mapValue else { problem(path, "must be a map {name, metric, compare, against, expect}"); continue }
            var ok = true
            func fail(_ p: String, _ m: String) { problem(p, m); ok = false }
            for (key, _) in pairs where !keys.contains(key) {
                fail("\(path).\(key)", "unknown key (expected one of: \(keys.joined(separator: ", ")))")
            }
            let name = item["name"]?.stringValue ?? ""
            if name.trimmingCharacters(in: .whitespaces).isEmpty { fail("\(path).name", "is required (a non-empty string naming the claim)") }
            if let j = names[name], !name.isEmpty { fail("\(path).name", "'\(name)' is already the name of claims[\(j)]") }
            names[name] = i
            let metric = item["metric"]?.stringValue ?? ""
            if metric.isEmpty { fail("\(path).metric", "is required (the metric the claim is about, e.g. test_error)") }
            func selector(_ key: String) -> Selector {
                guard let v = item[key] else { fail("\(path).\(key)", "is required: a map of grid axis: value selecting one cell"); return [] }
                guard let map = v.mapValue, !map.isEmpty else { fail("\(path).\(key)", "must be a non-empty map of grid axis: value selecting one cell"); return [] }
                return map
            }
            let compare = selector("compare"), against = selector("against")
            var expect = Expectation.greater
            switch item["expect"] {
            case nil: fail("\(path).expect", "is required: greater, less or {less_than_fraction: F, of: CLAIM}")
            case let .string(s)?:
                switch s {
                case "greater": expect = .greater
                case "less": expect = .less
                default: fail("\(path).expect", "'\(s)' is not an expectation (greater, less or {less_than_fraction: F, of: CLAIM})")
                }
            case let .map(m)?:
                for (key, _) in m where key != "less_than_fraction" && key != "of" {
                    fail("\(path).expect.\(key)", "unknown key (expected less_than_fraction, of)")
                }
                let f = item["expect"]?["less_than_fraction"]?.doubleValue
                let other = item["expect"]?["of"]?.stringValue
                if f == nil || !(f! > 0) || !f!.isFinite { fail("\(path).expect.less_than_fraction", "must be a positive number (e.g. 0.333)") }
                if other == nil || other!.isEmpty { fail("\(path).expect.of", "must name another claim (a greater or less claim)") }
                if let f, let other { expect = .lessThanFraction(f, of: other) }
            case let other?: fail("\(path).expect", "must be greater, less or {less_than_fraction: F, of: CLAIM}, got \(other.kindName)")
            }
            if ok { claims.append(ClaimSpec(name: name, metric: metric, compare: compare, against: against, expect: expect, yamlPath: path)) }
        }
        // references between claims
        for c in claims {
            guard case let .lessThanFraction(_, other) = c.expect else { continue }
            guard let target = claims.first(where: { $0.name == other }) else {
                problem("\(c.yamlPath).expect.of", "no claim is named '\(other)' (claims: \(claims.map { "'\($0.name)'" }.joined(separator: ", ")))")
                continue
            }
            if target.name == c.name { problem("\(c.yamlPath).expect.of", "a claim cannot be a fraction of itself") }
            else if case .lessThanFraction = target.expect {
                problem("\(c.yamlPath).expect.of", "'\(other)' is itself a fraction claim; refer to a greater or less claim")
            }
        }
        return claims
    }

    /// The claim `of` refers to, for a fraction claim.
    func reference(in claims: [ClaimSpec]) -> ClaimSpec? {
        guard case let .lessThanFraction(_, other) = expect else { return nil }
        return claims.first { $0.name == other }
    }
}

/// Resolves a claim's selectors to cells.
struct CellSelection {
    let cells: [Cell]
    /// Short label → column path, and every column path to itself.
    let paths: [String: String]

    init(spec: AblationSpec, cells: [Cell]) {
        self.cells = cells
        var paths: [String: String] = [:]
        for (path, label) in spec.columnLabels { paths[label] = path }
        for axis in spec.axes { for p in axis.paths { paths[p] = p } }
        self.paths = paths
    }

    /// The cells a selector matches, or a problem (a key that is no axis).
    func match(_ selector: ClaimSpec.Selector) -> Result<[Cell], SelectionError> {
        var resolved: [(path: String, value: ConfigValue)] = []
        for (key, value) in selector {
            guard let path = paths[key] else {
                return .failure(SelectionError(key: key, message: "'\(key)' is not a grid axis (axes: \(paths.keys.sorted().joined(separator: ", ")))"))
            }
            resolved.append((path, value))
        }
        return .success(cells.filter { cell in
            resolved.allSatisfy { r in cell.setting(r.path).map { Self.matches($0, r.value) } ?? false }
        })
    }

    /// The single cell a selector matches, or nil.
    func cell(_ selector: ClaimSpec.Selector) -> Cell? {
        guard case let .success(found) = match(selector), found.count == 1 else { return nil }
        return found[0]
    }

    /// An axis value matches a selector value when equal (numbers numerically), when the
    /// selector is its table label (`gn(num_groups=4)`), or when it is a `{name: ...}` map and
    /// the selector is the name (`gn`).
    static func matches(_ value: ConfigValue, _ wanted: ConfigValue) -> Bool {
        if BaselineComparison.same(value, wanted) { return true }
        guard let s = wanted.stringValue else { return false }
        if value.compactLabel == s { return true }
        if case .map = value, value["name"]?.stringValue == s { return true }
        return false
    }

    struct SelectionError: Error {
        let key: String
        let message: String
    }
}

extension AblationSpec {
    /// Checks that every claim selects exactly one cell for `compare` and for `against`, that
    /// the two differ, and (when the runner names its metrics) that the metric exists. Throws
    /// a ``SpecError`` naming the claim's spec path; call before the store is created.
    public func validateClaims(cells: [Cell], runner: (any CellRunner)? = nil) throws {
        guard !claims.isEmpty || seedPolicy != nil else { return }
        var problems: [ConfigProblem] = []
        let selection = CellSelection(spec: self, cells: cells)
        for claim in claims {
            var chosen: [Cell] = []
            for (key, selector) in [("compare", claim.compare), ("against", claim.against)] {
                let path = "\(claim.yamlPath).\(key)"
                let wanted = selector.map { "\($0.key)=\($0.value.compactLabel)" }.joined(separator: ", ")
                switch selection.match(selector) {
                case let .failure(e): problems.append(ConfigProblem(path: "\(path).\(e.key)", message: e.message))
                case let .success(found) where found.isEmpty:
                    problems.append(ConfigProblem(path: path, message: "no cell of the grid has \(wanted)"))
                case let .success(found) where found.count > 1:
                    problems.append(ConfigProblem(path: path, message: "\(found.count) cells have \(wanted) (e.g. \(found[0].label); \(found[1].label)): name more axes so that it selects one cell"))
                case let .success(found): chosen.append(found[0])
                }
            }
            if chosen.count == 2, chosen[0].hash == chosen[1].hash {
                problems.append(ConfigProblem(path: "\(claim.yamlPath).against", message: "selects the same cell as compare (\(chosen[0].label))"))
            }
            if let names = runner?.metricNames {
                let known = names + (report.baseline == nil ? [] : [BaselineSpec.derivedMetric])
                if !known.contains(claim.metric) {
                    problems.append(ConfigProblem(path: "\(claim.yamlPath).metric", message: "runner '\(runner!.name)' reports no metric '\(claim.metric)' (it reports: \(known.joined(separator: ", ")))"))
                }
            }
        }
        if seedPolicy != nil && claims.isEmpty {
            problems.append(ConfigProblem(path: "seeds.until_ci_halfwidth", message: "adds seeds to the cells the claims compare, but the spec has no claims"))
        }
        if !problems.isEmpty { throw SpecError(source: source, problems: problems.map(located)) }
    }
}
