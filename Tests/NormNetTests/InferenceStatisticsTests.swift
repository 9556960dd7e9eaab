import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// The inference-statistics estimators (EMA, PreciseBN, mean of the last K batches) and the
/// training diagnostics the presets read (weight norm, conv-bias gradient).
@Suite struct InferenceStatisticsTests {
    let registry = Builtins.registry
    let data = subset(syntheticData, train: 256, test: 64)

    func buffer(_ model: Model, _ name: String) -> [Double] {
        model.namedBuffers.first { $0.name == name }!.buffer.value.scalars.map(Double.init)
    }

    @Test func namesRoundTripAndBadOnesAreOneLineErrors() throws {
        for name in InferenceStatistics.names {
            #expect(try InferenceStatistics(name: name, batches: 7).name == name)
        }
        #expect(try InferenceStatistics(name: "ema", batches: 7) == .runningAverage)
        #expect(throws: NetError.self) { try InferenceStatistics(name: "median", batches: 3) }
        #expect(throws: NetError.self) { try InferenceStatistics.lastBatches(0).validate() }
        #expect(throws: NetError.self) { try TrainingConfig(inferenceStatistics: .precise(batches: -1)).validate() }
    }

    /// The estimator's running statistics are the plain average of the batch statistics the
    /// layer recorded in the last K train steps (unbiased variance per batch, as running_var).
    @Test(arguments: [NormSpec("bn"), NormSpec("bn", options: ["running_var": .text("biased")]), NormSpec("brn")])
    func lastBatchesIsTheMeanOfTheLastBatchStatistics(_ norm: NormSpec) throws {
        let k = 4, total = 9, batchSize = 16
        // Reference: the same run by hand, recording the first norm's batch moments each step.
        let reference = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 5)
        let config = TrainingConfig(batchSize: batchSize, duration: .steps(total), seed: 11, schedule: LRSchedule(.constant))
        var moments: [BatchMoments] = []
        var sampler = BatchSampler(count: data.trainLabels.count, batchSize: batchSize, seed: config.seed)
        var gatherer = BatchGatherer()
        let optimizer = try SGD(config.optimizer, model: reference)
        reference.setMode(.train)
        for _ in 0..<total {
            let idx = sampler.next()
            let logits = try reference.forward(gatherer.gather(data.trainInputs, idx))
            moments.append((reference.normSlots[0].layer.plugin as! any BatchStatisticsReporting).lastBatchMoments!)
            let ce = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: idx.map { data.trainLabels[$0] })
            try reference.backward(ce.gradient)
            optimizer.step(learningRate: config.optimizer.learningRate)
        }
        var withLast = config
        withLast.inferenceStatistics = .lastBatches(k)
        let model = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 5)
        let result = try Trainer(model: model, dataset: data, config: withLast).run()
        #expect(result.inferenceStatistics?.batches == k)
        #expect(result.inferenceStatistics?.updated == ["blocks.0.norm", "blocks.1.norm"])
        let unbiased = norm.options["running_var"] != .text("biased")
        let last = moments.suffix(k)
        let rm = buffer(model, "blocks.0.norm.running_mean"), rv = buffer(model, "blocks.0.norm.running_var")
        for c in rm.indices {
            let mean = last.map { $0.mean[c] }.reduce(0, +) / Double(k)
            let variance = last.map { $0.variance[c] * (unbiased ? Double($0.count) / Double($0.count - 1) : 1) }.reduce(0, +) / Double(k)
            #expect(abs(rm[c] - mean) <= 1e-6 * max(1, abs(mean)))
            #expect(abs(rv[c] - variance) <= 1e-6 * max(1, variance))
        }
        // the weights are those of the plain run: only the buffers differ
        let plain = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 5)
        let plainResult = try Trainer(model: plain, dataset: data, config: config).run()
        #expect(plainResult.inferenceStatistics == nil)
        #expect(plainResult.losses == result.losses)
        #expect(buffer(plain, "blocks.0.norm.running_mean") != rm)
    }

    @Test func lastBatchesSkipsFrozenStatisticsAndStatelessNorms() throws {
        var spec = smallSpec(norm: NormSpec("bn"))
        spec.freeze = FreezeSpec(normEval: true)
        let frozen = try Model(spec: spec, registry: registry, seed: 1)
        let before = buffer(frozen, "blocks.0.norm.running_mean")
        let r = try Trainer(model: frozen, dataset: data,
                            config: TrainingConfig(batchSize: 16, duration: .steps(3), inferenceStatistics: .lastBatches(2))).run()
        #expect(r.inferenceStatistics?.updated == [])
        #expect(r.inferenceStatistics?.skipped["blocks.0.norm"] == "statistics frozen (norm_eval)")
        #expect(buffer(frozen, "blocks.0.norm.running_mean") == before)
        let gn = try Model(spec: smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)])), registry: registry, seed: 1)
        let g = try Trainer(model: gn, dataset: data,
                            config: TrainingConfig(batchSize: 16, duration: .steps(3), inferenceStatistics: .lastBatches(2))).run()
        #expect(g.inferenceStatistics?.skipped.count == 2)
    }

    @Test func preciseIsSelectedThroughTheConfig() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 2)
        let r = try Trainer(model: model, dataset: data,
                            config: TrainingConfig(batchSize: 16, duration: .steps(4), inferenceStatistics: .precise(batches: 3))).run()
        #expect(r.inferenceStatistics?.batches == 3 && r.inferenceStatistics?.updated.count == 2)
    }

    @Test func weightNormIsTheNormOfConvAndLinearWeights() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 4)
        var sum = 0.0
        for (name, p, _) in model.namedParameters where name.hasSuffix("conv.weight") || name == "classifier.weight" {
            sum += p.value.scalars.reduce(0) { $0 + Double($1) * Double($1) }
        }
        #expect(abs(model.weightNorm - sum.squareRoot()) <= 1e-9 * sum.squareRoot())
        let r = try Trainer(model: model, dataset: data, config: TrainingConfig(batchSize: 16, duration: .steps(20))).run()
        #expect(r.finalWeightNorm == model.weightNorm && r.initialWeightNorm == sum.squareRoot())
        #expect(r.history.last?.weightNorm == r.finalWeightNorm)
    }

    /// BN paper §3.2: a bias before a train-mode BN is cancelled by the mean subtraction, so
    /// its gradient is zero up to float rounding; after the activation it is not.
    @Test func convBiasGradientVanishesBeforeBatchNormOnly() throws {
        func rms(_ position: NormPosition) throws -> Double {
            var spec = smallSpec(norm: NormSpec("bn"))
            spec.convBias = true
            spec.normPosition = position
            let model = try Model(spec: spec, registry: registry, seed: 9)
            let r = try Trainer(model: model, dataset: data, config: TrainingConfig(batchSize: 32, duration: .steps(5))).run()
            return try #require(r.convBiasGradientRMS)
        }
        let before = try rms(.before), after = try rms(.after)
        #expect(before < 1e-6)
        #expect(after > 1e-4)
        #expect(after / before > 1e3)
        let noBias = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 9)
        #expect(try Trainer(model: noBias, dataset: data, config: TrainingConfig(batchSize: 32, duration: .steps(2))).run().convBiasGradientRMS == nil)
    }
}

