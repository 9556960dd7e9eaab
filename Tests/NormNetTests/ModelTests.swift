import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

struct NormCase: Sendable, CustomTestStringConvertible {
    let spec: NormSpec?
    var testDescription: String { spec.map { "\($0.name) \($0.options.keys.sorted())" } ?? "none" }
}

let everyNorm: [NormCase] = [
    NormCase(spec: NormSpec("bn")),
    NormCase(spec: NormSpec("brn")),
    NormCase(spec: NormSpec("gn", options: ["num_groups": .integer(4)])),
    NormCase(spec: NormSpec("ln")),
    NormCase(spec: NormSpec("in")),
    NormCase(spec: NormSpec("in", options: ["track_running_stats": .bool(true), "affine": .bool(true)])),
    NormCase(spec: NormSpec("frn")),
    NormCase(spec: nil),
]

@Suite struct ModelTests {
    let registry = Builtins.registry

    @Test(arguments: everyNorm)
    func buildsAndLearns(_ c: NormCase) throws {
        let model = try Model(spec: smallSpec(norm: c.spec), registry: registry, seed: 3)
        #expect(model.normSlots.count == (c.spec == nil ? 0 : 2))
        let config = TrainingConfig(batchSize: 32, duration: .steps(24), seed: 1,
                                    optimizer: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0),
                                    schedule: LRSchedule(.constant))
        let result = try Trainer(model: model, dataset: subset(syntheticData, train: 256, test: 64), config: config).run()
        #expect(!result.diverged)
        let first = result.losses.prefix(4).reduce(0, +) / 4, last = result.losses.suffix(4).reduce(0, +) / 4
        #expect(last < first, "loss \(first) -> \(last)")
        #expect(result.testAccuracy != nil)
    }

    @Test func twoDimensionalModel() throws {
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.randomNormal([3, 1, 8, 8], using: &rng)
        let spec = ModelSpec(inputShape: [1, 8, 8], classes: 10, depth: 3, width: 4, kernel: 3,
                             norm: NormSpec("gn", options: ["num_groups": .integer(2)]), widthGrowth: 2)
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.featureShape == [16, 2, 2])
        #expect(try model.forward(x).shape == [3, 10])
    }

    @Test func structureAndNames() throws {
        let spec = ModelSpec(inputShape: [1, 40], classes: 10, depth: 4, width: 8, kernel: 5, norm: NormSpec("bn"))
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.blocks.map(\.stage) == [0, 1, 2, 3])
        #expect(model.featureShape == [8, 5])
        let names = model.namedParameters.map(\.name)
        #expect(names.contains("blocks.0.conv.weight") && names.contains("blocks.3.norm.bias") && names.contains("classifier.weight"))
        #expect(!names.contains("blocks.0.conv.bias"))
        #expect(model.namedBuffers.map(\.name).contains("blocks.2.norm.running_var"))
        // Decay on conv/linear weights only.
        #expect(model.namedParameters.filter(\.decays).map(\.name) == ["blocks.0.conv.weight", "blocks.1.conv.weight",
                                                                          "blocks.2.conv.weight", "blocks.3.conv.weight", "classifier.weight"])
        // Stages group blocks by resolution after the stem.
        let grouped = try Model(spec: ModelSpec(inputShape: [1, 40], classes: 10, depth: 5, width: 4, norm: nil, downsampleEvery: 2),
                                registry: registry, seed: 1)
        #expect(grouped.blocks.map(\.stage) == [0, 1, 2, 2, 3])
    }

    @Test func normPositionAndFRNActivation() throws {
        let after = try Model(spec: ModelSpec(inputShape: [1, 16], classes: 3, depth: 1, width: 4, norm: NormSpec("bn"), normPosition: .after),
                              registry: registry, seed: 1)
        #expect(after.blocks[0].layers.map(\.name) == ["conv", "act", "norm"])
        let frn = try Model(spec: ModelSpec(inputShape: [1, 16], classes: 3, depth: 2, width: 4, norm: NormSpec("frn")), registry: registry, seed: 1)
        #expect(frn.blocks[0].layers.map(\.name) == ["conv", "norm", "pool"])
        let frnNoTLU = try Model(spec: ModelSpec(inputShape: [1, 16], classes: 3, depth: 1, width: 4, norm: NormSpec("frn", options: ["tlu": .bool(false)])),
                                 registry: registry, seed: 1)
        #expect(frnNoTLU.blocks[0].layers.map(\.name) == ["conv", "norm", "act"])
    }

    @Test func badSpecsAreRefused() {
        #expect(throws: NormError.self) { try Model(spec: smallSpec(norm: NormSpec("gn")), registry: registry, seed: 1) }
        #expect(throws: NormError.self) { try Model(spec: smallSpec(norm: NormSpec("no_such_norm")), registry: registry, seed: 1) }
        #expect(throws: NetError.self) { try Model(spec: smallSpec(norm: nil, depth: 0), registry: registry, seed: 1) }
        var even = smallSpec(norm: nil); even.kernel = 4
        #expect(throws: NetError.self) { try Model(spec: even, registry: registry, seed: 1) }
        // norm_eval on a layer without running statistics is refused at build time.
        var gnEval = smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)]))
        gnEval.freeze.normEval = true
        #expect(throws: NetError.self) { try Model(spec: gnEval, registry: registry, seed: 1) }
    }

    @Test func sameSeedSameWeights() throws {
        let a = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 9)
        let b = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 9)
        let c = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 10)
        let sa = snapshot(a), sb = snapshot(b), sc = snapshot(c)
        #expect(sa.keys.allSatisfy { sa[$0]!.isBitIdentical(to: sb[$0]!) })
        #expect(!sa["blocks.0.conv.weight"]!.isBitIdentical(to: sc["blocks.0.conv.weight"]!))
    }

    @Test func pythonPluginFillsTheSlot() throws {
        var reg = registry
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("python/plugins/rms_norm.py")
        try NormPython.PythonPlugins.register(file: file.path, into: &reg)
        let model = try Model(spec: smallSpec(norm: NormSpec("rms_norm_py")), registry: reg, seed: 1)
        #expect(model.normSlots.map(\.method) == ["rms_norm_py", "rms_norm_py"])
        let config = TrainingConfig(batchSize: 32, duration: .steps(6), optimizer: SGDConfig(learningRate: 0.05, weightDecay: 0),
                                    schedule: LRSchedule(.constant))
        let r = try Trainer(model: model, dataset: subset(syntheticData, train: 128, test: 32), config: config).run()
        #expect(!r.diverged && r.steps == 6)
        #expect(r.normTelemetry.allSatisfy { $0.note != nil && $0.recordedSteps == 0 })
    }
}

