import Foundation
import NormCore
import NormNet
import NormPython
import Yams

/// The files a report wrote.
public struct ReportFiles: Sendable {
    public var directory: String
    public var markdown: String
    public var csv: String
    public var json: String
    public var runsCSV: String
    /// PNG and SVG of every figure.
    public var figures: [String]
    public var notebook: String?

    public var all: [String] { [markdown, csv, json, runsCSV] + figures + (notebook.map { [$0] } ?? []) }
}

extension AblationReport {
    // MARK: figures

    /// The figures the spec asks for (a bar chart per metric when `report.plots` is empty).
    public var plots: [PlotSpec] {
        if !spec.report.plots.isEmpty { return spec.report.plots }
        return metrics.map { PlotSpec(kind: .bar, metric: $0, name: "\($0)-bar", title: nil) }
    }

    /// Drawing instructions for `normlab_report.render_figures`.
    func figurePayload(_ plot: PlotSpec) throws -> ConfigValue {
        let title = plot.title ?? "\(study.name): \(plot.metric)" + (plot.kind == .curve ? (plot.x.map { $0 == "epoch" ? " per epoch" : " against \($0)" } ?? " per epoch") : "") + " (mean, 95 % CI over seeds)"
        if cells.allSatisfy({ $0.runs.allSatisfy { $0.result.metrics[plot.metric] == nil } }) && plot.kind != .curve {
            throw AblationError("figure '\(plot.name)': no run has the metric '\(plot.metric)'")
        }
        switch plot.kind {
        case .bar:
            // one line per varying row axis (axes with a single value say nothing here)
            let varying = rowAxes.enumerated().filter { spec.axes[$0.element].count > 1 }
            let categories = rowKeys.map { key -> String in
                let parts = varying.map { "\(axisLabel($0.element))=\(valueText($0.element, key[$0.offset]))" }
                return parts.isEmpty ? "all" : parts.joined(separator: "\n")
            }
            let series: [ConfigValue] = columnKeys.map { ck in
                let stats = rowKeys.map { rk in cell(row: rk, column: ck)?.metrics[plot.metric] }
                return .map([
                    ("label", .string(columnAxes.isEmpty ? plot.metric : keyLabel(columnAxes, ck))),
                    ("mean", .list(stats.map { Self.jsonNumber($0?.mean) })),
                    ("std", .list(stats.map { Self.jsonNumber($0?.std) })),
                    ("ci", .list(stats.map { Self.jsonNumber($0?.interval?.halfWidth) })),
                    ("n", .list(stats.map { .integer($0?.n ?? 0) })),
                    ("diverged", .list(stats.map { .integer($0?.diverged ?? 0) })),
                ])
            }
            return .map([("kind", "bar"), ("name", .string(plot.name)), ("title", .string(title)), ("metric", .string(plot.metric)),
                         ("categories", .list(categories.map { .string($0) })), ("series", .list(series)),
                         ("legend_title", columnAxes.isEmpty ? .null : .string(columnAxes.map(axisLabel).joined(separator: ", ")))])
        case .line:
            let xa = plot.x.flatMap { x in spec.axes.firstIndex { $0.matches(x) } } ?? columnAxes.first ?? (spec.axes.count - 1)
            guard spec.axes.indices.contains(xa) else { throw AblationError("figure '\(plot.name)': the study has no grid axis for x") }
            let xs: [Double] = (0..<spec.axes[xa].count).map { k in spec.axes[xa].columns[0].values[k].doubleValue ?? Double(k) }
            let others = spec.axes.indices.filter { $0 != xa && spec.axes[$0].count > 1 }
            var groups: [[Int]: [CellSummary]] = [:]
            for c in cells { groups[others.map { c.cell.coordinates[$0] }, default: []].append(c) }
            let lines: [ConfigValue] = groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
                let members = groups[key]!.sorted { $0.cell.coordinates[xa] < $1.cell.coordinates[xa] }
                let stats = members.map { $0.metrics[plot.metric] }
                let label = zip(others, key).map { "\(axisLabel($0))=\(valueText($0, $1))" }.joined(separator: ", ")
                return .map([
                    ("label", .string(label.isEmpty ? plot.metric : label)),
                    ("x", .list(members.map { .real(xs[$0.cell.coordinates[xa]]) })),
                    ("mean", .list(stats.map { Self.jsonNumber($0?.mean) })),
                    ("std", .list(stats.map { Self.jsonNumber($0?.std) })),
                    ("ci", .list(stats.map { Self.jsonNumber($0?.interval?.halfWidth) })),
                    ("n", .list(stats.map { .integer($0?.n ?? 0) })),
                    ("diverged", .list(stats.map { .integer($0?.diverged ?? 0) })),
                ])
            }
            return .map([("kind", "line"), ("name", .string(plot.name)), ("title", .string(title)), ("metric", .string(plot.metric)),
                         ("xlabel", .string(axisLabel(xa))), ("log_x", .bool(plot.logX)),
                         ("xticks", .list(xs.map { .real($0) })),
                         ("xticklabels", .list((0..<spec.axes[xa].count).map { .string(valueText(xa, $0)) })),
                         ("lines", .list(lines))])
        case .curve:
            // x: the epoch index, or another curve of the runs giving each point's x (steps, eval_steps, ...)
            let xCurve = plot.x.flatMap { $0 == "epoch" ? nil : $0 }
            let many = plot.curveMetrics.count > 1
            var lines: [ConfigValue] = []
            for (ci, c) in cells.enumerated() {
                let finished = c.runs.filter { !$0.result.diverged }
                let text = spec.axes.indices.filter { spec.axes[$0].count > 1 }
                    .map { "\(axisLabel($0))=\(valueText($0, c.cell.coordinates[$0]))" }.joined(separator: ", ")
                for (mi, metric) in plot.curveMetrics.enumerated() {
                    let curves = finished.compactMap { $0.result.curves[metric] }
                    guard let length = curves.map(\.count).max(), length > 0 else { continue }
                    var mean: [ConfigValue] = [], std: [ConfigValue] = [], ci95: [ConfigValue] = []
                    for e in 0..<length {
                        let xs = curves.compactMap { e < $0.count ? $0[e] : nil }.filter(\.isFinite)
                        guard let interval = MeanInterval(xs) else { mean.append(.null); std.append(.null); ci95.append(.null); continue }
                        mean.append(.real(interval.mean))
                        std.append(.real(interval.std))
                        ci95.append(.real(interval.halfWidth ?? 0))
                    }
                    let cellLabel = text.isEmpty ? "all" : text
                    var entry: [(key: String, value: ConfigValue)] = [("label", .string(many ? "\(cellLabel): \(metric)" : cellLabel)),
                                                                      ("mean", .list(mean)), ("std", .list(std)), ("ci", .list(ci95))]
                    if many { entry += [("color", .integer(ci)), ("dash", .integer(mi))] }
                    if let xCurve {
                        guard let xs = finished.compactMap({ $0.result.curves[xCurve] }).max(by: { $0.count < $1.count }), xs.count >= length else {
                            throw AblationError("figure '\(plot.name)': x: \(xCurve) needs a '\(xCurve)' curve as long as '\(metric)' in every run")
                        }
                        entry.append(("x", .list(xs.prefix(length).map { .real($0) })))
                    }
                    lines.append(.map(entry))
                }
            }
            if lines.isEmpty { throw AblationError("figure '\(plot.name)': no stored run has a per-epoch curve '\(plot.metric)'") }
            let xlabel = xCurve == nil ? "epoch" : (xCurve == "steps" ? "optimizer step" : "optimizer step (\(xCurve!))")
            return .map([("kind", "curve"), ("name", .string(plot.name)), ("title", .string(title)), ("metric", .string(plot.metric)),
                         ("xlabel", .string(xlabel)), ("log_x", .bool(plot.logX)), ("lines", .list(lines))])
        }
    }

    /// Draws the figures into `directory` (PNG and SVG each) with matplotlib in the embedded
    /// interpreter; returns the files written.
    public func renderFigures(to directory: String) throws -> [String] {
        let payload: ConfigValue = .map([("figures", .list(try plots.map(figurePayload) + (claimsFigurePayload.map { [$0] } ?? [])))])
        let module = try ReportPython.module()
        return try Python.withGIL {
            try module.attribute("render_figures").call(arguments: [payload.orderedJSON, directory]).decode([String].self)
        }
    }

    // MARK: files

    /// `file` relative to the folder `directory` (`../../results/x.sqlite`), so a report folder
    /// records which store it belongs to without naming a machine path.
    static func relativePath(of file: String, from directory: String) -> String {
        let f = URL(fileURLWithPath: file).standardizedFileURL.pathComponents
        let d = URL(fileURLWithPath: directory).standardizedFileURL.pathComponents
        var common = 0
        while common < min(f.count - 1, d.count), f[common] == d[common] { common += 1 }
        return (Array(repeating: "..", count: d.count - common) + f[common...]).joined(separator: "/")
    }

    /// Writes `table.md`, `table.csv`, `table.json`, `runs.csv` and (with `figures`)
    /// `figures/<name>.png|svg` into `directory`.
    public func write(to directory: String, figures: Bool = true) throws -> ReportFiles {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw AblationError("cannot create the report folder \(directory): \(error.localizedDescription)")
        }
        // A report folder belongs to one (store, study): never overwrite another study's report.
        let marker = directory + "/.normlab-report"
        let owner = "study=\(study.name)\nstore=\(Self.relativePath(of: storePath, from: directory))\n"
        if let existing = fm.contents(atPath: marker).map({ String(decoding: $0, as: UTF8.self) }), existing != owner {
            let other = existing.split(separator: "\n").map(String.init).joined(separator: ", ")
            throw AblationError("the report folder \(directory) holds another report (\(other)); choose another --out")
        } else if !fm.fileExists(atPath: marker) {
            let entries = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            if entries.contains(where: { ["table.md", "table.csv", "table.json", "runs.csv"].contains($0) }) {
                throw AblationError("the report folder \(directory) already holds files not written for this study; choose another --out")
            }
            try? owner.write(toFile: marker, atomically: true, encoding: .utf8)
        }
        func put(_ name: String, _ text: String) throws -> String {
            let path = directory + "/" + name
            do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
                throw AblationError("cannot write \(path): \(error.localizedDescription)")
            }
            return path
        }
        var files = ReportFiles(directory: directory,
                                markdown: try put("table.md", markdown() + "\n### Provenance\n\n" + provenanceMarkdown()),
                                csv: try put("table.csv", csv()), json: try put("table.json", json()),
                                runsCSV: try put("runs.csv", runsCSV()), figures: [], notebook: nil)
        if figures { files.figures = try renderFigures(to: directory + "/figures") }
        return files
    }

    // MARK: notebook

    /// Writes a Jupyter notebook (nbformat 4, validated with `nbformat`) to `path`, with the
    /// spec, provenance, table and the PNG `figures` (attachments), and `<stem>.csv` /
    /// `<stem>-runs.csv` next to it that its code cells reload. Returns the files written.
    @discardableResult
    public func writeNotebook(to path: String, figures: [String]) throws -> [String] {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let stem = url.pathExtension == "ipynb" ? url.deletingPathExtension().lastPathComponent : url.lastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw AblationError("cannot create \(dir): \(error.localizedDescription)")
        }
        let csvName = stem + ".csv", runsName = stem + "-runs.csv"
        do {
            try csv().write(toFile: dir + "/" + csvName, atomically: true, encoding: .utf8)
            try runsCSV().write(toFile: dir + "/" + runsName, atomically: true, encoding: .utf8)
        } catch {
            throw AblationError("cannot write the notebook's CSV files in \(dir): \(error.localizedDescription)")
        }
        let pngs = figures.filter { $0.hasSuffix(".png") }
        let figureEntries: [ConfigValue] = pngs.map { png in
            let name = URL(fileURLWithPath: png).deletingPathExtension().lastPathComponent
            let plot = plots.first { $0.name == name }
            let title = plot?.title ?? plot.map { "\($0.metric) (\($0.kind.rawValue))" } ?? (name == "claims-effects" ? "Claims: effects with 95 % CIs" : name)
            return .map([("name", .string(name)), ("title", .string(title)), ("png", .string(png))])
        }
        let payload: ConfigValue = .map([
            ("study", .string(study.name)),
            ("description", spec.description.map { .string($0) } ?? .null),
            ("normlab_version", .string(NormlabVersion.string)),
            ("exported_at", .string(Timestamp.string(Date()))),
            ("store", .string(storePath)),
            ("spec_hash", .string(spec.hash)),
            ("spec_yaml", .string(specYAML)),
            ("provenance_md", .string(provenanceMarkdown())),
            ("table_md", .string(markdownTable())),
            ("legend", .string(legend)),
            ("claims_md", .string(claimResults.isEmpty ? "" : claimsMarkdown())),
            ("differences_md", .string(baselineDifferences.isEmpty ? "" : "Baseline: " + (baselineCell.map(label) ?? "") + "\n\n" + differencesMarkdown())),
            ("figures", .list(figureEntries)),
            ("csv", .string(csvName)),
            ("runs_csv", .string(runsName)),
            ("axis_columns", .list(csvAxisColumns.map { .string($0) })),
            ("metrics", .list(metrics.map { .string($0) })),
        ])
        let module = try ReportPython.module()
        _ = try Python.withGIL { try module.attribute("write_notebook").call(arguments: [payload.orderedJSON, path]) }
        return [path, dir + "/" + csvName, dir + "/" + runsName]
    }

    /// The effective spec as YAML.
    public var specYAML: String {
        guard let tree = try? YAMLTree(text: study.specJSON, source: "spec").root else { return study.specJSON }
        return tree.yaml
    }
}

