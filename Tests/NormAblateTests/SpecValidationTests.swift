import Foundation
import Testing
@testable import NormAblate

/// A valid spec with one line replaced.
func variant(_ old: String, _ new: String) -> String {
    precondition(smallSpecYAML.contains(old), "no '\(old)' in the small spec")
    return smallSpecYAML.replacingOccurrences(of: old, with: new)
}

@Suite struct SpecParsingTests {
    @Test func parsesTheSmallSpec() throws {
        let spec = try smallSpec()
        #expect(spec.name == "small")
        #expect(spec.description == "A test study.")
        #expect(spec.axes.map(\.name) == ["model.norm.name", "batch_size+optimizer.lr", "model.width"])
        #expect(spec.axes[1].zipIndex == 0)
        #expect(spec.seeds == [0, 1, 2])
        #expect(spec.report.rows == ["model.norm.name", "model.width"])
        #expect(spec.report.columns == ["batch_size+optimizer.lr"])
        #expect(spec.report.metrics == ["test_accuracy", "test_loss"])
        #expect(spec.report.plots.map(\.name) == ["test_accuracy-bar", "acc-curves"])
        #expect(spec.axisLabels == ["model.norm.name": "norm.name", "batch_size+optimizer.lr": "batch_size+lr", "model.width": "width"])
        #expect(spec.cellCount == 8)
        #expect(!spec.hasQuick)
    }

    @Test func scalarsFollowTheYAML12CoreSchema() throws {
        let tree = try YAMLTree(text: """
            a: 1e-3
            b: yes
            c: '1'
            d: ~
            e: 0x1F
            f: -2
            g: .5
            h: True
            i: "true"
            j: 1.0
            k: +3
            l: 1_000
            """, source: "t").root
        #expect(tree["a"] == .real(0.001))
        #expect(tree["b"] == .string("yes"))
        #expect(tree["c"] == .string("1"))
        #expect(tree["d"] == .null)
        #expect(tree["e"] == .integer(31))
        #expect(tree["f"] == .integer(-2))
        #expect(tree["g"] == .real(0.5))
        #expect(tree["h"] == .bool(true))
        #expect(tree["i"] == .string("true"))
        #expect(tree["j"] == .real(1.0))
        #expect(tree["k"] == .integer(3))
        #expect(tree["l"] == .string("1_000"))
    }

    @Test func anchorsAndAliasesAreExpanded() throws {
        let tree = try YAMLTree(text: "opt: &o {lr: 0.1}\nother: *o", source: "t").root
        #expect(tree["other"] == tree["opt"])
    }

    @Test func yamlErrorsCarryTheirLine() {
        let syntax = specProblems("name: x\nbase: {a: 1\ngrid: [", runner: nil)
        #expect(syntax.count == 1)
        #expect(syntax.first?.message.hasPrefix("not valid YAML") == true)
        #expect(syntax.first?.line != nil)
        let dup = specProblems("name: x\nbase:\n  a: 1\n  a: 2\n", runner: nil)
        #expect(dup.first?.message.contains("duplicate") == true)
        #expect(dup.first?.line != nil)
        let nan = specProblems("name: x\nbase:\n  lr: .nan\n", runner: nil)
        #expect(has(nan, "base.lr", "not a finite number"))
        #expect(nan.first?.line == 3)
        #expect(specProblems("", runner: nil).first?.message == "the spec is empty")
        #expect(has(specProblems("- a\n- b", runner: nil), "", "must be a map"))
    }

    @Test func problemsKnowTheirLineAndRenderAsFileLinePathMessage() throws {
        do {
            _ = try AblationSpec.parse(yaml: variant("model.width: [8, 16]", "model.width: []"), source: "small.yaml").cells()
            Issue.record("expected a failure")
        } catch let error as SpecError {
            #expect(error.problems.count == 2)   // and report.rows names the axis that is gone
            let line = smallSpecYAML.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("model.width: [8, 16]") }! + 1
            #expect(error.problems[0].line == line)
            #expect(error.lines.first == "small.yaml:\(line): grid.model.width: has no values (an empty axis would make an empty grid)")
        }
    }

    @Test func storedSpecReadsBackWithTheSameHash() throws {
        let spec = try smallSpec()
        let again = try AblationSpec.fromStored(json: spec.effectiveJSON, source: "store")
        #expect(again.hash == spec.hash)
        #expect(again.report == spec.report)
        #expect(try again.cells().map(\.hash) == (try spec.cells().map(\.hash)))
        #expect(again.description == spec.description)
    }
}

