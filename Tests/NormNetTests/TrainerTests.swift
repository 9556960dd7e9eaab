import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

@Suite struct TrainerTests {
    let registry = Builtins.registry
    let data = subset(syntheticData, train: 192, test: 64)

    func runOnce(norm: NormSpec?, seed: UInt64, lr: Double = 0.05, steps: Int = 12) throws -> (TrainingResult, [String: Tensor]) {
        let model = try Model(spec: smallSpec(norm: norm), registry: registry, seed: seed)
        let config = TrainingConfig(batchSize: 32, duration: .steps(steps), seed: seed,
                                    optimizer: SGDConfig(learningRate: lr, momentum: 0.9, weightDecay: 1e-3, nesterov: true),
                                    schedule: LRSchedule(.cosine(minimumFactor: 0), warmupSteps: 3), evaluateEachEpoch: true)
        let r = try Trainer(model: model, dataset: data, config: config).run()
        return (r, snapshot(model))
    }

    @Test(arguments: [NormSpec("bn"), NormSpec("brn"), NormSpec("gn", options: ["num_groups": .integer(4)])])
    func sameSeedSameRun(_ norm: NormSpec) throws {
        let (a, pa) = try runOnce(norm: norm, seed: 5)
        let (b, pb) = try runOnce(norm: norm, seed: 5)
        #expect(a.losses.map(\.bitPattern) == b.losses.map(\.bitPattern))
        #expect(a.testAccuracy == b.testAccuracy && a.history == b.history && a.normTelemetry == b.normTelemetry)
        for k in pa.keys { #expect(pa[k]!.isBitIdentical(to: pb[k]!), "\(k)") }
        let (c, _) = try runOnce(norm: norm, seed: 6)
        #expect(c.losses != a.losses)
    }

    @Test func samplerIsADeterministicPermutation() {
        var a = BatchSampler(count: 10, batchSize: 3, seed: 1), b = BatchSampler(count: 10, batchSize: 3, seed: 1)
        var epoch: [Int] = []
        for _ in 0..<3 { let x = a.next(); #expect(Array(x) == Array(b.next())); epoch += x }
        #expect(Set(epoch).count == 9 && a.epoch == 1 && a.batchesPerEpoch == 3)
        _ = a.next()
        #expect(a.epoch == 2)
    }

    @Test func epochsAndHistory() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 1)
        let config = TrainingConfig(batchSize: 64, duration: .epochs(2), schedule: LRSchedule(.constant), evaluateEachEpoch: true)
        let trainer = try Trainer(model: model, dataset: data, config: config)
        #expect(trainer.totalSteps == 6)
        var seen = 0
        let r = try trainer.run { _ in seen += 1 }
        #expect(seen == 6 && r.steps == 6 && r.epochs == 2 && r.history.count == 2 && r.history[1].testAccuracy != nil)
    }

    @Test(arguments: [NormCase(spec: nil), NormCase(spec: NormSpec("bn"))])
    func divergenceIsReportedNotThrown(_ c: NormCase) throws {
        let (r, _) = try runOnce(norm: c.spec, seed: 1, lr: 1e30, steps: 20)
        #expect(r.diverged)
        #expect(r.divergedAtStep != nil && r.steps < 20 && r.divergenceLoss != nil)
        let json = RunReport(dataset: data, model: try Model(spec: smallSpec(norm: c.spec), registry: registry, seed: 1),
                             config: TrainingConfig(), seed: 1, threads: 1, result: r).json.rendered()
        #expect(json.contains("\"diverged\": true"))
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(parsed?["diverged"] as? Bool == true)
    }

