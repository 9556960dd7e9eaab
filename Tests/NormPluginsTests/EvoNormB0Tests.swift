import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// EvoNorm-B0 (timm `EvoNorm2dB0` conventions): float64 forward, both branches of the max in
/// the gradient, the tie rule, timm's running-variance update, capabilities and bad options.
@Suite("EvoNorm-B0")
struct EvoNormB0Tests {
    /// Float64 forward from the formula: per-channel biased batch variance (train) or the
    /// running variance (eval), per-(n, c) biased instance variance; returns y and, per
    /// element, right − left (which branch of the max wins).
    private func reference(_ x: Tensor, w: [Double], b: [Double], v: [Double], runningVar: [Double]?,
                           eps: Double) -> (y: [Double], margin: [Double]) {
        let c = x.shape[1], s = x.spatialCount, xs = x.doubles
        let (_, batchVar, _) = channelMoments(x)
        let (_, instanceVar) = rowMoments(xs, length: s)
        var y = [Double](), margin = [Double]()
        for i in xs.indices {
            let ch = (i / s) % c, plane = i / s
            let left = ((runningVar?[ch] ?? batchVar[ch]) + eps).squareRoot()
            let right = v[ch] * xs[i] + (instanceVar[plane] + eps).squareRoot()
            y.append(xs[i] / max(left, right) * w[ch] + b[ch])
            margin.append(right - left)
        }
        return (y, margin)
    }

    private func setParameters(_ layer: any Normalization, w: [Double], b: [Double], v: [Double]) throws {
        let c = w.count
        try layer.requireParameter("weight").value = Tensor(shape: [c], doubles: w)
        try layer.requireParameter("bias").value = Tensor(shape: [c], doubles: b)
        try layer.requireParameter("v").value = Tensor(shape: [c], doubles: v)
    }

    @Test("forward matches the float64 formula in train and eval", arguments: [[2, 3, 4], [3, 2, 2, 3], [2, 2, 2, 2, 2]])
    func forwardMatchesFormula(_ shape: [Int]) throws {
        var rng = TestRNG(seed: 11)
        let c = shape[1]
        let layer = try makeNorm("evonorm_b0", [:], input: shape)
        let w = (0..<c).map { _ in rng.uniform(0.5, 1.5) }, b = (0..<c).map { _ in rng.uniform(-0.5, 0.5) }
        let v = (0..<c).map { _ in rng.uniform(-1, 1) }, rv = (0..<c).map { _ in rng.uniform(0.5, 2) }
        try setParameters(layer, w: w, b: b, v: v)
        let x = rng.normalTensor(shape, mean: 0.2, std: 1.3)
        try layer.requireBuffer("running_var").value = Tensor(shape: [c], doubles: rv)
        let train = try layer.forward(x, mode: .train).copy
        let expectedTrain = reference(x, w: w, b: b, v: v, runningVar: nil, eps: 1e-3)
        expectClose(train, expectedTrain.y, rtol: 1e-6, "train output")
        #expect(expectedTrain.margin.contains { $0 > 0 } && expectedTrain.margin.contains { $0 < 0 }, "both branches of the max occur")
        try layer.requireBuffer("running_var").value = Tensor(shape: [c], doubles: rv)
        let eval = try layer.forward(x, mode: .eval)
        expectClose(eval, reference(x, w: w, b: b, v: v, runningVar: rv.map { Double(Float($0)) }, eps: 1e-3).y,
                    rtol: 1e-6, "eval output")
    }

