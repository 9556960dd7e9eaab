import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// A float64 model of PyTorch's running-statistics update, written from the documented
/// formulas (not from the Swift code): `running = (1 − m)·running + m·batch`, the variance
/// stored unbiased (`n/(n−1)`) or biased, `m = 1/k` for `momentum: none`, `m = 1 − d` for
/// `keras_decay: d`.
struct RunningModel {
    enum Rule { case momentum(Double), cumulative, kerasDecay(Double) }
    var mean: [Double]
    var variance: [Double]
    var batches = 0
    let rule: Rule
    let unbiased: Bool

    init(channels: Int, rule: Rule, unbiased: Bool = true) {
        mean = [Double](repeating: 0, count: channels)
        variance = [Double](repeating: 1, count: channels)
        self.rule = rule
        self.unbiased = unbiased
    }

    mutating func update(mean batchMean: [Double], biasedVar: [Double], count: Int) {
        batches += 1
        let m: Double
        switch rule {
        case let .momentum(v): m = v
        case .cumulative: m = 1 / Double(batches)
        case let .kerasDecay(d): m = 1 - d
        }
        let k = unbiased ? Double(count) / Double(count - 1) : 1
        for c in 0..<mean.count {
            mean[c] = (1 - m) * mean[c] + m * batchMean[c]
            variance[c] = (1 - m) * variance[c] + m * biasedVar[c] * k
        }
    }
}

/// Running statistics against hand computation.
///
/// Tolerance: the layer folds each update in float64 and rounds the buffer to float32, so
/// after a few steps it differs from the pure float64 model by a few float32 ulps of the
/// running values (≲ 1e-6 relative); 1e-5 relative keeps margin while a wrong momentum,
/// the biased/unbiased swap (a factor n/(n−1) = 20/19 here) or a missed step are far outside.
@Suite("Running statistics")
struct RunningStatsTests {
    private let rtol = 1e-5

