import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Identities between methods that must hold exactly in exact arithmetic.
///
/// Tolerance: both sides compute float64 statistics and then a handful of float32 operations
/// per element (possibly through different kernels, e.g. GroupNorm's per-plane kernel vs
/// LayerNorm's per-row kernel), so they differ by a few float32 ulps — about 1e-7 relative to
/// the magnitude of the values. 1e-5 relative to that magnitude leaves two orders of margin,
/// while any semantic difference (an eps slip, biased vs unbiased variance over n ≤ 60 values,
/// a missing affine term) moves results by 1e-3 or more.
@Suite("Identities between methods")
struct IdentityTests {
    private let rtol = 1e-5

    @Test("BRN(r_max=1, d_max=0) is BN: outputs, gradients and running stats over several steps",
          arguments: [[5, 3], [4, 3, 6], [2, 3, 3, 4]])
    func renormWithUnitLimitsIsBatchNorm(shape: [Int]) throws {
        var rng = TestRNG(seed: 11)
        let opts: [String: OptionValue] = ["momentum": .real(0.2), "eps": .real(1e-4)]
        let bn = try makeNorm("bn", opts, input: shape)
        var brnOpts = opts
        brnOpts["r_max"] = .real(1); brnOpts["d_max"] = .real(0)
        let brn = try makeNorm("brn", brnOpts, input: shape)
        let c = shape[1]
        let w = rng.uniformTensor([c], 0.5, 1.5), b = rng.uniformTensor([c], -0.5, 0.5)
        for layer in [bn, brn] {
            try layer.requireParameter("weight").value = w
            try layer.requireParameter("bias").value = b
        }
        for step in 0..<4 {
            // Batches drift away from the running statistics, so an unclipped r, d would differ from 1, 0.
            let x = rng.normalTensor(shape, mean: Double(step) - 1, std: 0.5 + Double(step))
            let g = rng.normalTensor(shape)
            let yBN = try bn.forward(x, mode: .train).copy, yBRN = try brn.forward(x, mode: .train).copy
            expectClose(yBRN, yBN, rtol: rtol, "step \(step) output")
            expectClose(try brn.backward(g).copy, try bn.backward(g).copy, rtol: rtol, "step \(step) dL/dx")
            for name in ["weight", "bias"] {
                let gb = try #require(try bn.requireParameter(name).gradient)
                let gr = try #require(try brn.requireParameter(name).gradient)
                expectClose(gr, gb, rtol: rtol, "step \(step) dL/d\(name)")
            }
            for name in ["running_mean", "running_var", "num_batches_tracked"] {
                expectClose(try brn.requireBuffer(name).value, try bn.requireBuffer(name).value, rtol: rtol, "step \(step) \(name)")
            }
        }
        let xe = rng.normalTensor(shape)
        expectClose(try brn.forward(xe, mode: .eval).copy, try bn.forward(xe, mode: .eval).copy, rtol: rtol, "eval output")
    }

