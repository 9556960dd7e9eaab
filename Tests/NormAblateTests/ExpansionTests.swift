import Foundation
import Testing
@testable import NormAblate

@Suite struct ExpansionTests {
    @Test func cartesianProductWithZipInSpecOrderLastAxisFastest() throws {
        let cells = try smallSpec().cells()
        #expect(cells.count == 8)
        #expect(cells.map(\.index) == Array(0..<8))
        let rows = cells.map { c in
            "\(c.config["model.norm.name"]!) \(c.config["batch_size"]!) \(c.config["optimizer.lr"]!) \(c.config["model.width"]!)"
        }
        #expect(rows == [
            "bn 2 0.01 8", "bn 2 0.01 16", "bn 32 0.1 8", "bn 32 0.1 16",
            "gn 2 0.01 8", "gn 2 0.01 16", "gn 32 0.1 8", "gn 32 0.1 16",
        ])
        #expect(cells[5].coordinates == [1, 0, 1])
        #expect(cells[5].settings.map(\.yamlPath) == ["grid.model.norm.name[1]", "grid.zip[0].batch_size[0]", "grid.zip[0].optimizer.lr[0]", "grid.model.width[1]"])
        #expect(cells[5].label == "model.norm.name=gn, batch_size=2, optimizer.lr=0.01, model.width=16")
        // untouched base values are kept in every cell
        #expect(cells.allSatisfy { $0.config["model.depth"] == .integer(2) && $0.config["optimizer.momentum"] == .real(0.9) })
        #expect(Set(cells.map(\.hash)).count == 8)
    }

    @Test func expansionIsDeterministic() throws {
        let a = try smallSpec().cells().map(\.hash)
        let b = try smallSpec().cells().map(\.hash)
        #expect(a == b)
        // key order inside base does not change any cell's identity
        let reordered = smallSpecYAML.replacingOccurrences(of: "  optimizer: {lr: 0.1, momentum: 0.9}", with: "  optimizer: {momentum: 0.9, lr: 0.1}")
        #expect(try AblationSpec.parse(yaml: reordered, source: "r").cells().map(\.hash) == a)
    }

    @Test func gridCanCreateALeafAndSetAMap() throws {
        let spec = try AblationSpec.parse(yaml: """
            name: maps
            base: {model: {norm: {name: bn}}}
            grid:
              model.norm: [{name: bn}, {name: gn, options: {num_groups: 2}}]
              model.dropout: [0.0, 0.5]
            """, source: "m")
        let cells = try spec.cells(validatingWith: FakeRunner())
        #expect(cells.count == 4)
        #expect(cells[2].config["model.norm.options.num_groups"] == .integer(2))
        #expect(cells[1].config["model.dropout"] == .real(0.5))
    }

    @Test func noGridIsOneCell() throws {
        let spec = try AblationSpec.parse(yaml: "name: one\nbase: {epochs: 2}\nseeds: [5, 9]", source: "o")
        let cells = try spec.cells()
        #expect(cells.count == 1)
        #expect(cells[0].settings.isEmpty)
        let plan = RunPlan(spec: spec, cells: cells)
        #expect(plan.runs.map(\.seed) == [5, 9])
    }

    @Test func seedsAreARepeatDimension() throws {
        let spec = try smallSpec()
        let plan = RunPlan(spec: spec, cells: try spec.cells())
        #expect(plan.runs.count == 24)
        #expect(plan.runs.map(\.ordinal) == Array(0..<24))
        #expect(plan.runs.prefix(3).map(\.seed) == [0, 1, 2])
        #expect(plan.runs.prefix(3).allSatisfy { $0.cell.index == 0 })
    }

    @Test func shardsPartitionEveryRunExactlyOnce() throws {
        let spec = try smallSpec()
        let plan = RunPlan(spec: spec, cells: try spec.cells())
        for n in [1, 2, 3, 5, 7, 24, 30] {
            var seen: [RunKey: Int] = [:]
            for i in 1...n {
                let part = plan.runs(in: try Shard(index: i, count: n))
                #expect(abs(part.count - plan.runs.count / n) <= 1)
                for r in part { seen[r.key, default: 0] += 1 }
            }
            #expect(seen.count == plan.runs.count)
            #expect(seen.values.allSatisfy { $0 == 1 })
        }
        // deterministic: the same shard twice is the same runs
        #expect(plan.runs(in: try Shard(parsing: "2/3")).map(\.key) == plan.runs(in: try Shard(parsing: "2/3")).map(\.key))
        #expect(throws: AblationError.self) { try Shard(parsing: "0/3") }
        #expect(throws: AblationError.self) { try Shard(parsing: "4/3") }
        #expect(throws: AblationError.self) { try Shard(parsing: "two") }
    }

    @Test func configAccessorsThrowProblemsWithPaths() throws {
        let c = CellConfig(try YAMLTree(text: "a: {b: 2, s: x, f: 1.5, t: true}", source: "t").root)
        #expect(try c.int("a.b") == 2)
        #expect(try c.double("a.b") == 2)
        #expect(try c.int("a.zz", default: 7) == 7)
        #expect(try c.bool("a.t"))
        #expect(try c.string("a.s") == "x")
        #expect(c.keys(at: "a") == ["b", "s", "f", "t"])
        #expect(throws: ConfigProblem(path: "a.s", message: "must be an integer, got a string (x)")) { try c.int("a.s") }
        #expect(throws: ConfigProblem(path: "a.f", message: "must be an integer, got a number (1.5)")) { try c.int("a.f") }
        #expect(throws: ConfigProblem(path: "a.q", message: "is required")) { try c.double("a.q") }
        #expect(c.unknownKeys(at: "a", allowed: ["b", "s", "f"]) == [ConfigProblem(path: "a.t", message: "unknown key 't' (expected one of: b, s, f)")])
    }

    @Test func fakeRunnerIsDeterministic() throws {
        let cells = try smallSpec().cells()
        let runner = FakeRunner()
        let a = try runner.run(cells[3].config, seed: 1, threads: 1)
        let b = try FakeRunner().run(cells[3].config, seed: 1, threads: 4)
        #expect(a.sameOutcome(as: b))
        #expect(!a.sameOutcome(as: try runner.run(cells[3].config, seed: 2, threads: 1)))
        #expect(a.curves["test_accuracy"]?.count == 3)
        #expect(a.curves["test_accuracy"]?.last.map { abs($0 - a.metrics["test_accuracy"]!) < 1e-12 } == true)
        let diverging = CellConfig(cells[0].config.root.merging(.map([("optimizer", .map([("lr", .real(2.0))]))])))
        let d = try runner.run(diverging, seed: 0, threads: 1)
        #expect(d.diverged && d.metrics["test_loss"]!.isNaN)
    }
}
