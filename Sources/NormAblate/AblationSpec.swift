import Foundation
import NormCore
import NormNet

/// One grid axis: a plain axis (one dotted path and its values) or a zip group (several
/// paths whose value lists move together, e.g. batch size with learning rate).
public struct GridAxis: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        /// Dotted config path the values are written to.
        public let path: String
        public let values: [ConfigValue]
        /// Where the list is in the spec: `grid.batch_size`, `grid.zip[0].optimizer.lr`.
        public let yamlPath: String
    }

    public let columns: [Column]
    /// The index of the zip group (`grid.zip[i]`), nil for a plain axis.
    public let zipIndex: Int?

    public var count: Int { columns.first?.values.count ?? 0 }
    public var paths: [String] { columns.map(\.path) }
    /// `model.norm.name`, or `batch_size+optimizer.lr` for a zip group.
    public var name: String { paths.joined(separator: "+") }

    /// Whether `path` names this axis (any of its columns).
    public func matches(_ path: String) -> Bool { paths.contains(path) }
}

/// The value one axis gave a cell, with where it came from in the spec.
public struct AxisSetting: Sendable, Equatable {
    public let path: String
    public let value: ConfigValue
    /// `grid.batch_size[2]`, `grid.zip[0].optimizer.lr[1]`.
    public let yamlPath: String
}

/// One point of the grid: its index in expansion order, resolved configuration and the axis
/// values that made it.
public struct Cell: Sendable, Equatable {
    public let index: Int
    public let config: CellConfig
    /// One entry per axis column, in axis order.
    public let settings: [AxisSetting]
    /// Position along each axis (one per ``AblationSpec/axes`` entry).
    public let coordinates: [Int]

    public var hash: String { config.hash }

    /// The value the cell has for an axis path.
    public func setting(_ path: String) -> ConfigValue? { settings.first { $0.path == path }?.value }

    /// `model.norm.name=bn, batch_size=2` (empty for a grid without axes).
    public var label: String { settings.map { "\($0.path)=\($0.value)" }.joined(separator: ", ") }

    public static func == (a: Cell, b: Cell) -> Bool { a.index == b.index && a.config == b.config }
}

/// A figure in the report.
public struct PlotSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Final metric, mean ± std over seeds, one bar per cell grouped by rows.
        case bar
        /// A per-epoch curve, mean over seeds with a ±std band, one line per cell.
        case curve
        /// Final metric against a numeric grid axis (`x`), mean ± std over seeds, one line per
        /// combination of the other axes — e.g. test error against batch size per method.
        case line
    }
    public var kind: Kind
    public var metric: String
    /// File stem of the figure (`<name>.png`, `<name>.svg`).
    public var name: String
    public var title: String?
    /// `line`: the grid axis on the x axis (default: the first column axis). `curve`: `epoch`
    /// (default), `steps` (the runs' `steps` curve: optimizer steps at each point) or any other
    /// step curve the runs record (a name ending in `_steps`), giving each point's x (e.g.
    /// `eval_steps`, `probe_steps`).
    public var x: String? = nil
    /// Logarithmic x axis (base 2), e.g. for batch sizes.
    public var logX = false
    /// A `curve` plot of several curves (`metric: [probe_p15, probe_p50, probe_p85]`): one line
    /// per cell and curve, a color per cell and a dash per curve. Empty: the one `metric`.
    public var curves: [String] = []

    /// The curves a `curve` plot draws.
    public var curveMetrics: [String] { curves.isEmpty ? [metric] : curves }
}

/// The cell a report compares every run with (`report.baseline`): the derived metric
/// `steps_to_baseline` is, per run, the first step at which its per-epoch `metric` curve
/// reached the baseline cell's mean final `metric` (Ioffe & Szegedy 2015, Figure 2's
/// "steps to match Inception"); runs that never reach it get no value.
public struct BaselineSpec: Sendable, Equatable {
    /// Axis path → value selecting exactly one cell.
    public var settings: [String: ConfigValue]
    /// A metric that is also a per-epoch curve (default `test_accuracy`); higher is better.
    public var metric: String

    /// Name of the derived metric.
    public static let derivedMetric = "steps_to_baseline"
}

/// How the report lays out the aggregated table.
public struct ReportSpec: Sendable, Equatable {
    /// Axis paths forming the rows (every axis not in `columns` when not given).
    public var rows: [String]
    /// Axis paths forming column groups (metrics are always columns).
    public var columns: [String]
    /// Metrics to show, in order (every metric found in the results when empty).
    public var metrics: [String]
    public var plots: [PlotSpec]
    public var baseline: BaselineSpec? = nil
}