    @Test("GN(num_groups=C) is IN with affine", arguments: [[2, 3, 5], [3, 4, 2, 3], [2, 2, 2, 3, 2]])
    func groupNormPerChannelIsInstanceNorm(shape: [Int]) throws {
        var rng = TestRNG(seed: 12)
        let c = shape[1]
        let gn = try makeNorm("gn", ["num_groups": .integer(c), "eps": .real(1e-3)], input: shape)
        let inorm = try makeNorm("in", ["affine": .bool(true), "eps": .real(1e-3)], input: shape)
        let w = rng.uniformTensor([c], -1.5, 1.5), b = rng.uniformTensor([c], -0.5, 0.5)
        for layer in [gn, inorm] {
            try layer.requireParameter("weight").value = w
            try layer.requireParameter("bias").value = b
        }
        let x = rng.normalTensor(shape, mean: 2, std: 3), g = rng.normalTensor(shape)
        for mode in Mode.allCases {
            expectClose(try inorm.forward(x, mode: mode).copy, try gn.forward(x, mode: mode).copy, rtol: rtol, "\(mode) output")
            expectClose(try inorm.backward(g).copy, try gn.backward(g).copy, rtol: rtol, "\(mode) dL/dx")
            for name in ["weight", "bias"] {
                expectClose(try #require(try inorm.requireParameter(name).gradient),
                            try #require(try gn.requireParameter(name).gradient), rtol: rtol, "\(mode) dL/d\(name)")
            }
        }
    }

    @Test("GN(num_groups=1) is LN when LN's elementwise affine is the per-channel one broadcast over space",
          arguments: [[3, 4], [2, 3, 5], [2, 3, 2, 4], [2, 2, 3, 2, 2]])
    func groupNormOneGroupIsLayerNorm(shape: [Int]) throws {
        var rng = TestRNG(seed: 13)
        let c = shape[1], s = shape.count > 2 ? shape[2...].reduce(1, *) : 1
        let gn = try makeNorm("gn", ["num_groups": .integer(1)], input: shape)
        let ln = try makeNorm("ln", [:], input: shape)
        let w = rng.uniformTensor([c], -1.5, 1.5), b = rng.uniformTensor([c], -0.5, 0.5)
        try gn.requireParameter("weight").value = w
        try gn.requireParameter("bias").value = b
        let perElement = Array(shape.dropFirst())
        let wv = w.doubles, bv = b.doubles
        try ln.requireParameter("weight").value = Tensor(shape: perElement, doubles: (0..<(c * s)).map { wv[$0 / s] })
        try ln.requireParameter("bias").value = Tensor(shape: perElement, doubles: (0..<(c * s)).map { bv[$0 / s] })

        let x = rng.normalTensor(shape, mean: -1, std: 2), g = rng.normalTensor(shape)
        expectClose(try ln.forward(x, mode: .train).copy, try gn.forward(x, mode: .train).copy, rtol: rtol, "output")
        expectClose(try ln.backward(g).copy, try gn.backward(g).copy, rtol: rtol, "dL/dx")
        // LN's elementwise parameter gradients, summed over space, are GN's per-channel ones.
        for name in ["weight", "bias"] {
            let lnGrad = try #require(try ln.requireParameter(name).gradient).doubles
            let summed = (0..<c).map { ch in (0..<s).reduce(0.0) { $0 + lnGrad[ch * s + $1] } }
            expectClose(try #require(try gn.requireParameter(name).gradient), summed, rtol: rtol, "dL/d\(name)")
        }
    }

    @Test("BN eval with running stats = batch mean and biased batch variance equals BN train",
          arguments: [[6, 4], [3, 4, 5], [2, 4, 3, 3], [2, 4, 2, 2, 3]])
    func batchNormEvalWithBatchStatisticsIsTrain(shape: [Int]) throws {
        var rng = TestRNG(seed: 14)
        let c = shape[1]
        let opts: [String: OptionValue] = ["eps": .real(1e-2)]   // a visible eps: both paths must add it
        let train = try makeNorm("bn", opts, input: shape), eval = try makeNorm("bn", opts, input: shape)
        let w = rng.uniformTensor([c], -1.5, 1.5), b = rng.uniformTensor([c], -0.5, 0.5)
        for layer in [train, eval] {
            try layer.requireParameter("weight").value = w
            try layer.requireParameter("bias").value = b
        }
        let x = rng.normalTensor(shape, mean: 1.5, std: 0.7)
        let (mean, biasedVar, _) = channelMoments(x)
        try eval.requireBuffer("running_mean").value = Tensor(shape: [c], doubles: mean)
        try eval.requireBuffer("running_var").value = Tensor(shape: [c], doubles: biasedVar)
        let yTrain = try train.forward(x, mode: .train).copy
        let yEval = try eval.forward(x, mode: .eval).copy
        expectClose(yEval, yTrain, rtol: rtol, "eval with batch statistics vs train")
        // Sanity: the unbiased variance in running_var would not match (so the check is sharp).
        let n = Double(x.count / c)
        try eval.requireBuffer("running_var").value = Tensor(shape: [c], doubles: biasedVar.map { $0 * n / (n - 1) })
        let yUnbiased = try eval.forward(x, mode: .eval).copy
        #expect(maxAbsError(yUnbiased.doubles, yTrain.doubles).error > 100 * rtol)
    }
}
