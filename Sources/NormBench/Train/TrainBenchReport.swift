import Foundation
import NormCore

/// The result of a `normlab bench train` run: one record per model × norm × batch × threads.
public struct TrainBenchReport: Sendable, Codable, Equatable {
    public var date: String
    public var machine: MachineInfo
    public var quick: Bool
    /// Frameworks that were importable and timed (`torch`, `jax`).
    public var frameworks: [String]
    public var records: [TrainBenchRecord]

    /// Every record's repeated steps were bit-identical.
    public var passed: Bool { records.allSatisfy { $0.check == TrainBenchRunner.identical } }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    /// The table `normlab bench train` prints.
    public var table: String {
        var out: [String] = []
        out.append("normlab bench train — \(date) — \(machine.cpu), \(machine.cores) cores, \(machine.memory)\(machine.blasCore.map { ", BLAS \($0)" } ?? "")\(quick ? " — QUICK (few steps)" : "")")
        out.append("")
        let fw = frameworks
        var header = ["model", "norm", "B", "thr", "ms/step", "±%", "steps/s", "img/s", "check"]
        for f in fw { header += ["\(f) steps/s", "x \(f)"] }
        out.append("Training steps (forward + cross-entropy + backward + SGD momentum; median of the timed steps; x F = normlab steps/s over F's):")
        out.append(DescriptorText.render(header: header, rows: records.map { r in
            var row = [r.model, r.norm, String(r.batch), String(r.threads), String(format: "%.3f", r.timing.median),
                       String(format: "%.0f", r.timing.spreadPercent), String(format: "%.1f", r.stepsPerSecond),
                       String(format: "%.0f", r.imagesPerSecond), r.check]
            for f in fw {
                let t = r.frameworks.first { $0.framework == f }
                row.append(t?.stepsPerSecond.map { String(format: "%.1f", $0) } ?? (t?.error != nil ? "error" : "-"))
                row.append(r.ratio(to: f).map { String(format: "%.2f", $0) } ?? "-")
            }
            return row
        }))
        let broken = records.filter { $0.breakdown != nil }
        if !broken.isEmpty {
            out.append("")
            out.append("Time per step by layer kind, ms (separate steps with a clock around every layer call; % of their sum):")
            let kinds = LayerKind.allCases.filter { k in broken.contains { ($0.breakdown?[k.rawValue] ?? 0) > 0 } }
            out.append(DescriptorText.render(
                header: ["model", "norm", "B", "thr"] + kinds.map(\.rawValue) + ["sum"],
                rows: broken.map { r in
                    let b = r.breakdown!
                    let total = b.values.reduce(0, +)
                    return [r.model, r.norm, String(r.batch), String(r.threads)]
                        + kinds.map { k in
                            let v = b[k.rawValue] ?? 0
                            return String(format: "%.3f (%.0f%%)", v, total > 0 ? 100 * v / total : 0)
                        }
                        + [String(format: "%.3f", total)]
                }))
        }
        let errors = records.flatMap { r in r.frameworks.compactMap { t in
            t.error.map { "\(t.framework) \(r.model) \(r.norm) B=\(r.batch) \(r.threads) thr: \($0)" } } }
        if !errors.isEmpty {
            out.append("")
            out.append("Not timed on the framework side:")
            out += Array(Set(errors)).sorted().map { "  " + $0 }
        }
        return out.joined(separator: "\n")
    }
}
