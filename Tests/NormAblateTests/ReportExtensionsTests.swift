import Foundation
import NormCore
import NormNet
import Testing
@testable import NormAblate

/// `report.baseline` (steps to reach a baseline), `line` plots and compact value labels.
@Suite struct ReportExtensionsTests {
    let baselineYAML = variant("  metrics: [test_accuracy, test_loss]", """
      metrics: [test_accuracy, steps_to_baseline]
      baseline:
        cell: {model.norm.name: bn, batch_size: 32, model.width: 8}
    """)

    @Test func stepsToBaselineIsTheFirstEpochAtOrAboveTheBaselineFinalMean() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir, yaml: baselineYAML)
        let base = try #require(report.cells.first { c in
            c.cell.setting("model.norm.name") == .string("bn") && c.cell.setting("batch_size") == .integer(32)
                && c.cell.setting("model.width") == .integer(8)
        })
        let finals = base.runs.compactMap { $0.result.curves["test_accuracy"]?.last }
        let threshold = finals.reduce(0, +) / Double(finals.count)
        var checked = 0
        for c in report.cells {
            for run in c.runs {
                let curve = try #require(run.result.curves["test_accuracy"])
                let value = try #require(run.result.metrics[BaselineSpec.derivedMetric])
                if let i = curve.firstIndex(where: { $0 >= threshold }) {
                    #expect(value == Double(i + 1))   // the fake runner records no steps curve: epochs
                    checked += 1
                } else {
                    #expect(value.isNaN)
                }
            }
            #expect(c.metrics[BaselineSpec.derivedMetric] != nil)
        }
        #expect(checked >= 1)   // at least the baseline's best seed reaches its own mean
        #expect(report.legend.contains("steps_to_baseline"))
        #expect(report.csv().contains("steps_to_baseline"))
        #expect(report.runsCSV().contains("steps_to_baseline"))
    }

    @Test func aBaselineThatSelectsNoOrSeveralCellsIsExplainedNotInvented() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let none = try smallReport(dir, yaml: baselineYAML.replacingOccurrences(of: "batch_size: 32, model.width: 8", with: "batch_size: 7, model.width: 8"))
        #expect(none.legend.contains("no cell of this study has"))
        #expect(none.cells.allSatisfy { $0.metrics[BaselineSpec.derivedMetric]?.n == 0 })
        let dir2 = try TempDir(); defer { dir2.cleanUp() }
        let several = try smallReport(dir2, yaml: baselineYAML.replacingOccurrences(of: ", model.width: 8}", with: "}"))
        #expect(several.legend.contains("2 cells have"))
    }

    @Test func baselineAndPlotKeysAreValidated() {
        let problems = specProblems(variant("  metrics: [test_accuracy, test_loss]", """
          metrics: [test_accuracy]
          baseline:
            cell: {optimizer.momentum: 0.9}
            colour: red
        """))
        #expect(problems.contains { $0.path == "report.baseline.cell.optimizer.momentum" && $0.message.contains("not a grid axis") })
        #expect(problems.contains { $0.path == "report.baseline.colour" })
        let noBaseline = specProblems(variant("  metrics: [test_accuracy, test_loss]", "  metrics: [steps_to_baseline]"))
        #expect(noBaseline.contains { $0.path == "report.metrics[0]" && $0.message.contains("steps_to_baseline") })
        let plots = specProblems(variant("    - {kind: bar, metric: test_accuracy}", """
            - {kind: line, metric: test_accuracy, x: optimizer.momentum}
            - {kind: curve, metric: test_accuracy, x: batch_size, name: c2}
            - {kind: bar, metric: test_accuracy, x: batch_size, name: b2}
            - {kind: line, metric: test_accuracy, log_x: 2, name: l2}
        """))
        #expect(plots.contains { $0.path == "report.plots[0].x" && $0.message.contains("not a grid axis") })
        #expect(plots.contains { $0.path == "report.plots[1].x" && $0.message.contains("epoch or steps") })
        #expect(plots.contains { $0.path == "report.plots[2].x" && $0.message.contains("line and curve") })
        #expect(plots.contains { $0.path == "report.plots[3].log_x" })
    }

    @Test func linePlotsDrawOneLinePerOtherAxisCombination() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir, yaml: variant("    - {kind: bar, metric: test_accuracy}",
                                                        "    - {kind: line, metric: test_accuracy, x: batch_size, log_x: true, name: acc-line}"))
        let payload = try report.figurePayload(try #require(report.plots.first { $0.kind == .line }))
        let lines = try #require(payload["lines"]?.listValue)
        #expect(lines.count == 4)   // norm (2) x width (2)
        #expect(lines.allSatisfy { $0["x"]?.listValue?.compactMap(\.doubleValue) == [2, 32] })
        #expect(payload["xticklabels"]?.listValue?.compactMap(\.stringValue) == ["2, 0.01", "32, 0.1"])
        let files = try report.renderFigures(to: dir.file("figs"))
        #expect(files.contains { $0.hasSuffix("acc-line.png") } && files.contains { $0.hasSuffix("acc-line.svg") })
    }

    @Test func mapValuesGetCompactLabels() {
        let gn: ConfigValue = .map([("name", .string("gn")), ("options", .map([("num_groups", .integer(4))]))])
        #expect(gn.compactLabel == "gn(num_groups=4)")
        #expect(ConfigValue.map([("name", .string("bn"))]).compactLabel == "bn")
        #expect(ConfigValue.map([("a", .integer(1)), ("b", .map([("c", .bool(true))]))]).compactLabel == "a=1, b.c=true")
        #expect(ConfigValue.string("frn").compactLabel == "frn")
    }
}