import NormPython

/// The model asks a method whether its output includes the activation (issue 13).
@Suite struct IncludedActivationTests {
    @Test func aNormThatIncludesItsActivationGetsNoSecondOne() throws {
        let registry = Builtins.registry
        let spec = ModelSpec(inputShape: [1, 8, 8], classes: 3, depth: 2, width: 8,
                             norm: NormSpec("evonorm_s0", options: ["groups": .integer(4)]))
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.blocks.allSatisfy { $0.activation == nil && $0.norm?.layer.plugin.includesActivation == true })
        let bn = try Model(spec: ModelSpec(inputShape: [1, 8, 8], classes: 3, depth: 2, width: 8, norm: .registryDefault),
                           registry: registry, seed: 1)
        #expect(bn.blocks.allSatisfy { $0.activation != nil } && bn.normSlots.allSatisfy { $0.method == "batch_norm" })
        var after = spec
        after.normPosition = .after   // after the activation, the block keeps its own
        #expect(try Model(spec: after, registry: registry, seed: 1).blocks.allSatisfy { $0.activation != nil })
    }

    @Test func aPythonPluginDeclaresItsActivationInItsDescriptor() throws {
        var registry = Builtins.registry
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("python/tests/plugins_extra/evonorm_s0_py.py")
        try NormPython.PythonPlugins.register(file: file.path, into: &registry)
        let spec = ModelSpec(inputShape: [1, 8, 8], classes: 3, depth: 2, width: 8, norm: NormSpec("evonorm_s0_py"))
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.blocks.allSatisfy { $0.activation == nil })
        #expect(!model.normSlots[0].layer.plugin.tracksRunningStatistics)
    }
}