@Suite struct SpecValidationTests {
    @Test func topLevel() {
        #expect(has(specProblems(variant("seeds: 3", "seeds: 3\nsedes: 4")), "sedes", "unknown key"))
        #expect(has(specProblems(variant("name: small", "")), "name", "is required"))
        #expect(has(specProblems(variant("name: small", "name: 'a b'")), "name", "must be letters"))
        #expect(has(specProblems(variant("name: small", "name: 3")), "name", "must be a string"))
        #expect(has(specProblems(variant("description: A test study.", "description: [1]")), "description", "must be a string"))
        #expect(has(specProblems("name: x\ngrid: {}", runner: nil), "base", "is required"))
        #expect(has(specProblems("name: x\nbase: [1]", runner: nil), "base", "must be a map"))
        #expect(has(specProblems("name: x\nbase: {bad key: 1}", runner: nil), "base.bad key", "identifiers"))
    }

    @Test func gridAxes() {
        #expect(has(specProblems(variant("model.width: [8, 16]", "model.width: 8")), "grid.model.width", "must be a list of values"))
        #expect(has(specProblems(variant("model.width: [8, 16]", "model.width: []")), "grid.model.width", "has no values"))
        #expect(has(specProblems(variant("model.width: [8, 16]", "model..width: [8]")), "grid.model..width", "not a dotted path"))
        #expect(has(specProblems(variant("model.width: [8, 16]", "optimzer.momentum: [0.9]")), "grid.optimzer.momentum", "base has no 'optimzer'"))
        #expect(has(specProblems(variant("model.width: [8, 16]", "epochs.count: [1, 2]")), "grid.epochs.count", "base.epochs is an integer, not a map"))
        #expect(has(specProblems(variant("model.width: [8, 16]", "model.norm: [{name: bn}]")), "grid.model.norm", "overlaps the axis grid.model.norm.name"))
        #expect(has(specProblems("name: x\nbase: {a: 1}\ngrid: [a]", runner: nil), "grid", "must be a map"))
    }

