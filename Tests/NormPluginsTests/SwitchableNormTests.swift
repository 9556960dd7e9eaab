import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Switchable Normalization (the repository's SwitchNorm2d): one-hot importance weights give
/// IN / LN / BN, the moving averages, gradients by finite differences, capabilities, bad options.
@Suite("Switchable Normalization")
struct SwitchableNormTests {
    /// Logits whose softmax is one-hot up to e^-40 ≈ 4e-18.
    private func oneHot(_ k: Int) -> Tensor { Tensor(shape: [3], doubles: (0..<3).map { $0 == k ? 40 : 0 }) }

    private func setAffine(_ layer: any Normalization, _ w: [Double], _ b: [Double]) throws {
        try layer.requireParameter("weight").value = Tensor(shape: [w.count], doubles: w)
        try layer.requireParameter("bias").value = Tensor(shape: [b.count], doubles: b)
    }

    /// `y·w + b` per channel of a tensor normalized without affine.
    private func affine(_ y: Tensor, _ w: [Double], _ b: [Double], scale: Double = 1) -> [Double] {
        y.doubles.enumerated().map { i, v in
            let c = sampleAndChannel(i, shape: y.shape).c
            return v * scale * w[c] + b[c]
        }
    }

    @Test("IN weights: SN = IN with the unbiased variance, i.e. sqrt((S-1)/S) * IN(eps (S-1)/S)",
          arguments: [[2, 3, 4], [3, 2, 2, 3], [2, 2, 2, 2, 2]])
    func instanceBranch(_ shape: [Int]) throws {
        var rng = TestRNG(seed: 21)
        let c = shape[1], s = Double(shape.dropFirst(2).reduce(1, *)), eps = 1e-2
        let sn = try makeNorm("sn", ["eps": .real(eps)], input: shape)
        let w = (0..<c).map { _ in rng.uniform(0.5, 1.5) }, b = (0..<c).map { _ in rng.uniform(-0.5, 0.5) }
        try setAffine(sn, w, b)
        try sn.requireParameter("mean_weight").value = oneHot(0)
        try sn.requireParameter("var_weight").value = oneHot(0)
        let inorm = try makeNorm("in", ["eps": .real(eps * (s - 1) / s)], input: shape)
        let x = rng.normalTensor(shape, mean: 0.5, std: 1.5)
        let expected = affine(try inorm.forward(x, mode: .train), w, b, scale: ((s - 1) / s).squareRoot())
        expectClose(try sn.forward(x, mode: .train), expected, rtol: 1e-5, "SN(IN) train")
        expectClose(try sn.forward(x, mode: .eval), expected, rtol: 1e-5, "SN(IN) eval: IN still uses the sample")
    }

    @Test("LN and BN weights on spatially constant planes: SN = LayerNorm / BatchNorm (train)")
    func layerAndBatchBranches() throws {
        // Constant planes make every instance variance 0, so var_LN and var_BN are exactly the
        // biased LN / BN variances (the unbiased instance variance contributes nothing).
        var rng = TestRNG(seed: 22)
        let shape = [3, 4, 2, 2], c = 4
        let planeValues = (0..<12).map { _ in rng.normal() * 1.3 + 0.4 }
        let x = Tensor(shape: shape, doubles: (0..<48).map { planeValues[$0 / 4] })
        let w = [0.7, 1.2, -0.9, 1.1], b = [0.1, -0.2, 0.3, 0]
        for (branch, method) in [(1, "ln"), (2, "bn")] {
            let sn = try makeNorm("sn", [:], input: shape)
            try setAffine(sn, w, b)
            try sn.requireParameter("mean_weight").value = oneHot(branch)
            try sn.requireParameter("var_weight").value = oneHot(branch)
            let other = try makeNorm(method, ["affine": .bool(false)], input: shape)
            expectClose(try sn.forward(x, mode: .train), affine(try other.forward(x, mode: .train), w, b), rtol: 1e-5,
                        "SN(\(method)) train")
        }
        _ = c
    }

    @Test("BN weights in eval: SN = BatchNorm eval with the same running statistics, any input")
    func batchBranchEval() throws {
        var rng = TestRNG(seed: 23)
        let shape = [2, 3, 5]
        let rm = [0.3, -0.2, 0.5], rv = [0.8, 1.5, 2.2], w = [1.1, 0.9, -1.3], b = [0.2, 0, -0.1]
        let sn = try makeNorm("sn", [:], input: shape), bn = try makeNorm("bn", [:], input: shape)
        for layer in [sn, bn] {
            try setAffine(layer, w, b)
            try layer.requireBuffer("running_mean").value = Tensor(shape: [3], doubles: rm)
            try layer.requireBuffer("running_var").value = Tensor(shape: [3], doubles: rv)
        }
        try sn.requireParameter("mean_weight").value = oneHot(2)
        try sn.requireParameter("var_weight").value = oneHot(2)
        let x = rng.normalTensor(shape, mean: 0.2, std: 1.2)
        expectClose(try sn.forward(x, mode: .eval), try bn.forward(x, mode: .eval), rtol: 1e-6, "SN(BN) eval")
    }

    /// The repository's BN-branch statistics: mean_n(mean_IN), mean_n(var_IN,unbiased + mean_IN²) − mean².
    private func batchBranch(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
        let n = x.shape[0], c = x.shape[1], s = x.spatialCount
        let (m, v) = rowMoments(x.doubles, length: s)
        var mean = [Double](repeating: 0, count: c), t = mean
        for p in 0..<(n * c) {
            mean[p % c] += m[p] / Double(n)
            t[p % c] += (v[p] * Double(s) / Double(s - 1) + m[p] * m[p]) / Double(n)
        }
        return (mean, (0..<c).map { t[$0] - mean[$0] * mean[$0] })
    }

    @Test("running statistics start at zeros; momentum 0.1 (= repository decay 0.9), keras_decay, cumulative")
    func runningStatistics() throws {
        var rng = TestRNG(seed: 24)
        let shape = [3, 2, 4]
        let x1 = rng.normalTensor(shape, mean: 1, std: 2), x2 = rng.normalTensor(shape, mean: -0.5, std: 0.7)
        let (m1, v1) = batchBranch(x1), (m2, v2) = batchBranch(x2)

        let sn = try makeNorm("sn", [:], input: shape)
        #expect(sn.buffers.map(\.name) == ["running_mean", "running_var", "num_batches_tracked"])
        #expect(try sn.requireBuffer("running_var").value.doubles == [0, 0])
        _ = try sn.forward(x1, mode: .train)
        _ = try sn.forward(x2, mode: .train)
        expectClose(try sn.requireBuffer("running_mean").value, (0..<2).map { 0.9 * 0.1 * m1[$0] + 0.1 * m2[$0] }, rtol: 1e-6, "mean")
        expectClose(try sn.requireBuffer("running_var").value, (0..<2).map { 0.9 * 0.1 * v1[$0] + 0.1 * v2[$0] }, rtol: 1e-6,
                    "var stored as computed, no n/(n-1)")

        let keras = try makeNorm("sn", ["keras_decay": .real(0.997)], input: shape)
        _ = try keras.forward(x1, mode: .train)
        expectClose(try keras.requireBuffer("running_var").value, v1.map { 0.003 * $0 }, rtol: 1e-6, "keras_decay 0.997")

        let cumulative = try makeNorm("sn", ["momentum": .none], input: shape)
        _ = try cumulative.forward(x1, mode: .train)
        _ = try cumulative.forward(x2, mode: .train)
        expectClose(try cumulative.requireBuffer("running_mean").value, (0..<2).map { (m1[$0] + m2[$0]) / 2 }, rtol: 1e-6,
                    "cumulative average")
        let before = try cumulative.requireBuffer("running_mean").value.copy
        _ = try cumulative.forward(x1, mode: .eval)
        expectBitIdentical(try cumulative.requireBuffer("running_mean").value, before, "eval leaves the statistics alone")
    }

    @Test("gradients (x, affine, both softmax logits) match finite differences", arguments: [
        ([2, 3, 4], Mode.train), ([2, 3, 4], Mode.eval), ([3, 2, 2, 3], Mode.train), ([2, 2, 2, 2, 2], Mode.train),
        ([2, 2, 2, 2, 2], Mode.eval),
    ])
    func gradientsMatchFiniteDifferences(_ shape: [Int], _ mode: Mode) throws {
        var rng = TestRNG(seed: 300 + UInt64(shape.count) + (mode == .train ? 0 : 10))
        let c = shape[1]
        let layer = try makeNorm("sn", [:], input: shape)
        try setAffine(layer, (0..<c).map { i in (i % 2 == 0 ? 1 : -1) * rng.uniform(0.6, 1.4) }, (0..<c).map { _ in rng.uniform(-0.5, 0.5) })
        try layer.requireParameter("mean_weight").value = Tensor(shape: [3], doubles: [0.3, -0.4, 0.6])
        try layer.requireParameter("var_weight").value = Tensor(shape: [3], doubles: [-0.2, 0.5, 0.1])
        try layer.requireBuffer("running_mean").value = rng.uniformTensor([c], -0.5, 0.5)
        try layer.requireBuffer("running_var").value = rng.uniformTensor([c], 0.5, 2)
        let x = rng.normalTensor(shape, mean: 0.3, std: 1), gy = rng.normalTensor(shape)
        let result = try compareGradients(layer, x: x, gy: gy, mode: mode)
        #expect(result.entries.map(\.name).sorted() == ["bias", "mean_weight", "var_weight", "weight", "x"])
        for e in result.entries {
            #expect(e.relativeError < 1e-2, "d/d\(e.name) relative error \(e.relativeError)")
            #expect(e.analyticNorm > 1e-3, "d/d\(e.name) vanishingly small")
        }
        // Softmax is shift-invariant: the logits' gradients sum to zero.
        for name in ["mean_weight", "var_weight"] {
            let g = try #require(try layer.requireParameter(name).gradient).doubles
            #expect(abs(g.reduce(0, +)) < 1e-6 * max(1, norm2(g)), "\(name) gradient sums to \(g.reduce(0, +))")
        }
    }

    @Test("capabilities: running statistics tracked, but not PreciseBN-replaceable or foldable")
    func capabilities() throws {
        let layer = try makeNorm("switchnorm", [:], input: [2, 4, 3])
        #expect(layer.tracksRunningStatistics)
        #expect(!layer.includesActivation)
        #expect(!(layer is any BatchStatisticsReporting))
        #expect(!(layer is any AffineFolding))
        #expect(layer.parameters.map(\.name) == ["weight", "bias", "mean_weight", "var_weight"])
        #expect(try layer.requireParameter("mean_weight").value.doubles == [1, 1, 1])
    }

    @Test("bad options and inputs are one-line errors")
    func badOptionsAndInputs() throws {
        for bad: [String: OptionValue] in [["momentum": .real(1.5)], ["keras_decay": .real(-0.1)], ["eps": .real(-1)],
                                           ["momentum": .real(0.1), "keras_decay": .real(0.9)], ["num_groups": .integer(2)]] {
            let error = #expect(throws: NormError.self, "\(bad)") { try makeNorm("sn", bad, input: [2, 3, 4]) }
            #expect(error.map { !"\($0)".contains("\n") } ?? false)
        }
        let layer = try makeNorm("sn", [:], input: [2, 3, 1])
        #expect(throws: NormError.self) { try layer.forward(Tensor.zeros([2, 3, 1]), mode: .eval) }
        #expect(throws: NormError.self) { try makeNorm("sn", [:], input: [4, 3]).forward(Tensor.zeros([4, 3]), mode: .train) }
    }
}
