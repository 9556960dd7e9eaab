/// Plain-text renderings of descriptors for `normlab list` and `normlab describe`.
public enum DescriptorText {
    /// One row per method: name, aliases, summary, reference.
    public static func table(_ registry: NormRegistry) -> String {
        let rows = registry.all.map { e in
            [e.descriptor.name, e.descriptor.aliases.joined(separator: ","), e.descriptor.summary, e.descriptor.reference]
        }
        return render(header: ["name", "aliases", "summary", "reference"], rows: rows)
    }

    /// The full description of one method.
    public static func describe(_ d: NormDescriptor) -> String {
        var lines = ["\(d.name) — \(d.summary)",
                     "aliases:   \(d.aliases.isEmpty ? "(none)" : d.aliases.joined(separator: ", "))",
                     "reference: \(d.reference)",
                     "ranks:     \(d.ranks.lowerBound)...\(d.ranks.upperBound) (channel axis 1)",
                     "", "options (--set KEY=VALUE):"]
        let rows = d.options.map { o in
            [o.name, o.kind.expectation, o.defaultValue?.description ?? "(required)", o.summary]
        }
        lines.append(render(header: ["option", "type", "default", "meaning"], rows: rows))
        if !d.notes.isEmpty {
            lines.append("")
            lines.append("conventions:")
            lines += d.notes.map { "  - " + $0 }
        }
        return lines.joined(separator: "\n")
    }

    /// A left-aligned text table.
    public static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, s in i == r.count - 1 ? s : s.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }
}

import Foundation