/// A parsed, structurally valid ablation spec.
///
/// ```yaml
/// name: norm-vs-batch            # names the study (and its default store results/<name>.sqlite)
/// description: GN vs BN across batch sizes
/// base:                          # the configuration every cell starts from (runner-defined keys)
///   model: {depth: 4, width: 16, norm: {name: bn, options: {}}}
///   optimizer: {lr: 0.1, momentum: 0.9}
///   batch_size: 32
///   epochs: 10
/// grid:                          # cartesian product of the axes, in this order (last varies fastest)
///   model.norm.name: [bn, gn]    # an axis: a dotted path into base and its values
///   zip:                         # groups whose lists move together (one axis each)
///     - batch_size: [2, 8, 32]
///       optimizer.lr: [0.00625, 0.025, 0.1]
/// seeds: 3                       # repeat dimension: 3 → seeds 0,1,2; or a list [0, 7, 9];
///                                # or {min: 5, max: 20, until_ci_halfwidth: 0.005} (SeedPolicy)
/// report:
///   rows: [model.norm.name]      # axis paths (default: every axis not in columns)
///   columns: [batch_size]
///   metrics: [test_accuracy]     # default: every metric in the results
///   plots:
///     - {kind: bar, metric: test_accuracy}
///     - {kind: curve, metric: test_accuracy, name: acc-curves}
/// claims:                        # verdicts the report computes (ClaimSpec)
///   - {name: BN degrades at small batch, metric: test_error, compare: {norm: bn, batch_size: 2},
///      against: {norm: bn, batch_size: 32}, expect: greater}
/// quick:                         # optional smaller variant (--quick): merged into the above
///   base: {epochs: 2}
///   grid: {model.norm.name: [bn]}
///   seeds: 1
///   claims: [...]                # replaces claims (a quick grid may lack their cells)
/// paper:                         # optional larger variant (--scale paper; StudyScale), same keys:
///   base: {model: {depth: 56}}   # grid values may also grow (more batch sizes, seeds)
/// ```
public struct AblationSpec: Sendable {
    public static let topLevelKeys = ["name", "description", "base", "grid", "seeds", "report", "claims"] + StudyScale.sections
    public static let reportKeys = ["rows", "columns", "metrics", "plots", "baseline"]
    public static let plotKeys = ["kind", "metric", "name", "title", "x", "log_x"]
    /// The keys of a variant section (`quick:`, `paper:`).
    public static let variantKeys = ["base", "grid", "seeds", "claims"]

    public let name: String
    public let description: String?
    /// The configuration every cell starts from (a map).
    public let base: ConfigValue
    public let axes: [GridAxis]
    /// The repeat dimension (never part of a cell's configuration).
    public let seeds: [UInt64]
    /// `seeds: {min, max, until_ci_halfwidth}`: more seeds for the claims' cells until their
    /// effects are clear (then ``seeds`` are the first `min`).
    public let seedPolicy: SeedPolicy?
    public let report: ReportSpec
    /// The claims the report gives verdicts on (`claims:`; `quick.claims` in a quick variant).
    public let claims: [ClaimSpec]
    /// Which variant of its spec this is (`quick` and `paper` variants are named `<name>-quick`,
    /// `<name>-paper`).
    public let scale: StudyScale
    /// Whether this is the `--quick` variant of a spec.
    public var isQuick: Bool { scale == .quick }
    /// The scales this spec defines a section for (besides `full`, which is the spec itself).
    public let variantScales: [StudyScale]
    /// Whether the spec has a `quick` section.
    public var hasQuick: Bool { variantScales.contains(.quick) }
    /// Where the spec came from (file path, `preset freeze`), for messages.
    public let source: String
    /// The spec as written (or, for a quick variant, the effective spec) in document order
    /// as JSON (which YAML reads back): what the store keeps.
    public let effectiveJSON: String
    /// SHA-256 of the canonical JSON of name, base, grid (in axis order) and seeds: two
    /// specs with the same hash define the same study. `description` and `report` are left
    /// out, so changing the report layout never invalidates results.
    public let hash: String

    private let tree: ConfigValue
    private let lines: [String: Int]
    /// Spec path prefix → where it was written (for a quick variant: `base.x` → `quick.base.x`).
    private let origins: [String: String]

    /// Parses and checks the structure of a spec (not yet the cells: see ``cells(validatingWith:)``).
    public static func parse(yaml text: String, source: String) throws -> AblationSpec {
        let tree = try YAMLTree(text: text, source: source)
        return try AblationSpec(tree: tree.root, lines: tree.lines, source: source, origins: [:], scale: .full)
    }