    @Test func zipGroups() {
        #expect(has(specProblems(variant("      optimizer.lr: [0.01, 0.1]", "      optimizer.lr: [0.01, 0.1, 1.0]")),
                    "grid.zip[0].optimizer.lr", "has 3 values but grid.zip[0].batch_size has 2"))
        #expect(has(specProblems(variant("  zip:\n    - batch_size: [2, 32]\n      optimizer.lr: [0.01, 0.1]", "  zip: {batch_size: [2]}")),
                    "grid.zip", "must be a list of groups"))
        #expect(has(specProblems(variant("  zip:\n    - batch_size: [2, 32]\n      optimizer.lr: [0.01, 0.1]", "  zip: []")), "grid.zip", "has no groups"))
        #expect(has(specProblems(variant("  zip:\n    - batch_size: [2, 32]\n      optimizer.lr: [0.01, 0.1]", "  zip: [{}]")), "grid.zip[0]", "is empty"))
        #expect(has(specProblems(variant("      optimizer.lr: [0.01, 0.1]", "      optimizer.lr: []")), "grid.zip[0].optimizer.lr", "has no values"))
        #expect(specProblems(variant("      optimizer.lr: [0.01, 0.1]", "      batch_size: [0.01, 0.1]")).contains { $0.message.contains("duplicate key") })
    }

    @Test func seeds() {
        #expect(has(specProblems(variant("seeds: 3", "seeds: 0")), "seeds", "between 1 and 10000"))
        #expect(has(specProblems(variant("seeds: 3", "seeds: [0, -1]")), "seeds[1]", "non-negative integer"))
        #expect(has(specProblems(variant("seeds: 3", "seeds: [4, 5, 4]")), "seeds[2]", "already listed (seeds[0])"))
        #expect(has(specProblems(variant("seeds: 3", "seeds: []")), "seeds", "has no seeds"))
        #expect(has(specProblems(variant("seeds: 3", "seeds: many")), "seeds", "must be a count"))
    }

    @Test func report() {
        #expect(has(specProblems(variant("  columns: [batch_size]", "  colums: [batch_size]")), "report.colums", "unknown key"))
        #expect(has(specProblems(variant("  rows: [model.norm.name, model.width]", "  rows: [model.depth, model.width]")), "report.rows[0]", "'model.depth' is not a grid axis"))
        #expect(has(specProblems(variant("  rows: [model.norm.name, model.width]", "  rows: [model.norm.name, model.width, batch_size]")), "report.rows[2]", "also in report.columns"))
        #expect(has(specProblems(variant("  rows: [model.norm.name, model.width]", "  rows: [model.norm.name]")), "report.rows", "axis 'model.width' is in neither"))
        #expect(has(specProblems(variant("  rows: [model.norm.name, model.width]", "  rows: [model.norm.name, model.norm.name, model.width]")), "report.rows[1]", "listed twice"))
        #expect(has(specProblems(variant("  metrics: [test_accuracy, test_loss]", "  metrics: []")), "report.metrics", "is empty"))
        #expect(has(specProblems(variant("  metrics: [test_accuracy, test_loss]", "  metrics: [test_accuracy, test_accuracy]")), "report.metrics[1]", "listed twice"))
        #expect(has(specProblems(variant("    - {kind: bar, metric: test_accuracy}", "    - {kind: pie, metric: test_accuracy}")), "report.plots[0].kind", "'pie' is not a plot kind"))
        #expect(has(specProblems(variant("    - {kind: bar, metric: test_accuracy}", "    - {kind: bar}")), "report.plots[0].metric", "is required"))
        #expect(has(specProblems(variant("    - {kind: bar, metric: test_accuracy}", "    - {kind: bar, metric: test_accuracy, colour: red}")), "report.plots[0].colour", "unknown key"))
        #expect(has(specProblems(variant("name: acc-curves}", "name: test_accuracy-bar}")), "report.plots[1]", "already exists"))
        #expect(has(specProblems(variant("report:", "report: 3\nignored:")), "report", "must be a map"))
    }

    @Test func duplicateCellsAreRefused() {
        let p = specProblems(variant("model.norm.name: [bn, gn]", "model.norm.name: [bn, gn, bn]"))
        #expect(p.count == 1)
        #expect(has(p, "grid.model.norm.name[2]", "duplicate cell: resolves to the same configuration as grid.model.norm.name[0]"))
        // a zip row equal to another
        let z = specProblems(variant("    - batch_size: [2, 32]\n      optimizer.lr: [0.01, 0.1]", "    - batch_size: [2, 2]\n      optimizer.lr: [0.01, 0.01]"))
        #expect(z.contains { $0.message.hasPrefix("duplicate cell") })
        // a grid value equal to the base value is fine (the base value is not a cell by itself)
        #expect((try? AblationSpec.parse(yaml: variant("model.width: [8, 16]", "model.width: [8]"), source: "t").cells().count) == 4)
    }

    @Test func runnerProblemsAreMappedToTheirSpecPath() {
        // a grid value → grid.<axis>[i], naming the cells it occurs in
        let p = specProblems(variant("model.width: [8, 16]", "model.width: [8, 16]\n  epochs: [1, 2, 0]")
            .replacingOccurrences(of: "rows: [model.norm.name, model.width]", with: "rows: [model.norm.name, model.width, epochs]"))
        #expect(has(p, "grid.epochs[2]", "must be a positive integer, got 0 (in 8 of 24 cells"))
        // a zip value → grid.zip[g].<path>[i]
        let z = specProblems(variant("      optimizer.lr: [0.01, 0.1]", "      optimizer.lr: [-0.01, 0.1]"))
        #expect(has(z, "grid.zip[0].optimizer.lr[0]", "must be a positive number, got -0.01"))
        // a base value → base.<path>, reported once for all cells
        let b = specProblems(variant("  epochs: 3", "  epochs: three"))
        #expect(b.filter { $0.path == "base.epochs" }.count == 1)
        #expect(has(b, "base.epochs", "must be an integer, got a string (three)"))
        // a value inside a map axis value keeps the rest of the path
        let n = specProblems(variant("model.norm.name: [bn, gn]", "model.norm.name: [bn, groupnrom]"))
        #expect(has(n, "grid.model.norm.name[1]", "unknown normalization 'groupnrom'"))
        // metrics the runner does not report
        let m = specProblems(variant("  metrics: [test_accuracy, test_loss]", "  metrics: [test_acc]"))
        #expect(has(m, "report.metrics[0]", "runner 'fake' reports no metric 'test_acc'"))
        let pm = specProblems(variant("name: acc-curves}", "name: acc-curves}\n    - {kind: bar, metric: f1}"))
        #expect(has(pm, "report.plots[2].metric", "reports no metric 'f1'"))
    }

    @Test func everyProblemIsReportedAtOnce() {
        let p = specProblems("""
            name: x
            bogus: 1
            base: {epochs: 2}
            grid:
              epochs: []
              lr: 3
            seeds: [-1]
            report: {rows: [nope]}
            """, runner: nil)
        #expect(has(p, "bogus") && has(p, "grid.epochs") && has(p, "grid.lr") && has(p, "seeds[0]") && has(p, "report.rows[0]"))
    }

    @Test func quickSection() throws {
        let yaml = smallSpecYAML + """

            quick:
              base: {epochs: 1, model: {depth: 1}}
              grid: {model.width: [8]}
              seeds: 1
            """
        let spec = try AblationSpec.parse(yaml: yaml, source: "q.yaml")
        #expect(spec.hasQuick)
        let quick = try spec.quickVariant()
        #expect(quick.name == "small-quick")
        #expect(quick.isQuick)
        #expect(quick.seeds == [0])
        #expect(quick.cellCount == 4)
        #expect(quick.base.value(at: "epochs") == .integer(1))
        #expect(quick.base.value(at: "model.depth") == .integer(1))
        #expect(quick.base.value(at: "model.width") == .integer(8))   // untouched keys stay
        #expect(quick.hash != spec.hash)
        // problems in quick values point into the quick section
        let q1 = specProblems(yaml.replacingOccurrences(of: "epochs: 1, model", with: "epochs: 0, model"), quick: true)
        #expect(has(q1, "quick.base.epochs", "must be a positive integer"))
        let q2 = specProblems(yaml.replacingOccurrences(of: "grid: {model.width: [8]}", with: "grid: {model.width: []}"), quick: true)
        #expect(has(q2, "quick.grid.model.width", "has no values"))
        let q3 = specProblems(yaml.replacingOccurrences(of: "grid: {model.width: [8]}", with: "grid: {model.depth: [1]}"))
        #expect(has(q3, "quick.grid.model.depth", "not an axis of grid"))
        let q4 = specProblems(yaml.replacingOccurrences(of: "seeds: 1", with: "seeds: 1\n  report: {}"))
        #expect(has(q4, "quick.report", "unknown key"))
        #expect(throws: AblationError.self) { try smallSpec().quickVariant() }
    }

    @Test func paperSectionGrowsTheStudy() throws {
        let yaml = smallSpecYAML + """

            paper:
              base: {epochs: 90, model: {depth: 8}}
              grid:
                model.norm.name: [bn, gn, ln]
                zip:
                  - batch_size: [2, 4, 8, 32]
                    optimizer.lr: [0.0025, 0.005, 0.01, 0.1]
              seeds: 10
            """
        let spec = try AblationSpec.parse(yaml: yaml, source: "p.yaml")
        #expect(spec.variantScales == [.paper])
        #expect(!spec.hasQuick)
        let paper = try spec.variant(.paper)
        #expect(paper.name == "small-paper")
        #expect(paper.scale == .paper && !paper.isQuick)
        #expect(paper.seeds == Array(0..<10))
        #expect(paper.cellCount == 3 * 4 * 2)
        #expect(paper.base.value(at: "epochs") == .integer(90))
        #expect(paper.base.value(at: "model.width") == .integer(8))   // untouched keys stay
        #expect(try spec.variant(.full).hash == spec.hash)
        // a variant section is not part of the study's identity: adding one keeps the stores valid
        #expect(spec.hash == (try smallSpec()).hash)
        #expect(throws: AblationError.self) { try spec.variant(.quick) }
    }

    @Test func variantZipMustRepeatTheGridsGroups() throws {
        func problems(_ zip: String) -> [ConfigProblem] {
            specProblems(smallSpecYAML + "\nquick:\n  grid:\n    zip: \(zip)\n")
        }
        #expect(has(problems("[]"), "quick.grid.zip", "must list the grid's 1 zip group again"))
        #expect(has(problems("[{batch_size: [2]}]"), "quick.grid.zip[0]", "must give the paths of grid.zip[0] (batch_size, optimizer.lr)"))
        #expect(has(problems("[{optimizer.lr: [0.1], batch_size: [32]}]"), "quick.grid.zip[0]", "in order"))
        // lengths are checked with the variant, at the variant's path
        let q = specProblems(smallSpecYAML + "\nquick:\n  grid:\n    zip: [{batch_size: [2, 4], optimizer.lr: [0.1]}]\n", quick: true)
        #expect(has(q, "quick.grid.zip[0].optimizer.lr", "must have the same length"))
        let ok = try AblationSpec.parse(yaml: smallSpecYAML + "\nquick:\n  grid:\n    zip: [{batch_size: [4], optimizer.lr: [0.02]}]\n",
                                        source: "z.yaml").quickVariant()
        #expect(ok.cellCount == 2 * 1 * 2)
    }
}