    @Test func trainModeEvaluationRestoresBuffers() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 1)
        let before = snapshot(model)
        _ = try Evaluation.accuracy(model, inputs: data.testInputs, labels: data.testLabels, mode: .train, batchSize: 16)
        let after = snapshot(model)
        for k in before.keys { #expect(before[k]!.isBitIdentical(to: after[k]!)) }
        #expect(Evaluation.batchRanges(count: 9, batchSize: 4) == [0..<4, 4..<9])
        #expect(Evaluation.batchRanges(count: 10, batchSize: 4) == [0..<4, 4..<8, 8..<10])
        #expect(Evaluation.batchRanges(count: 11, batchSize: 4) == [0..<4, 4..<8, 8..<11])
    }

    @Test func jsonRendering() {
        let v: ConfigValue = .map([("a", .real(0.1)), ("b", .real(2)), ("c", .real(.nan)), ("d", .string("x\"\n")),
                                   ("e", .list([.integer(1), .null, .bool(true)]))])
        #expect(v.rendered() == #"{"a": 0.1, "b": 2.0, "c": null, "d": "x\"\n", "e": [1, null, true]}"#)
        #expect(v.orderedJSON == #"{"a":0.1,"b":2.0,"c":null,"d":"x\"\n","e":[1,null,true]}"#)
        #expect(ConfigValue.optional(nil as Double?) == .null && ConfigValue.optional(0.5 as Double?) == .real(0.5))
        #expect(ConfigValue.optional(nil as String?) == .null && ConfigValue.optional("s" as String?) == .string("s"))
        #expect(ConfigValue.optional(nil as Int?) == .null && ConfigValue.optional(3 as Int?) == .integer(3))
        #expect(ConfigValue(OptionValue.none) == .null && ConfigValue(OptionValue.text("unbiased")) == .string("unbiased"))
    }

    @Test func unsignedValuesPrintExactly() {
        let max = ConfigValue.unsigned(.max)
        #expect(max.rendered() == "18446744073709551615" && max.canonicalJSON == "18446744073709551615")
        #expect(max.orderedJSON == "18446744073709551615" && max.description == "18446744073709551615")
        #expect(max.intValue == nil && max.doubleValue == 1.8446744073709552e19 && max.kindName == "an integer")
        #expect(ConfigValue.unsigned(7) == .integer(7) && ConfigValue.integer(7) == .unsigned(7) && ConfigValue.unsigned(7).intValue == 7)
        #expect(ConfigValue.integer(-1) != .unsigned(.max) && ConfigValue.unsigned(1 << 63) != .integer(.min))
    }

    /// The `normlab train --json` object: the same run twice renders the same text (once
    /// the wall-clock `seconds` agree), keys in print order, and a `UInt64.max` seed exactly.
    @Test func runReportRendersIdenticallyAndKeepsLargeSeeds() throws {
        func report(seed: UInt64) throws -> RunReport {
            let model = try Model(spec: smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(4)])), registry: registry, seed: seed)
            let config = TrainingConfig(batchSize: 32, duration: .steps(3), seed: seed,
                                        schedule: LRSchedule(.constant), evaluateEachEpoch: true)
            let result = try Trainer(model: model, dataset: data, config: config).run()
            return RunReport(dataset: data, model: model, config: config, seed: seed, threads: 1, result: result)
        }
        let a = try report(seed: .max)
        var b = try report(seed: .max)
        b.result.seconds = a.result.seconds
        let text = a.json.rendered()
        #expect(text == b.json.rendered())
        #expect(!text.contains("\n") && text.hasPrefix(#"{"dataset": "#))
        #expect(text.contains(#""seed": 18446744073709551615, "threads": 1, "#))
        #expect(a.json["seed"] == .unsigned(.max))
        #expect(a.json.mapValue!.prefix(5).map(\.key) == ["dataset", "dataset_hash", "norm", "norm_options", "test_accuracy"])
        #expect(a.json.value(at: "norm_options.num_groups") == .integer(4))
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(parsed?["norm"] as? String == "group_norm")
        let small = try report(seed: 3).json
        #expect(small["seed"] == .integer(3) && small.rendered().contains(#""seed": 3, "#))
    }

    @Test func recipeAppliesOverridesOnThePreset() throws {
        var recipe = TrainingRecipe(norm: try TrainingRecipe.normSpec(name: "gn", settings: ["num_groups=2"], registry: registry))
        recipe.width = 4; recipe.depth = 2; recipe.head = .globalAvgPool; recipe.momentum = 0
        recipe.duration = .steps(3); recipe.batchSize = 16; recipe.schedule = .constant; recipe.seed = 9
        let spec = recipe.modelSpec(for: data), config = recipe.config(for: data)
        #expect(spec.width == 4 && spec.depth == 2 && spec.kernel == TrainPresets.model(for: data, norm: nil).kernel)
        #expect(config.optimizer.momentum == 0 && !config.optimizer.nesterov && config.batchSize == 16)
        let a = try recipe.run(on: data, registry: registry), b = try recipe.run(on: data, registry: registry)
        #expect(a.result.steps == 3 && a.result.losses == b.result.losses)
        #expect(a.report.json.rendered().contains("\"norm\": \"group_norm\""))
        #expect(try TrainingRecipe.normSpec(name: "NONE", settings: [], registry: registry) == nil)
        #expect(throws: NetError.self) { try TrainingRecipe.normSpec(name: "none", settings: ["eps=1"], registry: registry) }
        #expect(throws: NormError.self) { try TrainingRecipe.normSpec(name: "bn", settings: ["nope=1"], registry: registry) }
    }

    @Test func mismatchedDataIsRefused() throws {
        let model = try Model(spec: smallSpec(norm: nil, input: [1, 16]), registry: registry, seed: 1)
        #expect(throws: NetError.self) { try Trainer(model: model, dataset: data, config: TrainingConfig()) }
        let ok = try Model(spec: smallSpec(norm: nil), registry: registry, seed: 1)
        #expect(throws: NetError.self) { try Trainer(model: ok, dataset: data, config: TrainingConfig(batchSize: 0)) }
    }
}
