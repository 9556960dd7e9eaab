import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// Freeze invariants inside a model: `frozen_stages`, `norm_eval`, `requires_grad`, and
/// that switching the model to train mode never undoes them.
@Suite struct FreezeInModelTests {
    let registry = Builtins.registry
    let data = subset(syntheticData, train: 128, test: 32)
    let config = TrainingConfig(batchSize: 32, duration: .steps(5), seed: 2,
                                optimizer: SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 1e-3),
                                schedule: LRSchedule(.constant))

    func train(_ model: Model) throws {
        _ = try Trainer(model: model, dataset: data, config: config).run()
    }

    @Test(arguments: [NormSpec("bn"), NormSpec("brn"), NormSpec("in", options: ["track_running_stats": .bool(true), "affine": .bool(true)])])
    func frozenStagesKeepEverythingBitIdentical(_ norm: NormSpec) throws {
        var spec = smallSpec(norm: norm, depth: 3)
        spec.convBias = true
        spec.freeze.frozenStages = 1
        let model = try Model(spec: spec, registry: registry, seed: 5)
        #expect(model.blocks.map(\.stage) == [0, 1, 2])
        let before = snapshot(model)
        try train(model)
        let after = snapshot(model)
        for name in before.keys.sorted() {
            let frozen = name.hasPrefix("blocks.0.") || name.hasPrefix("blocks.1.")
            let same = before[name]!.isBitIdentical(to: after[name]!)
            if frozen { #expect(same, "\(name) changed in a frozen stage") }
            else { #expect(!same, "\(name) did not train") }
        }
        #expect(model.blocks[0].conv.weight.requiresGrad == false && model.blocks[2].conv.weight.requiresGrad)
        #expect(model.blocks[1].norm!.freeze == .all && model.blocks[2].norm!.freeze == .none)
    }

    @Test func frozenStagesWithGroupNormFreezeAffineOnly() throws {
        var spec = smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)]), depth: 2)
        spec.freeze.frozenStages = 0
        let model = try Model(spec: spec, registry: registry, seed: 5)
        #expect(model.blocks[0].norm!.freeze == FreezePolicy(freezesStatistics: false, freezesAffine: true))
        let before = snapshot(model)
        try train(model)
        let after = snapshot(model)
        #expect(before["blocks.0.norm.weight"]!.isBitIdentical(to: after["blocks.0.norm.weight"]!))
        #expect(before["blocks.0.conv.weight"]!.isBitIdentical(to: after["blocks.0.conv.weight"]!))
        #expect(!before["blocks.1.norm.weight"]!.isBitIdentical(to: after["blocks.1.norm.weight"]!))
    }

    @Test func normEvalSurvivesSetModeTrain() throws {
        var spec = smallSpec(norm: NormSpec("bn"))
        spec.freeze.normEval = true
        let model = try Model(spec: spec, registry: registry, seed: 5)
        let before = snapshot(model)
        model.setMode(.eval)
        model.setMode(.train)
        #expect(model.normSlots.allSatisfy { $0.freeze.freezesStatistics })
        try train(model)
        model.setMode(.train)
        _ = try model.forward(data.trainInputs)
        let after = snapshot(model)
        for name in before.keys where name.contains("running") || name.contains("num_batches") {
            #expect(before[name]!.isBitIdentical(to: after[name]!), "\(name) changed under norm_eval")
        }
        // Affine still trains (requires_grad stays true).
        #expect(!before["blocks.0.norm.weight"]!.isBitIdentical(to: after["blocks.0.norm.weight"]!))
        // With frozen statistics a train-mode forward equals the eval-mode forward.
        let x = Tensor(shape: [4] + data.sampleShape, scalars: Array(data.testInputs.scalars.prefix(4 * 32)))
        let yTrain = try model.forward(x)
        model.setMode(.eval)
        #expect(try model.forward(x).isBitIdentical(to: yTrain))
    }

    @Test func requiresGradFalseFreezesAffineOnly() throws {
        var spec = smallSpec(norm: NormSpec("bn"))
        spec.freeze.normRequiresGrad = false
        let model = try Model(spec: spec, registry: registry, seed: 5)
        let before = snapshot(model)
        try train(model)
        let after = snapshot(model)
        #expect(before["blocks.1.norm.weight"]!.isBitIdentical(to: after["blocks.1.norm.weight"]!))
        #expect(before["blocks.1.norm.bias"]!.isBitIdentical(to: after["blocks.1.norm.bias"]!))
        #expect(!before["blocks.1.norm.running_mean"]!.isBitIdentical(to: after["blocks.1.norm.running_mean"]!))
        #expect(model.normSlots.allSatisfy { $0.parameters.allSatisfy { $0.gradient == nil && !$0.requiresGrad } })
    }

    @Test func perLayerPolicyOverridesGlobal() throws {
        var spec = smallSpec(norm: NormSpec("bn"))
        spec.freeze.perLayer = [1: .all]
        let model = try Model(spec: spec, registry: registry, seed: 5)
        #expect(model.normSlots.map(\.freeze) == [.none, .all])
        let before = snapshot(model)
        try train(model)
        let after = snapshot(model)
        #expect(before["blocks.1.norm.running_mean"]!.isBitIdentical(to: after["blocks.1.norm.running_mean"]!))
        #expect(!before["blocks.0.norm.running_mean"]!.isBitIdentical(to: after["blocks.0.norm.running_mean"]!))
        var bad = smallSpec(norm: NormSpec("bn"))
        bad.freeze.perLayer = [7: .all]
        #expect(throws: NetError.self) { try Model(spec: bad, registry: registry, seed: 1) }
    }
}
