import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Batch-Channel Normalization: its two stages against BatchNorm and GroupNorm, BatchNorm's
/// running statistics, gradients by finite differences, capabilities, bad options.
@Suite("Batch-Channel Normalization")
struct BatchChannelNormTests {
    private struct State {
        let w: [Double], b: [Double], gw: [Double], gb: [Double], rm: [Double], rv: [Double]
    }

    private func randomState(_ rng: inout TestRNG, channels c: Int, groups: Int) -> State {
        State(w: (0..<c).map { i in (i % 2 == 0 ? 1 : -1) * rng.uniform(0.6, 1.4) }, b: (0..<c).map { _ in rng.uniform(-0.5, 0.5) },
              gw: (0..<groups).map { _ in rng.uniform(0.5, 1.5) }, gb: (0..<groups).map { _ in rng.uniform(-0.5, 0.5) },
              rm: (0..<c).map { _ in rng.uniform(-0.5, 0.5) }, rv: (0..<c).map { _ in rng.uniform(0.5, 2) })
    }

    private func apply(_ st: State, to layer: any Normalization, groupAffine: Bool) throws {
        let c = st.w.count
        try layer.requireParameter("weight").value = Tensor(shape: [c], doubles: st.w)
        try layer.requireParameter("bias").value = Tensor(shape: [c], doubles: st.b)
        try layer.requireBuffer("running_mean").value = Tensor(shape: [c], doubles: st.rm)
        try layer.requireBuffer("running_var").value = Tensor(shape: [c], doubles: st.rv)
        if groupAffine {
            try layer.requireParameter("group_weight").value = Tensor(shape: [st.gw.count], doubles: st.gw)
            try layer.requireParameter("group_bias").value = Tensor(shape: [st.gb.count], doubles: st.gb)
        }
    }

    @Test("BCN = per-group affine of GroupNorm(affine=false) of BatchNorm, train and eval; same running statistics",
          arguments: [([4, 6], 3), ([2, 4, 5], 2), ([3, 6, 2, 2], 3), ([2, 4, 2, 2], 4), ([2, 4, 2, 1, 3], 1)])
    func stagesAreBatchNormThenGroupNorm(_ shape: [Int], _ groups: Int) throws {
        var rng = TestRNG(seed: 31 + UInt64(groups))
        let c = shape[1]
        let st = randomState(&rng, channels: c, groups: groups)
        let bcn = try makeNorm("bcn", ["num_groups": .integer(groups)], input: shape)
        let bn = try makeNorm("bn", [:], input: shape)
        let gn = try makeNorm("gn", ["num_groups": .integer(groups), "affine": .bool(false)], input: shape)
        try apply(st, to: bcn, groupAffine: true)
        try apply(st, to: bn, groupAffine: false)
        let perGroup = c / groups * x0Spatial(shape)
        for (step, mode) in [Mode.train, .train, .eval].enumerated() {
            let x = rng.normalTensor(shape, mean: 0.4 * Double(step), std: 1.2)
            let expected = try gn.forward(try bn.forward(x, mode: mode).copy, mode: .train).doubles.enumerated().map { i, v in
                let g = (i / perGroup) % groups
                return v * st.gw[g] + st.gb[g]
            }
            expectClose(try bcn.forward(x, mode: mode), expected, rtol: 1e-5, "step \(step + 1) \(mode)")
            // BCN takes two-pass float64 moments, BN's kernels float32-shifted sums: ~1e-7 apart.
            for name in ["running_mean", "running_var", "num_batches_tracked"] {
                expectClose(try bcn.requireBuffer(name).value, try bn.requireBuffer(name).value, rtol: 1e-6, "\(name) after step \(step + 1)")
            }
        }
    }

    private func x0Spatial(_ shape: [Int]) -> Int { shape.dropFirst(2).reduce(1, *) }

    @Test("num_groups = C: the channel stage is InstanceNorm of the BatchNorm output")
    func oneChannelPerGroupIsInstanceNorm() throws {
        var rng = TestRNG(seed: 33)
        let shape = [2, 3, 4, 2]
        let bcn = try makeNorm("bcn", ["num_groups": .integer(3), "eps": .real(1e-3)], input: shape)
        let bn = try makeNorm("bn", [:], input: shape), inorm = try makeNorm("in", ["eps": .real(1e-3)], input: shape)
        let x = rng.normalTensor(shape, mean: -0.3, std: 0.8)
        expectClose(try bcn.forward(x, mode: .train), try inorm.forward(try bn.forward(x, mode: .train).copy, mode: .train),
                    rtol: 1e-5, "BCN(G=C)")
    }