    /// Reads a spec file.
    public static func load(path: String) throws -> AblationSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AblationError("cannot read spec \(path)")
        }
        return try parse(yaml: String(decoding: data, as: UTF8.self), source: path)
    }

    private init(tree: ConfigValue, lines: [String: Int], source: String, origins: [String: String], scale: StudyScale) throws {
        self.tree = tree
        self.lines = lines
        self.source = source
        self.origins = origins
        self.scale = scale
        var problems: [ConfigProblem] = []
        func problem(_ path: String, _ message: String) { problems.append(ConfigProblem(path: path, message: message)) }

        guard let top = tree.mapValue else {
            throw SpecError(source: source, problems: [ConfigProblem(path: "", message: "a spec must be a map with name, base, grid, seeds, report")])
        }
        for (key, _) in top where !Self.topLevelKeys.contains(key) {
            problem(key, "unknown key (expected one of: \(Self.topLevelKeys.joined(separator: ", ")))")
        }

        // name
        var name = ""
        switch tree["name"] {
        case nil: problem("name", "is required (it names the study and its default store)")
        case let .string(s)?:
            if Self.isValidName(s) { name = s } else {
                problem("name", "'\(s)' must be letters, digits, '-', '_' or '.', starting with a letter or digit")
            }
        case let other?: problem("name", "must be a string, got \(other.kindName)")
        }
        self.name = name

        switch tree["description"] {
        case nil, .null?: description = nil
        case let .string(s)?: description = s
        case let other?: description = nil; problem("description", "must be a string, got \(other.kindName)")
        }

        // base
        switch tree["base"] {
        case nil: base = .map([]); problem("base", "is required (the configuration every cell starts from)")
        case let .map(pairs)?:
            base = .map(pairs)
            for (key, _) in pairs where !ConfigPath.isValidSegment(key) {
                problem("base.\(key)", "keys must be identifiers (letters, digits, '_', '-')")
            }
        case let other?: base = .map([]); problem("base", "must be a map, got \(other.kindName)")
        }

        // grid
        var axes: [GridAxis] = []
        if let grid = tree["grid"], !grid.isNull {
            if let pairs = grid.mapValue {
                for (key, value) in pairs {
                    if key == "zip" {
                        guard let groups = value.listValue else {
                            problem("grid.zip", "must be a list of groups (maps of path: [values] with lists of equal length)")
                            continue
                        }
                        if groups.isEmpty { problem("grid.zip", "has no groups") }
                        for (g, group) in groups.enumerated() {
                            let gPath = "grid.zip[\(g)]"
                            guard let columns = group.mapValue, !columns.isEmpty else {
                                problem(gPath, group.mapValue == nil ? "must be a map of path: [values]" : "is empty")
                                continue
                            }
                            var built: [GridAxis.Column] = []
                            for (path, list) in columns {
                                let yamlPath = "\(gPath).\(path)"
                                if let column = Self.column(path: path, list: list, yamlPath: yamlPath, problem: problem) { built.append(column) }
                            }
                            if built.count == columns.count, let first = built.first {
                                for c in built.dropFirst() where c.values.count != first.values.count {
                                    problem(c.yamlPath, "has \(c.values.count) values but \(first.yamlPath) has \(first.values.count): the lists of a zip group move together and must have the same length")
                                }
                            }
                            if built.count == columns.count { axes.append(GridAxis(columns: built, zipIndex: g)) }
                        }
                    } else if let column = Self.column(path: key, list: value, yamlPath: "grid.\(key)", problem: problem) {
                        axes.append(GridAxis(columns: [column], zipIndex: nil))
                    }
                }
            } else {
                problem("grid", "must be a map of path: [values] (and optional zip groups), got \(grid.kindName)")
            }
        }
        // Overlapping axes (the same path twice, or one inside another) make cells ambiguous.
        let allColumns = axes.flatMap(\.columns)
        for (i, a) in allColumns.enumerated() {
            for b in allColumns[..<i] where ConfigPath.isWithin(a.path, b.path) || ConfigPath.isWithin(b.path, a.path) {
                problem(a.yamlPath, a.path == b.path
                    ? "the path '\(a.path)' is already an axis (\(b.yamlPath))"
                    : "overlaps the axis \(b.yamlPath): one sets a value inside the other")
            }
        }
        // Every axis must write into a map that base has (catches misspelt paths).
        if case .map = base {
            for c in allColumns {
                let parts = ConfigPath.segments(c.path)
                var node = base
                var walked: [String] = []
                for segment in parts.dropLast() {
                    walked.append(segment)
                    guard let next = node[segment] else {
                        problem(c.yamlPath, "base has no '\(walked.joined(separator: "."))' (an axis must set a value inside a map that base defines)")
                        break
                    }
                    guard case .map = next else {
                        problem(c.yamlPath, "base.\(walked.joined(separator: ".")) is \(next.kindName), not a map")
                        break
                    }
                    node = next
                }
            }
        }
        self.axes = axes

        // seeds
        var seeds: [UInt64] = [0]
        var seedPolicy: SeedPolicy? = nil
        switch tree["seeds"] {
        case nil: break
        case let policy? where policy.mapValue != nil:
            seedPolicy = SeedPolicy.parse(policy, problem: problem)
            if let seedPolicy { seeds = seedPolicy.initialSeeds }
        case let .integer(n)?:
            if n >= 1 && n <= 10_000 { seeds = (0..<UInt64(n)).map { $0 } } else { problem("seeds", "a seed count must be between 1 and 10000, got \(n)") }
        case let .list(items)?:
            if items.isEmpty { problem("seeds", "has no seeds") }
            var seen: [UInt64: Int] = [:]
            var list: [UInt64] = []
            for (i, item) in items.enumerated() {
                guard case let .integer(s) = item, s >= 0 else {
                    problem("seeds[\(i)]", "a seed must be a non-negative integer, got \(item.kindName) (\(item))")
                    continue
                }
                if let j = seen[UInt64(s)] { problem("seeds[\(i)]", "seed \(s) is already listed (seeds[\(j)])"); continue }
                seen[UInt64(s)] = i
                list.append(UInt64(s))
            }
            if !list.isEmpty { seeds = list }
        case let other?: problem("seeds", "must be a count (3 → seeds 0, 1, 2), a list of seeds or {min, max, until_ci_halfwidth}, got \(other.kindName)")
        }
        self.seeds = seeds
        self.seedPolicy = seedPolicy
        claims = ClaimSpec.parseList(tree["claims"], problem: problem)

        // report
        var report = ReportSpec(rows: [], columns: [], metrics: [], plots: [])
        if let r = tree["report"], !r.isNull {
            if let pairs = r.mapValue {
                for (key, _) in pairs where !Self.reportKeys.contains(key) {
                    problem("report.\(key)", "unknown key (expected one of: \(Self.reportKeys.joined(separator: ", ")))")
                }
                func axisList(_ key: String) -> [String] {
                    guard let v = r[key], !v.isNull else { return [] }
                    guard let items = v.listValue else { problem("report.\(key)", "must be a list of grid axis paths"); return [] }
                    var out: [String] = []
                    for (i, item) in items.enumerated() {
                        guard let s = item.stringValue else { problem("report.\(key)[\(i)]", "must be a grid axis path"); continue }
                        guard let axis = axes.first(where: { $0.matches(s) }) else {
                            let known = axes.map(\.name)
                            problem("report.\(key)[\(i)]", "'\(s)' is not a grid axis" + (known.isEmpty ? " (the grid has none)" : " (axes: \(known.joined(separator: ", ")))"))
                            continue
                        }
                        if out.contains(axis.name) { problem("report.\(key)[\(i)]", "axis '\(s)' is listed twice"); continue }
                        out.append(axis.name)
                    }
                    return out
                }
                report.columns = axisList("columns")
                let explicitRows = r["rows"].map { !$0.isNull } ?? false
                report.rows = axisList("rows")
                for (i, row) in report.rows.enumerated() where report.columns.contains(row) {
                    problem("report.rows[\(i)]", "axis '\(row)' is also in report.columns")
                }
                if explicitRows {
                    for axis in axes where !report.rows.contains(axis.name) && !report.columns.contains(axis.name) {
                        problem("report.rows", "axis '\(axis.name)' is in neither report.rows nor report.columns (every axis must be one or the other; seeds are aggregated)")
                    }
                }
                if let m = r["metrics"], !m.isNull {
                    if let items = m.listValue, !items.isEmpty {
                        for (i, item) in items.enumerated() {
                            guard let s = item.stringValue, !s.isEmpty else { problem("report.metrics[\(i)]", "must be a metric name"); continue }
                            if report.metrics.contains(s) { problem("report.metrics[\(i)]", "metric '\(s)' is listed twice"); continue }
                            report.metrics.append(s)
                        }
                    } else {
                        problem("report.metrics", m.listValue == nil ? "must be a list of metric names" : "is empty")
                    }
                }
                if let p = r["plots"], !p.isNull {
                    if let items = p.listValue {
                        var names: [String: Int] = [:]
                        for (i, item) in items.enumerated() {
                            let path = "report.plots[\(i)]"
                            guard let plot = item.mapValue else { problem(path, "must be a map {kind: bar|curve|line, metric: NAME}"); continue }
                            for (key, _) in plot where !Self.plotKeys.contains(key) {
                                problem("\(path).\(key)", "unknown key (expected one of: \(Self.plotKeys.joined(separator: ", ")))")
                            }
                            let kindText = item["kind"]?.stringValue ?? ""
                            let kind = PlotSpec.Kind(rawValue: kindText)
                            if kind == nil {
                                problem("\(path).kind", item["kind"] == nil ? "is required (bar, curve or line)" : "'\(item["kind"]!)' is not a plot kind (bar, curve, line)")
                            }
                            var metric = item["metric"]?.stringValue
                            var curveList: [String] = []
                            if let list = item["metric"]?.listValue {
                                curveList = list.compactMap(\.stringValue).filter { !$0.isEmpty }
                                if kind != .curve { problem("\(path).metric", "a list of curves applies to curve plots only") }
                                else if curveList.count != list.count || curveList.isEmpty { problem("\(path).metric", "must be a non-empty list of curve names") }
                                else { metric = curveList.joined(separator: ", ") }
                            } else if metric == nil || metric!.isEmpty { problem("\(path).metric", "is required (a metric name)") }
                            var name = "\(metric ?? "plot")-\(kindText)"
                            if let n = item["name"] {
                                if let s = n.stringValue, Self.isValidName(s) { name = s } else {
                                    problem("\(path).name", "must be a file-name-safe string (letters, digits, '-', '_', '.')")
                                }
                            }
                            var title: String? = nil
                            if let t = item["title"] {
                                if let s = t.stringValue { title = s } else { problem("\(path).title", "must be a string") }
                            }
                            var x: String? = nil
                            if let xv = item["x"] {
                                if let s = xv.stringValue {
                                    x = s
                                    if kind == .line, !axes.contains(where: { $0.matches(s) }) {
                                        problem("\(path).x", "'\(s)' is not a grid axis")
                                    } else if kind == .curve, s != "epoch", s != "steps", !s.hasSuffix("_steps") {
                                        problem("\(path).x", "must be epoch or steps, or a step curve the runs record (eval_steps, probe_steps), got '\(s)'")
                                    } else if kind == .bar {
                                        problem("\(path).x", "applies to line and curve plots only")
                                    }
                                } else { problem("\(path).x", "must be a string") }
                            } else if kind == .line, (report.columns.isEmpty && axes.isEmpty) {
                                problem("\(path).x", "a line plot needs a grid axis for x (give x or report.columns)")
                            }
                            var logX = false
                            if let lv = item["log_x"] {
                                if let b = lv.boolValue { logX = b } else { problem("\(path).log_x", "must be true or false") }
                            }
                            if let j = names[name] { problem(path, "a figure named '\(name)' already exists (report.plots[\(j)]); give one a `name`") }
                            names[name] = i
                            if let kind, let metric, !metric.isEmpty {
                                report.plots.append(PlotSpec(kind: kind, metric: metric, name: name, title: title, x: x, logX: logX, curves: curveList))
                            }
                        }
                    } else {
                        problem("report.plots", "must be a list of {kind, metric} maps")
                    }
                }
            } else {
                problem("report", "must be a map (rows, columns, metrics, plots)")
            }
        }
        if let b = tree["report"]?["baseline"], !b.isNull {
            if let pairs = b.mapValue {
                for (key, _) in pairs where key != "cell" && key != "metric" {
                    problem("report.baseline.\(key)", "unknown key (expected cell, metric)")
                }
                var settings: [String: ConfigValue] = [:]
                if let cell = b["cell"]?.mapValue, !cell.isEmpty {
                    for (path, value) in cell {
                        if axes.contains(where: { $0.matches(path) }) { settings[path] = value } else {
                            problem("report.baseline.cell.\(path)", "'\(path)' is not a grid axis")
                        }
                    }
                } else {
                    problem("report.baseline.cell", "is required: a map of grid axis path: value selecting the baseline cell")
                }
                var metric = "test_accuracy"
                if let m = b["metric"] {
                    if let s = m.stringValue, !s.isEmpty { metric = s } else { problem("report.baseline.metric", "must be a metric name") }
                }
                report.baseline = BaselineSpec(settings: settings, metric: metric)
            } else {
                problem("report.baseline", "must be a map {cell: {axis: value, ...}, metric: NAME}")
            }
        }
        if report.rows.isEmpty {
            report.rows = axes.map(\.name).filter { !report.columns.contains($0) }
        }
        self.report = report

        // variant sections (checked here so that a broken one fails even without --scale)
        variantScales = StudyScale.allCases.filter { $0.section.map { tree[$0].map { !$0.isNull } ?? false } ?? false }
        for scale in variantScales {
            Self.checkVariant(tree[scale.section!]!, named: scale.section!, axes: axes, problem: problem)
        }

        let lines = lines
        let origins = origins
        if !problems.isEmpty {
            throw SpecError(source: source, problems: problems.map { Self.located($0, lines: lines, origins: origins) })
        }

        var identity: ConfigValue = .map([
            ("name", .string(name)),
            ("base", base),
            ("grid", .list(axes.map { axis in .list(axis.columns.map { .list([.string($0.path), .list($0.values)]) }) })),
            ("seeds", .list(seeds.map { .integer(Int($0)) })),
        ])
        if axes.isEmpty { identity = identity.merging(.map([("grid", .list([]))])) }
        hash = identity.canonicalHash
        var stored = tree
        if case var .map(pairs) = stored {
            pairs.removeAll { StudyScale.sections.contains($0.key) }
            stored = .map(pairs)
        }
        effectiveJSON = stored.orderedJSON
    }

    // MARK: helpers

    static func isValidName(_ s: String) -> Bool {
        guard let first = s.first, first.isASCII, first.isLetter || first.isNumber, s.count <= 100 else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    private static func column(path: String, list: ConfigValue, yamlPath: String, problem: (String, String) -> Void) -> GridAxis.Column? {
        guard ConfigPath.isValid(path) else {
            problem(yamlPath, "'\(path)' is not a dotted path of identifiers (e.g. model.norm.name)")
            return nil
        }
        guard let values = list.listValue else {
            problem(yamlPath, "must be a list of values, got \(list.kindName) (write [\(list)] for a single value)")
            return nil
        }
        guard !values.isEmpty else {
            problem(yamlPath, "has no values (an empty axis would make an empty grid)")
            return nil
        }
        return GridAxis.Column(path: path, values: values, yamlPath: yamlPath)
    }

    /// The spec path as written in the file, and its line.
    private static func located(_ p: ConfigProblem, lines: [String: Int], origins: [String: String]) -> ConfigProblem {
        var path = p.path
        // longest matching origin prefix (a path or a path followed by an index)
        let match = origins.keys.filter { path == $0 || path.hasPrefix($0 + ".") || path.hasPrefix($0 + "[") }.max { $0.count < $1.count }
        if let match, let origin = origins[match] { path = origin + path.dropFirst(match.count) }
        var line = p.line
        if line == nil {
            // the line of the path, or of its closest ancestor that has one
            var probe = path
            while line == nil && !probe.isEmpty {
                line = lines[probe]
                if let cut = probe.lastIndex(where: { $0 == "." || $0 == "[" }) { probe = String(probe[..<cut]) } else { break }
            }
        }
        return ConfigProblem(path: path, message: p.message, line: line)
    }

    func located(_ p: ConfigProblem) -> ConfigProblem { Self.located(p, lines: lines, origins: origins) }

    // MARK: variants (quick, paper)

    /// The problems of a variant section `quick:` / `paper:`: a map of ``variantKeys`` whose
    /// `grid` gives new values to existing single axes.
    private static func checkVariant(_ section: ConfigValue, named key: String, axes: [GridAxis],
                                     problem: (String, String) -> Void) {
        guard let pairs = section.mapValue else {
            return problem(key, "must be a map with base, grid, seeds, claims")
        }
        for (k, _) in pairs where !variantKeys.contains(k) {
            problem("\(key).\(k)", "unknown key (expected one of: \(variantKeys.joined(separator: ", ")))")
        }
        if let b = section["base"], b.mapValue == nil { problem("\(key).base", "must be a map merged into base") }
        guard let g = section["grid"] else { return }
        guard let gp = g.mapValue else { return problem("\(key).grid", "must be a map of axis: [values]") }
        for (axis, value) in gp {
            if axis == "zip" {
                checkVariantZip(value, at: "\(key).grid.zip", axes: axes, problem: problem)
            } else if !axes.contains(where: { $0.zipIndex == nil && $0.matches(axis) }) {
                problem("\(key).grid.\(axis)", "'\(axis)' is not an axis of grid (\(key) can only give existing axes new values)")
            } else if value.listValue == nil {
                problem("\(key).grid.\(axis)", "must be a list of values")
            }
        }
    }

    /// A variant's `grid.zip`: the grid's zip groups again, in order, each with the same paths
    /// (new values, possibly fewer or more of them; the lengths are checked with the variant).
    private static func checkVariantZip(_ value: ConfigValue, at path: String, axes: [GridAxis],
                                        problem: (String, String) -> Void) {
        let groups = axes.filter { $0.zipIndex != nil }
        guard let given = value.listValue, given.count == groups.count else {
            return problem(path, "must list the grid's \(groups.count) zip group\(groups.count == 1 ? "" : "s") again, in order, with new values")
        }
        for (g, (group, original)) in zip(given, groups).enumerated() {
            let paths = group.mapValue?.map(\.key) ?? []
            let expected = original.columns.map(\.path)
            if paths != expected {
                problem("\(path)[\(g)]", "must give the paths of grid.zip[\(g)] (\(expected.joined(separator: ", "))), in order")
            }
        }
    }

    /// The `--quick` variant (``variant(_:)`` at ``StudyScale/quick``).
    public func quickVariant() throws -> AblationSpec { try variant(.quick) }

    /// The spec at `scale`: `full` is the spec itself; `quick` and `paper` merge their
    /// section's `base` into base, replace the values of the `grid` axes it names, and take its
    /// `seeds` and `claims` instead; named `<name>-quick` / `<name>-paper` (own store, own study).
    public func variant(_ scale: StudyScale) throws -> AblationSpec {
        guard let key = scale.section else { return self }
        guard variantScales.contains(scale), let section = tree[key] else {
            throw AblationError("spec '\(name)' (\(source)) has no \(key) section")
        }
        guard case var .map(top) = tree else { return self }
        var origins: [String: String] = [:]
        func set(_ k: String, _ value: ConfigValue) {
            if let i = top.firstIndex(where: { $0.key == k }) { top[i].value = value } else { top.append((k, value)) }
        }
        set("name", .string(name + scale.nameSuffix))
        if let sb = section["base"] {
            set("base", base.merging(sb))
            for leaf in sb.leafPaths { origins["base.\(leaf)"] = "\(key).base.\(leaf)" }
        }
        if let sg = section["grid"]?.mapValue, case var .map(grid)? = tree["grid"] {
            for (axis, value) in sg {
                if let i = grid.firstIndex(where: { $0.key == axis }) { grid[i].value = value }
                origins["grid.\(axis)"] = "\(key).grid.\(axis)"
            }
            set("grid", .map(grid))
        }
        for k in ["seeds", "claims"] {
            if let v = section[k] {
                set(k, v)
                origins[k] = "\(key).\(k)"
            }
        }
        top.removeAll { StudyScale.sections.contains($0.key) }
        return try AblationSpec(tree: .map(top), lines: lines, source: source, origins: origins, scale: scale)
    }

    /// Re-reads a spec from its ``effectiveJSON`` (as kept in a store).
    public static func fromStored(json: String, source: String) throws -> AblationSpec {
        let tree = try YAMLTree(text: json, source: source)
        let name = tree.root["name"]?.stringValue ?? ""
        let scale = StudyScale.allCases.first { $0 != .full && name.hasSuffix($0.nameSuffix) } ?? .full
        return try AblationSpec(tree: tree.root, lines: [:], source: source, origins: [:], scale: scale)
    }

    // MARK: cells

    /// Number of cells (product of the axis lengths).
    public var cellCount: Int { axes.reduce(1) { $0 * $1.count } }

    /// The cells in expansion order: the cartesian product of the axes in spec order, the
    /// last axis varying fastest; each cell is `base` with its axis values written in.
    /// Throws a ``SpecError`` when an axis cannot be written into base or two cells have the
    /// same configuration (duplicates are refused).
    public func cells() throws -> [Cell] {
        var problems: [ConfigProblem] = []
        var cells: [Cell] = []
        let total = cellCount
        cells.reserveCapacity(total)
        var seen: [String: Int] = [:]
        var reportedWrite = Set<String>()
        var reportedDuplicates = Set<String>()
        for index in 0..<total {
            var rest = index
            var coordinates = [Int](repeating: 0, count: axes.count)
            for a in axes.indices.reversed() {
                coordinates[a] = rest % axes[a].count
                rest /= axes[a].count
            }
            var config = base
            var settings: [AxisSetting] = []
            var failed = false
            for (a, axis) in axes.enumerated() {
                let k = coordinates[a]
                for column in axis.columns {
                    let yamlPath = "\(column.yamlPath)[\(k)]"
                    do {
                        config = try config.setting(column.values[k], at: column.path)
                    } catch let error as ConfigPathError {
                        if reportedWrite.insert(column.yamlPath).inserted {
                            problems.append(ConfigProblem(path: column.yamlPath, message: "cannot set '\(column.path)': base.\(error.path) is \(error.found), not a map"))
                        }
                        failed = true
                    } catch {
                        failed = true
                    }
                    settings.append(AxisSetting(path: column.path, value: column.values[k], yamlPath: yamlPath))
                }
            }
            if failed { continue }
            let cell = Cell(index: index, config: CellConfig(config), settings: settings, coordinates: coordinates)
            if let j = seen[cell.hash] {
                let other = cells[j]
                // name the first axis value that differs in the spec (a repeated value or zip row)
                let differing = zip(cell.settings, other.settings).first { $0.yamlPath != $1.yamlPath }
                let path = differing?.0.yamlPath ?? "grid"
                let otherPath = differing?.1.yamlPath ?? "another cell"
                if reportedDuplicates.insert(path + " " + otherPath).inserted {
                    problems.append(ConfigProblem(path: path, message: "duplicate cell: resolves to the same configuration as \(otherPath) (cell \(other.config.shortHash)); remove one of the values"))
                }
                continue
            }
            seen[cell.hash] = cells.count
            cells.append(cell)
        }
        if !problems.isEmpty { throw SpecError(source: source, problems: problems.map(located)) }
        return cells
    }

    /// ``cells()`` plus every cell checked by `runner` (and `report.metrics` against the
    /// runner's metric names). Each runner problem is reported once, at the spec path its
    /// value came from, saying in which cells it occurs when not in all.
    public func cells(validatingWith runner: any CellRunner) throws -> [Cell] {
        let cells = try cells()
        var order: [ConfigProblem] = []
        var occurrences: [ConfigProblem: [Cell]] = [:]
        for cell in cells {
            for p in runner.validate(cell.config) {
                let mapped = specPath(of: p, in: cell)
                if occurrences[mapped] == nil { order.append(mapped) }
                occurrences[mapped, default: []].append(cell)
            }
        }
        var problems: [ConfigProblem] = order.map { p in
            let where_ = occurrences[p]!
            guard where_.count < cells.count, let first = where_.first else { return p }
            let example = first.label
            let scope = where_.count == 1 ? "in 1 of \(cells.count) cells" : "in \(where_.count) of \(cells.count) cells"
            return ConfigProblem(path: p.path, message: p.message + " (\(scope)" + (example.isEmpty ? ")" : ", e.g. \(example))"), line: p.line)
        }
        if let baseline = report.baseline, let curves = runner.curveNames, !curves.contains(baseline.metric) {
            problems.append(ConfigProblem(path: "report.baseline.metric", message: "runner '\(runner.name)' records no per-epoch curve '\(baseline.metric)' (it records: \(curves.joined(separator: ", ")))"))
        }
        if let runnerMetrics = runner.metricNames {
            // steps_to_baseline is derived by the report from the runs' curves
            let known = runnerMetrics + (report.baseline == nil ? [] : [BaselineSpec.derivedMetric])
            for (i, m) in report.metrics.enumerated() where !known.contains(m) {
                problems.append(ConfigProblem(path: "report.metrics[\(i)]", message: "runner '\(runner.name)' reports no metric '\(m)' (it reports: \(known.joined(separator: ", ")))"))
            }
            for (i, plot) in report.plots.enumerated() where plot.kind != .curve && !known.contains(plot.metric) {
                problems.append(ConfigProblem(path: "report.plots[\(i)].metric", message: "runner '\(runner.name)' reports no metric '\(plot.metric)' (it reports: \(known.joined(separator: ", ")))"))
            }
        }
        if let curves = runner.curveNames {
            for (i, plot) in report.plots.enumerated() where plot.kind == .curve {
                for metric in plot.curveMetrics where !curves.contains(metric) {
                    problems.append(ConfigProblem(path: "report.plots[\(i)].metric", message: "runner '\(runner.name)' records no per-epoch curve '\(metric)' (it records: \(curves.joined(separator: ", ")))"))
                }
                if let x = plot.x, x != "epoch", x != "steps", !curves.contains(x) {
                    problems.append(ConfigProblem(path: "report.plots[\(i)].x", message: "must be epoch or steps, or a step curve the runner records (\(curves.filter { $0.hasSuffix("steps") }.joined(separator: ", "))), got '\(x)'"))
                }
            }
        }
        if !problems.isEmpty { throw SpecError(source: source, problems: problems.map(located)) }
        return cells
    }

    /// Maps a runner's config-relative problem to the spec path its value came from.
    func specPath(of problem: ConfigProblem, in cell: Cell) -> ConfigProblem {
        let p = problem.path
        for s in cell.settings where ConfigPath.isWithin(p, s.path) {
            let rest = String(p.dropFirst(s.path.count))   // "" or ".options.num_groups"
            return ConfigProblem(path: s.yamlPath + rest, message: problem.message)
        }
        return ConfigProblem(path: p.isEmpty ? "base" : "base.\(p)", message: problem.message)
    }

    /// The line of a spec path, when known.
    public func line(of path: String) -> Int? { located(ConfigProblem(path: path, message: "")).line }

    /// Short names of the axis column paths: the shortest dotted suffix that no other column
    /// path ends with (`norm_eval` for `finetune.freeze.norm_eval`); a generic last segment
    /// (`name`, `options`) keeps its parent (`schedule.name`, not `name`).
    public var columnLabels: [String: String] {
        let paths = axes.flatMap(\.paths)
        func short(_ path: String) -> String {
            let parts = ConfigPath.segments(path)
            let generic: Set<String> = ["name", "options", "value", "kind"]
            for k in (generic.contains(parts.last ?? "") ? min(2, parts.count) : 1)...parts.count {
                let candidate = parts.suffix(k).joined(separator: ".")
                if !paths.contains(where: { $0 != path && ($0 == candidate || $0.hasSuffix("." + candidate)) }) { return candidate }
            }
            return path
        }
        return Dictionary(uniqueKeysWithValues: paths.map { ($0, short($0)) })
    }

    /// Short labels for tables, keyed by axis name: the ``columnLabels`` of its paths, joined
    /// by `+` for zip groups.
    public var axisLabels: [String: String] {
        let short = columnLabels
        var out: [String: String] = [:]
        for axis in axes { out[axis.name] = axis.paths.map { short[$0] ?? $0 }.joined(separator: "+") }
        return out
    }
}