    @Test("running_var <- 0.9 running_var + 0.1 var_B n/(n-1) (timm), nothing else is tracked")
    func runningVarianceUpdate() throws {
        var rng = TestRNG(seed: 12)
        let shape = [3, 4, 2, 3]
        let layer = try makeNorm("evonorm_b0", [:], input: shape)
        #expect(layer.buffers.map(\.name) == ["running_var"])
        #expect(try layer.requireBuffer("running_var").value.doubles == [1, 1, 1, 1])
        let rv0 = (0..<4).map { _ in rng.uniform(0.5, 2) }.map { Double(Float($0)) }
        try layer.requireBuffer("running_var").value = Tensor(shape: [4], doubles: rv0)
        let x = rng.normalTensor(shape, mean: 1, std: 2)
        _ = try layer.forward(x, mode: .train)
        let (_, batchVar, n) = channelMoments(x)
        let expected = (0..<4).map { 0.9 * rv0[$0] + 0.1 * batchVar[$0] * Double(n) / Double(n - 1) }
        expectClose(try layer.requireBuffer("running_var").value, expected, rtol: 1e-6, "running_var after one step")
        // Eval reads running_var and leaves it alone.
        let before = try layer.requireBuffer("running_var").value.copy
        _ = try layer.forward(x, mode: .eval)
        expectBitIdentical(try layer.requireBuffer("running_var").value, before, "running_var after eval")

        let m = try makeNorm("evonorm_b0", ["momentum": .real(0.3)], input: shape)
        try m.requireBuffer("running_var").value = Tensor(shape: [4], doubles: rv0)
        _ = try m.forward(x, mode: .train)
        expectClose(try m.requireBuffer("running_var").value,
                    (0..<4).map { 0.7 * rv0[$0] + 0.3 * batchVar[$0] * Double(n) / Double(n - 1) }, rtol: 1e-6, "momentum=0.3")
    }

    @Test("gradients match finite differences through both branches of the max", arguments: [
        ([2, 3, 4], Mode.train), ([2, 3, 4], Mode.eval), ([2, 2, 2, 3], Mode.train), ([2, 2, 2, 3], Mode.eval),
        ([2, 2, 2, 1, 2], Mode.train),
    ])
    func gradientsMatchFiniteDifferences(_ shape: [Int], _ mode: Mode) throws {
        let c = shape[1]
        // Draw until every element is ≥ 0.15 away from the kink of the max (a finite-difference
        // step moves right − left by ≲ 0.05), with both branches present.
        for seed in UInt64(1)...400 {
            var rng = TestRNG(seed: 1000 + seed)
            let w = (0..<c).map { i in (i % 2 == 0 ? 1 : -1) * rng.uniform(0.6, 1.4) }
            let b = (0..<c).map { _ in rng.uniform(-0.5, 0.5) }
            let v = (0..<c).map { _ in rng.uniform(-1.2, 1.2) }
            let rv = (0..<c).map { _ in Double(Float(rng.uniform(0.5, 2))) }
            let x = rng.normalTensor(shape, mean: 0.3, std: 1), gy = rng.normalTensor(shape)
            let margin = reference(x, w: w, b: b, v: v, runningVar: mode == .eval ? rv : nil, eps: 1e-3).margin
            guard margin.allSatisfy({ abs($0) > 0.15 }), margin.contains(where: { $0 > 0 }), margin.contains(where: { $0 < 0 }) else { continue }
            let layer = try makeNorm("evonorm_b0", [:], input: shape)
            try setParameters(layer, w: w, b: b, v: v)
            try layer.requireBuffer("running_var").value = Tensor(shape: [c], doubles: rv)
            let result = try compareGradients(layer, x: x, gy: gy, mode: mode)
            #expect(result.entries.map(\.name).sorted() == ["bias", "v", "weight", "x"])
            for e in result.entries {
                #expect(e.relativeError < 1e-2, "d/d\(e.name) relative error \(e.relativeError)")
                #expect(e.analyticNorm > 1e-3, "d/d\(e.name) vanishingly small")
            }
            return
        }
        Issue.record("no seed gave inputs away from the kink of the max")
    }