    /// Batches whose per-channel statistics drift from step to step.
    private func batch(_ rng: inout TestRNG, _ shape: [Int], step: Int) -> Tensor {
        let c = shape[1]
        var x = rng.normalTensor(shape)
        let s = shape.count > 2 ? shape[2...].reduce(1, *) : 1
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count {
                let ch = (i / s) % c
                p[i] = p[i] * Float(0.5 + 0.4 * Double(ch + step)) + Float(Double(step) - 0.7 * Double(ch))
            }
        }
        return x
    }

    /// A batch whose per-channel sample mean and (biased) standard deviation are exactly the given ones.
    private func standardizedBatch(_ rng: inout TestRNG, _ shape: [Int], means: [Double], stds: [Double]) -> Tensor {
        let noise = rng.normalTensor(shape)
        let (m, v, _) = channelMoments(noise)
        return Tensor(shape: shape, doubles: noise.doubles.enumerated().map { i, e in
            let c = sampleAndChannel(i, shape: shape).c
            return (e - m[c]) / v[c].squareRoot() * stds[c] + means[c]
        })
    }

    struct MomentumCase: Sendable, CustomTestStringConvertible {
        let method: String
        let options: [String: OptionValue]
        let label: String
        var testDescription: String { "\(method) \(label)" }
    }

    static let momentumCases: [MomentumCase] = ["bn", "brn"].flatMap { m in [
        MomentumCase(method: m, options: [:], label: "momentum 0.1 (default)"),
        MomentumCase(method: m, options: ["momentum": .real(0.3)], label: "momentum 0.3"),
        MomentumCase(method: m, options: ["momentum": .none], label: "momentum none (cumulative)"),
        MomentumCase(method: m, options: ["keras_decay": .real(0.7)], label: "keras_decay 0.7"),
        MomentumCase(method: m, options: ["momentum": .real(0.3), "running_var": .text("biased")], label: "biased running_var"),
    ] }

    @Test("train steps update running_mean / running_var / num_batches_tracked as computed by hand",
          arguments: momentumCases)
    func updatesMatchHandComputation(_ mc: MomentumCase) throws {
        var rng = TestRNG(seed: 21)
        let shape = [4, 3, 5]   // 20 values per channel
        let layer = try makeNorm(mc.method, mc.options, input: shape)
        let rule: RunningModel.Rule
        switch (mc.options["momentum"], mc.options["keras_decay"]) {
        case (.none?, _): rule = .cumulative
        case let (.real(m)?, _): rule = .momentum(m)
        case let (_, .real(d)?): rule = .kerasDecay(d)
        default: rule = .momentum(0.1)
        }
        var model = RunningModel(channels: 3, rule: rule, unbiased: mc.options["running_var"] != .text("biased"))
        for step in 0..<5 {
            let x = batch(&rng, shape, step: step)
            _ = try layer.forward(x, mode: .train)
            _ = try layer.backward(rng.normalTensor(shape))   // backward never touches buffers
            let (mean, biasedVar, count) = channelMoments(x)
            model.update(mean: mean, biasedVar: biasedVar, count: count)
            expectClose(try layer.requireBuffer("running_mean").value, model.mean, rtol: rtol, "\(mc) step \(step) running_mean")
            expectClose(try layer.requireBuffer("running_var").value, model.variance, rtol: rtol, "\(mc) step \(step) running_var")
            #expect(try layer.requireBuffer("num_batches_tracked").value.scalars == [Float(step + 1)])
        }
        // Eval normalizes with exactly these statistics.
        let x = batch(&rng, shape, step: 9)
        let y = try layer.forward(x, mode: .eval)
        let rm = try layer.requireBuffer("running_mean").value.doubles, rv = try layer.requireBuffer("running_var").value.doubles
        let expected = x.doubles.enumerated().map { i, v -> Double in
            let c = sampleAndChannel(i, shape: shape).c
            return (v - rm[c]) / (rv[c] + 1e-5).squareRoot()
        }
        expectClose(y, expected, rtol: rtol, "\(mc) eval output")
    }

    @Test("eval mode leaves every buffer bit-identical",
          arguments: [("bn", [String: OptionValue]()), ("brn", [:]),
                      ("in", ["track_running_stats": .bool(true), "affine": .bool(true)])])
    func evalLeavesBuffersUnchanged(method: String, options: [String: OptionValue]) throws {
        var rng = TestRNG(seed: 22)
        let shape = [3, 2, 4, 3]
        let layer = try makeNorm(method, options, input: shape)
        _ = try layer.forward(batch(&rng, shape, step: 1), mode: .train)   // non-default state
        let before = layer.bufferSnapshot()
        #expect(before.keys.sorted() == ["num_batches_tracked", "running_mean", "running_var"])
        for step in 0..<3 {
            _ = try layer.forward(batch(&rng, shape, step: step), mode: .eval)
            _ = try layer.backward(rng.normalTensor(shape))
        }
        for b in layer.buffers { expectBitIdentical(b.value, before[b.name]!, "\(method) \(b.name)") }
    }

    @Test("BN without tracking keeps no buffers and uses batch statistics in eval")
    func untrackedBatchNorm() throws {
        var rng = TestRNG(seed: 23)
        let shape = [4, 3, 2]
        let layer = try makeNorm("bn", ["track_running_stats": .bool(false)], input: shape)
        #expect(layer.buffers.isEmpty)
        #expect(!layer.tracksRunningStatistics)
        let x = batch(&rng, shape, step: 2)
        let yTrain = try layer.forward(x, mode: .train).copy
        expectBitIdentical(try layer.forward(x, mode: .eval).copy, yTrain, "eval vs train without tracking")
    }

    @Test("IN with tracking: running stats get the batch-mean of per-instance mean and unbiased variance; eval uses them")
    func instanceNormTracking() throws {
        var rng = TestRNG(seed: 24)
        let shape = [3, 2, 5]   // 5 spatial values per instance
        let layer = try makeNorm("in", ["track_running_stats": .bool(true), "momentum": .real(0.25)], input: shape)
        var model = RunningModel(channels: 2, rule: .momentum(0.25))
        for step in 0..<4 {
            let x = batch(&rng, shape, step: step)
            let y = try layer.forward(x, mode: .train)
            // PyTorch: each instance's unbiased variance (n = spatial size), then the mean over N.
            let (im, iv) = rowMoments(x.doubles, length: 5)   // per (n, c) plane, plane index n·C + c
            let meanC = (0..<2).map { c in (0..<3).reduce(0.0) { $0 + im[$1 * 2 + c] } / 3 }
            let varC = (0..<2).map { c in (0..<3).reduce(0.0) { $0 + iv[$1 * 2 + c] } / 3 }
            model.update(mean: meanC, biasedVar: varC, count: 5)
            expectClose(try layer.requireBuffer("running_mean").value, model.mean, rtol: rtol, "step \(step) running_mean")
            expectClose(try layer.requireBuffer("running_var").value, model.variance, rtol: rtol, "step \(step) running_var")
            // Train normalizes each instance with its own statistics.
            let expected = x.doubles.enumerated().map { i, v in (v - im[i / 5]) / (iv[i / 5] + 1e-5).squareRoot() }
            expectClose(y, expected, rtol: rtol, "step \(step) train output")
        }
        #expect(try layer.requireBuffer("num_batches_tracked").value.scalars == [4])
        let x = batch(&rng, shape, step: 7)
        let y = try layer.forward(x, mode: .eval)
        let expected = x.doubles.enumerated().map { i, v -> Double in
            let c = sampleAndChannel(i, shape: shape).c
            return (v - model.mean[c]) / (model.variance[c] + 1e-5).squareRoot()
        }
        expectClose(y, expected, rtol: rtol, "eval output with running stats")
    }

    @Test("skip_nonfinite skips (and counts) an update whose batch statistics are NaN or inf",
          arguments: ["bn", "brn"])
    func skipNonFinite(method: String) throws {
        var rng = TestRNG(seed: 25)
        let shape = [4, 3, 3]
        let layer = try makeNorm(method, ["skip_nonfinite": .bool(true), "momentum": .none], input: shape)
        let stats: RunningStatistics = try #require((layer as? BatchNorm)?.runningStatistics ?? (layer as? BatchRenorm)?.runningStatistics)
        var model = RunningModel(channels: 3, rule: .cumulative)

        let x0 = batch(&rng, shape, step: 0)
        _ = try layer.forward(x0, mode: .train)
        let m0 = channelMoments(x0)
        model.update(mean: m0.mean, biasedVar: m0.biasedVar, count: m0.count)
        let afterFirst = layer.bufferSnapshot()

        // A NaN, then an inf, in channel 1: the whole update is skipped each time.
        for bad in [Float.nan, .infinity] {
            var xb = batch(&rng, shape, step: 1)
            xb[flat: 3 * 1 + 1] = bad   // sample 0, channel 1 (spatial 3)
            let y = try layer.forward(xb, mode: .train)
            // The non-finite value propagates to its channel's outputs; other channels stay finite.
            let yv = y.scalars
            #expect(yv.indices.filter { sampleAndChannel($0, shape: shape).c == 0 }.allSatisfy { yv[$0].isFinite })
            #expect(!yv[3 * 1 + 1].isFinite)
            for b in layer.buffers { expectBitIdentical(b.value, afterFirst[b.name]!, "\(method) \(b.name) after a \(bad) batch") }
        }
        #expect(stats.skippedUpdates == 2)
        #expect(stats.batchCount == 1)

        // The next finite batch is the second counted one (cumulative average over 2 batches).
        let x2 = batch(&rng, shape, step: 2)
        _ = try layer.forward(x2, mode: .train)
        let m2 = channelMoments(x2)
        model.update(mean: m2.mean, biasedVar: m2.biasedVar, count: m2.count)
        expectClose(try layer.requireBuffer("running_mean").value, model.mean, rtol: rtol, "running_mean")
        expectClose(try layer.requireBuffer("running_var").value, model.variance, rtol: rtol, "running_var")
        #expect(try layer.requireBuffer("num_batches_tracked").value.scalars == [2])
        #expect(stats.skippedUpdates == 2)
    }

    @Test("without skip_nonfinite a NaN batch poisons its channel's running stats (PyTorch behaviour)")
    func nonFiniteWithoutSkip() throws {
        var rng = TestRNG(seed: 26)
        let shape = [4, 3, 3]
        let layer = try makeNorm("bn", [:], input: shape)
        var x = batch(&rng, shape, step: 0)
        x[flat: 3 * 1] = .nan   // sample 0, channel 1
        _ = try layer.forward(x, mode: .train)
        let rm = try layer.requireBuffer("running_mean").value.scalars
        #expect(rm[1].isNaN)
        #expect(rm[0].isFinite && rm[2].isFinite)
        #expect(try layer.requireBuffer("num_batches_tracked").value.scalars == [1])
    }

    @Test("BRN: r_max / d_max changed between steps through `limits`; r, d and clip rates follow Algorithm 1")
    func renormLimitsSchedule() throws {
        var rng = TestRNG(seed: 27)
        let shape = [6, 2, 4]
        let brn = try #require(try makeNorm("brn", ["eps": .real(1e-3)], input: shape) as? BatchRenorm)
        #expect(brn.limits.rMax == 3 && brn.limits.dMax == 5)   // option defaults
        let w = [1.3, -0.7], b = [0.2, -0.1]
        try brn.requireParameter("weight").value = Tensor(shape: [2], doubles: w)
        try brn.requireParameter("bias").value = Tensor(shape: [2], doubles: b)
        let eps = 1e-3, momentum = 0.1
        var rm = [0.0, 0.0], rv = [1.0, 1.0]

        // Channel 0 is far from the running statistics (exactly mean 6, std 4), channel 1 close
        // (mean 0.05, std 1.05). With the running stats these produce, limits (1, 0) clip
        // everything, (2, 1) only channel 0 (raw r ≈ 2.5, d ≈ 3.4), (10, 10) nothing (r ≈ 2, d ≈ 2.4).
        let schedule: [(rMax: Double, dMax: Double, clipped: (r: Int, d: Int))] = [(1, 0, (2, 2)), (2, 1, (1, 1)), (10, 10, (0, 0))]
        var totalR = 0, totalD = 0
        for (step, limits) in schedule.enumerated() {
            // A schedule sets the limits between steps. (RenormLimits has no public initializer,
            // so outside NormPlugins the fields are assigned one by one.)
            brn.limits.rMax = limits.rMax
            brn.limits.dMax = limits.dMax
            let x = standardizedBatch(&rng, shape, means: [6, 0.05], stds: [4, 1.05])
            let y = try brn.forward(x, mode: .train)

            let (mean, biasedVar, count) = channelMoments(x)
            var r = [Double](), d = [Double](), rClipped = 0, dClipped = 0
            for c in 0..<2 {
                let sigma = (rv[c] + eps).squareRoot(), sigmaB = (biasedVar[c] + eps).squareRoot()
                let rawR = sigmaB / sigma, rawD = (mean[c] - rm[c]) / sigma
                r.append(min(max(rawR, 1 / limits.rMax), limits.rMax))
                d.append(min(max(rawD, -limits.dMax), limits.dMax))
                if r[c] != rawR { rClipped += 1 }
                if d[c] != rawD { dClipped += 1 }
            }
            // The data is built to hit the intended clip pattern (a check of the test itself).
            try #require(rClipped == limits.clipped.r && dClipped == limits.clipped.d, "step \(step): test data misses its clip pattern")
            let expected = x.doubles.enumerated().map { i, v -> Double in
                let c = sampleAndChannel(i, shape: shape).c
                return w[c] * ((v - mean[c]) / (biasedVar[c] + eps).squareRoot() * r[c] + d[c]) + b[c]
            }
            expectClose(y, expected, rtol: rtol, "step \(step) output")
            #expect(brn.lastClipFractions.r == Double(rClipped) / 2, "step \(step) r clip fraction")
            #expect(brn.lastClipFractions.d == Double(dClipped) / 2, "step \(step) d clip fraction")
            totalR += rClipped; totalD += dClipped
            #expect(brn.clipRates.r == Double(totalR) / Double(2 * (step + 1)), "step \(step) cumulative r clip rate")
            #expect(brn.clipRates.d == Double(totalD) / Double(2 * (step + 1)), "step \(step) cumulative d clip rate")

            // Running statistics update as BN's, after r and d were taken from the old ones.
            for c in 0..<2 {
                rm[c] = (1 - momentum) * rm[c] + momentum * mean[c]
                rv[c] = (1 - momentum) * rv[c] + momentum * biasedVar[c] * Double(count) / Double(count - 1)
            }
            expectClose(try brn.requireBuffer("running_mean").value, rm, rtol: rtol, "step \(step) running_mean")
            expectClose(try brn.requireBuffer("running_var").value, rv, rtol: rtol, "step \(step) running_var")
        }
        #expect(brn.clipRates.r == 0.5 && brn.clipRates.d == 0.5)

        // Eval is BN eval and observes no clipping.
        let before = brn.lastClipFractions
        _ = try brn.forward(rng.normalTensor(shape), mode: .eval)
        #expect(brn.lastClipFractions == before)

        // Limits outside their domain are refused at the next forward.
        brn.limits.rMax = 0.5; brn.limits.dMax = 1
        #expect(throws: NormError.self) { try brn.forward(rng.normalTensor(shape), mode: .train) }
        brn.limits.rMax = 2; brn.limits.dMax = -1
        #expect(throws: NormError.self) { try brn.forward(rng.normalTensor(shape), mode: .train) }
    }
}