    @Test("gradients (x, BN affine, group affine) match finite differences", arguments: [
        ([6, 6], 2, Mode.train), ([3, 4, 3], 2, Mode.train), ([3, 4, 3], 2, Mode.eval), ([2, 4, 2, 2], 1, Mode.train),
        ([2, 6, 2, 2], 3, Mode.eval), ([2, 2, 2, 1, 2], 1, Mode.train),
    ])
    func gradientsMatchFiniteDifferences(_ shape: [Int], _ groups: Int, _ mode: Mode) throws {
        var rng = TestRNG(seed: 400 + UInt64(shape.count * 10 + groups) + (mode == .train ? 0 : 100))
        let layer = try makeNorm("bcn", ["num_groups": .integer(groups)], input: shape)
        try apply(randomState(&rng, channels: shape[1], groups: groups), to: layer, groupAffine: true)
        let x = rng.normalTensor(shape, mean: 0.3, std: 1), gy = rng.normalTensor(shape)
        let result = try compareGradients(layer, x: x, gy: gy, mode: mode)
        #expect(result.entries.map(\.name).sorted() == ["bias", "group_bias", "group_weight", "weight", "x"])
        for e in result.entries {
            #expect(e.relativeError < 1e-2, "d/d\(e.name) relative error \(e.relativeError)")
            #expect(e.analyticNorm > 1e-3, "d/d\(e.name) vanishingly small")
        }
    }

    @Test("capabilities: reports the BN stage's statistics (PreciseBN), not foldable, no activation")
    func capabilities() throws {
        let layer = try makeNorm("bcn", ["num_groups": .integer(2), "bn_eps": .real(1e-3)], input: [2, 4, 3])
        let stats = try #require(layer.trackedStatistics?.evalStatistics)
        #expect(stats.eps == 1e-3 && stats.storesUnbiasedVariance)
        #expect(!(layer is any AffineFolding))
        #expect(!layer.includesActivation)
        #expect(layer.parameters.map(\.name) == ["weight", "bias", "group_weight", "group_bias"])
        let reporting = try #require(layer as? any BatchStatisticsReporting)
        let x = TestRNG(seed: 1).normalTensorCopy([2, 4, 3])
        _ = try layer.forward(x, mode: .train)
        let moments = try #require(reporting.lastBatchMoments)
        let (mean, variance, n) = channelMoments(x)
        expectClose(moments.mean, mean, rtol: 1e-9, "batch mean")
        expectClose(moments.variance, variance, rtol: 1e-9, "batch variance")
        #expect(moments.count == n && !moments.perInstance)
        let untracked = try makeNorm("bcn", ["num_groups": .integer(2), "track_running_stats": .bool(false)], input: [2, 4, 3])
        #expect(untracked.trackedStatistics == nil && untracked.buffers.isEmpty)
    }

    @Test("bad options and inputs are one-line errors")
    func badOptionsAndInputs() throws {
        for bad: [String: OptionValue] in [["num_groups": .integer(4)], ["num_groups": .integer(0)], ["bn_eps": .real(-1)],
                                           ["eps": .real(-1)], ["track_running_stats": .bool(false), "momentum": .real(0.2)],
                                           ["momentum": .real(0.2), "keras_decay": .real(0.9)]] {
            let error = #expect(throws: NormError.self, "\(bad)") { try makeNorm("bcn", bad, input: [2, 6, 3]) }
            #expect(error.map { !"\($0)".contains("\n") } ?? false)
        }
        // One value per channel group (G = C on (N, C)), and one value per channel for the BN stage.
        let layer = try makeNorm("bcn", ["num_groups": .integer(3)], input: [4, 3])
        #expect(throws: NormError.self) { try layer.forward(Tensor.zeros([4, 3]), mode: .train) }
        let single = try makeNorm("bcn", ["num_groups": .integer(1)], input: [1, 3])
        #expect(throws: NormError.self) { try single.forward(Tensor.zeros([1, 3]), mode: .train) }
        #expect(try single.forward(Tensor(shape: [1, 3], doubles: [1, 2, 4]), mode: .eval).count == 3)
    }
}

private extension TestRNG {
    /// A normal tensor from a copy of the generator (leaves `self` unchanged).
    func normalTensorCopy(_ shape: [Int]) -> Tensor {
        var copy = self
        return copy.normalTensor(shape)
    }
}
