import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

@Suite struct DivergenceRuleTests {
    @Test func nonFiniteLossesDivergeAtOnce() {
        for (loss, text) in [(Double.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf")] {
            var rule = DivergenceRule()
            #expect(rule.check(loss: loss) == text)
        }
    }

    @Test func thresholdIsAMultipleOfTheFirstLoss() {
        var rule = DivergenceRule()
        #expect(rule.check(loss: 2.3) == nil)
        #expect(rule.limit == 2300)
        #expect(rule.check(loss: 2299) == nil)
        #expect(rule.check(loss: 0.01) == nil)
        #expect(rule.check(loss: 2301) == "2301.0")
    }

    @Test func aTinyFirstLossDoesNotMakeATinyThreshold() {
        var rule = DivergenceRule()
        #expect(rule.check(loss: 1e-6) == nil)
        #expect(rule.limit == 1000)
        #expect(rule.check(loss: 999) == nil)
    }

    /// `train --lr 1000` used to reach losses of 1e13 at chance accuracy with `diverged: false`.
    @Test func aHugeLearningRateIsFlaggedWithItsStep() throws {
        let data = subset(syntheticData, train: 192, test: 64)
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: Builtins.registry, seed: 1)
        let config = TrainingConfig(batchSize: 32, duration: .steps(40), seed: 1,
                                    optimizer: SGDConfig(learningRate: 1000, momentum: 0.9, weightDecay: 0, nesterov: true),
                                    schedule: LRSchedule(.constant))
        let r = try Trainer(model: model, dataset: data, config: config).run()
        #expect(r.diverged)
        let step = try #require(r.divergedAtStep)
        #expect(step == r.steps && step < 40)
        let loss = try #require(r.divergenceLoss.flatMap(Double.init))
        #expect(loss > 1000 * max(r.losses[0], 1))
    }

    @Test func aNormalRunDoesNotDiverge() throws {
        let data = subset(syntheticData, train: 192, test: 64)
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: Builtins.registry, seed: 1)
        let config = TrainingConfig(batchSize: 32, duration: .steps(30), seed: 1,
                                    optimizer: SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 0, nesterov: true))
        let r = try Trainer(model: model, dataset: data, config: config).run()
        #expect(!r.diverged && r.steps == 30)
    }
}