    @Test("a tie of the two branches splits the gradient evenly (PyTorch maximum)")
    func tieSplitsGradient() throws {
        // Eval, v = 0, planes of ±1 (instance variance exactly 1) and running_var = 1: every
        // element has left = right = √(1 + eps).
        let shape = [1, 1, 4], eps = 1e-3
        let layer = try makeNorm("evonorm_b0", [:], input: shape)
        try setParameters(layer, w: [1.5], b: [0.2], v: [0])
        let xs: [Double] = [-1, 1, -1, 1], gs: [Double] = [0.3, -0.7, 1.1, 0.4]
        let y = try layer.forward(Tensor(shape: shape, doubles: xs), mode: .eval)
        let d = (1 + eps).squareRoot()
        expectClose(y, xs.map { $0 / d * 1.5 + 0.2 }, rtol: 1e-7, "output at the tie")
        let gx = try layer.backward(Tensor(shape: shape, doubles: gs))
        // dL/d(max) = −g·w·x/d²; half of it goes to the instance branch v·x + √(var_I + eps).
        let gMax = (0..<4).map { -gs[$0] * 1.5 * xs[$0] / (d * d) }
        let gv = (0..<4).reduce(0.0) { $0 + gMax[$1] / 2 * xs[$1] }
        expectClose(try #require(try layer.requireParameter("v").gradient), [gv], rtol: 1e-6, "dL/dv is half the one-branch value")
        // x: direct term g·w/d, plus half of gMax through var_I (the v·x term is 0 with v = 0).
        let gStd = (0..<4).reduce(0.0) { $0 + gMax[$1] / 2 }
        let expected = (0..<4).map { gs[$0] * 1.5 / d + gStd / d * xs[$0] / 4 }
        expectClose(gx, expected, rtol: 1e-6, "dL/dx at the tie")
    }

    @Test("eval with a dominant running variance is the affine map x / sqrt(running_var + eps) * w + b")
    func dominantRunningVarianceIsLinear() throws {
        var rng = TestRNG(seed: 13)
        let shape = [2, 3, 5]
        let layer = try makeNorm("evonorm_b0", ["eps": .real(1e-5)], input: shape)
        try setParameters(layer, w: [0.5, 1, 2], b: [0, 0.1, -0.1], v: [0.2, -0.3, 0.1])
        try layer.requireBuffer("running_var").value = Tensor(shape: [3], doubles: [400, 900, 1600])
        let x = rng.normalTensor(shape)
        let y = try layer.forward(x, mode: .eval)
        let sigma = [400.0, 900, 1600].map { ($0 + 1e-5).squareRoot() }
        let w = [0.5, 1, 2], b = [0, 0.1, -0.1]
        expectClose(y, x.doubles.enumerated().map { i, xi in
            let ch = sampleAndChannel(i, shape: shape).c
            return xi / sigma[ch] * w[ch] + b[ch]
        }, rtol: 1e-6, "eval output")
    }

    @Test("capabilities: includes its activation, tracks running_var, no PreciseBN / folding")
    func capabilities() throws {
        let layer = try makeNorm("evonorm-b0", [:], input: [2, 4, 3])
        #expect(layer.includesActivation)
        #expect(layer.tracksRunningStatistics)
        #expect(!(layer is any BatchStatisticsReporting))
        #expect(!(layer is any AffineFolding))
        #expect(layer.parameters.map(\.name) == ["weight", "bias", "v"])
        #expect(EvoNormB0.descriptor.reduction == .spatial)
    }

    @Test("bad options and inputs are one-line errors")
    func badOptionsAndInputs() throws {
        for bad: [String: OptionValue] in [["momentum": .real(1.5)], ["momentum": .none], ["eps": .real(-1)], ["groups": .integer(2)]] {
            let error = #expect(throws: NormError.self, "\(bad)") { try makeNorm("evonorm_b0", bad, input: [2, 3, 4]) }
            #expect(error.map { !"\($0)".contains("\n") } ?? false)
        }
        let layer = try makeNorm("evonorm_b0", [:], input: [2, 3, 1, 1])
        #expect(throws: NormError.self) { try layer.forward(Tensor.zeros([2, 3, 1, 1]), mode: .train) }
        #expect(throws: NormError.self) { try makeNorm("evonorm_b0", [:], input: [4, 3]).forward(Tensor.zeros([4, 3]), mode: .train) }
        #expect(throws: NormError.self) { try layer.backward(Tensor.zeros([2, 3, 1, 1])) }
    }
}
