import Foundation
import Testing
import NormCore

@Suite("NormCore state helpers")
struct CoreStateTests {
    @Test("MomentumRule factors and decoding")
    func momentumRule() throws {
        #expect(MomentumRule.exponential(0.3).factor(afterBatches: 7) == 0.3)
        #expect(MomentumRule.cumulative.factor(afterBatches: 4) == 0.25)
        #expect(MomentumRule.kerasDecay(0.99).factor(afterBatches: 1) == 1 - 0.99)
        let schema = CommonOptions.runningStatistics(track: true)
        func decode(_ given: [String: OptionValue]) throws -> MomentumRule {
            try MomentumRule.decode(NormOptions(method: "m", schema: schema, given: given))
        }
        #expect(try decode([:]) == .exponential(0.1))
        #expect(try decode(["momentum": .none]) == .cumulative)
        #expect(try decode(["keras_decay": .real(0.9)]) == .kerasDecay(0.9))
        #expect(throws: NormError.self) { try decode(["keras_decay": .real(0.9), "momentum": .real(0.1)]) }
    }

    @Test("RunningStatistics: a single-value batch is stored without Bessel correction; biased estimator")
    func runningStatisticsCorrection() {
        let rs = RunningStatistics(channels: 2, rule: .exponential(0.5))
        rs.update(batchMean: [2, 4], biasedVariance: [1, 3], count: 1)
        #expect(rs.mean.value.scalars == [1, 2])
        #expect(rs.variance.value.scalars == [1, 2])   // 0.5·1 + 0.5·var, no n/(n−1) for n = 1
        let biased = RunningStatistics(channels: 1, rule: .exponential(1), estimator: .biased)
        biased.update(batchMean: [0], biasedVariance: [2], count: 4)
        #expect(biased.variance.value.scalars == [2])
        let unbiased = RunningStatistics(channels: 1, rule: .exponential(1))
        unbiased.update(batchMean: [0], biasedVariance: [3], count: 4)
        #expect(unbiased.variance.value.scalars == [4])
        #expect(unbiased.batchCount == 1 && unbiased.buffers.map(\.name) == ["running_mean", "running_var", "num_batches_tracked"])
    }

    @Test("FreezePolicy: the statistics switch forces eval; description names both switches")
    func freezePolicy() {
        #expect(FreezePolicy(freezesStatistics: true).effectiveMode(for: .train) == .eval)
        #expect(FreezePolicy(freezesAffine: true).effectiveMode(for: .train) == .train)
        #expect(FreezePolicy.none.effectiveMode(for: .eval) == .eval)
        #expect(FreezePolicy.all.freezesStatistics && FreezePolicy.all.freezesAffine)
        #expect(FreezePolicy.all.description.contains("norm_eval=true") && FreezePolicy.all.description.contains("requires_grad=false"))
    }

    @Test("Tensor copies are copy-on-write; a held ReusableStorage result is never handed out again")
    func tensorValueSemantics() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        b[flat: 0] = 9
        #expect(a.scalars == [1, 2, 3, 4] && b.scalars == [9, 2, 3, 4])

        var reusable = ReusableStorage()
        var held = reusable.tensor(shape: [4])
        held.withUnsafeMutableBufferPointer { $0.initialize(repeating: 1) }
        let next = reusable.tensor(shape: [4])
        #expect(next.storage !== held.storage)
        #expect(held.scalars == [1, 1, 1, 1])
    }
}