/// Batch Renormalization's r_max / d_max warm-up (Ioffe 2017, §4).
@Suite struct RenormScheduleTests {
    let registry = Builtins.registry
    let data = subset(syntheticData, train: 256, test: 64)

    @Test func limitsHoldAtBNThenRampLinearly() throws {
        let s = RenormSchedule(holdSteps: 10, rampSteps: 20), target = RenormLimits(rMax: 3, dMax: 5)
        #expect(s.limits(at: 0, target: target) == RenormLimits(rMax: 1, dMax: 0))
        #expect(s.limits(at: 9, target: target) == RenormLimits(rMax: 1, dMax: 0))
        #expect(s.limits(at: 20, target: target) == RenormLimits(rMax: 2, dMax: 2.5))
        #expect(s.limits(at: 30, target: target) == target && s.limits(at: 1000, target: target) == target)
        #expect(RenormSchedule(holdSteps: 3, rampSteps: 0).progress(at: 3) == 1)
        #expect(throws: NetError.self) { try RenormSchedule(holdSteps: -1, rampSteps: 0).validate() }
    }

    /// Held at r_max = 1, d_max = 0, BRN is BN: the same run gives the same losses.
    @Test func heldRenormTrainsLikeBatchNorm() throws {
        var config = TrainingConfig(batchSize: 16, duration: .steps(12), seed: 3)
        let bn = try Trainer(model: try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 8),
                             dataset: data, config: config).run()
        config.renormSchedule = RenormSchedule(holdSteps: 12, rampSteps: 0)
        let model = try Model(spec: smallSpec(norm: NormSpec("brn")), registry: registry, seed: 8)
        let held = try Trainer(model: model, dataset: data, config: config).run()
        #expect(relativeError(bn.losses, held.losses) < 1e-6)
        // the configured limits are back after training
        #expect(model.normSlots.allSatisfy { ($0.layer.plugin as! BatchRenorm).limits == RenormLimits(rMax: 3, dMax: 5) })
        config.renormSchedule = nil
        let free = try Trainer(model: try Model(spec: smallSpec(norm: NormSpec("brn")), registry: registry, seed: 8),
                               dataset: data, config: config).run()
        #expect(relativeError(bn.losses, free.losses) > 1e-6)
    }
}