/// `python/normlab_report.py` in the embedded interpreter.
public enum ReportPython {
    public static func module() throws -> PyObjectRef {
        try Python.withGIL {
            if let cached = box.value { return cached }
            try Python.addToSysPath(try PythonSupport.locateDirectory())
            let module = try Python.import("normlab_report")
            box.value = module
            return module
        }
    }

    /// Validates a notebook file with `nbformat` (throws a ``PythonError`` when invalid);
    /// returns (nbformat, nbformat_minor, cell count).
    public static func validateNotebook(_ path: String) throws -> (major: Int, minor: Int, cells: Int) {
        let module = try module()
        return try Python.withGIL {
            let t = try module.attribute("validate_notebook").call(arguments: [path])
            return (try t.item(0).decode(Int.self), try t.item(1).decode(Int.self), try t.item(2).decode(Int.self))
        }
    }

    private static let box = ModuleBox()
}

final class ModuleBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: PyObjectRef?
    var value: PyObjectRef? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

extension ConfigValue {
    /// Block YAML (scalar lists in flow style); strings that would read back as another type
    /// are quoted.
    public var yaml: String {
        (try? Yams.serialize(node: yamlNode, allowUnicode: true)) ?? orderedJSON
    }

    var yamlNode: Node {
        switch self {
        case .null: return .scalar(.init("null"))
        case let .bool(b): return .scalar(.init(b ? "true" : "false"))
        case let .integer(i): return .scalar(.init(String(i)))
        case let .unsigned(u): return .scalar(.init(String(u)))
        case let .real(d):
            var text = d.isFinite ? "\(d)" : (d.isNaN ? ".nan" : (d > 0 ? ".inf" : "-.inf"))
            if case .integer = YAMLTree.resolvePlain(text) { text += ".0" }
            return .scalar(.init(text))
        case let .string(s):
            let plainSafe = YAMLTree.resolvePlain(s) == .string(s) && !s.isEmpty
                && s.rangeOfCharacter(from: CharacterSet(charactersIn: ":#{}[],&*!|>'\"%@`\n\t")) == nil
                && s.first != "-" && s.first != "?" && s.first != " " && s.last != " "
            return .scalar(.init(s, .implicit, plainSafe ? .plain : .doubleQuoted))
        case let .list(items):
            let flat = items.allSatisfy { if case .list = $0 { return false }; if case .map = $0 { return false }; return true }
            return .sequence(.init(items.map(\.yamlNode), .implicit, flat ? .flow : .block))
        case let .map(pairs):
            return .mapping(.init(pairs.map { (Node.scalar(.init($0.key)), $0.value.yamlNode) }, .implicit, pairs.isEmpty ? .flow : .block))
        }
    }
}
