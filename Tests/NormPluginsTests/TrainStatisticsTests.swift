import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// BatchNorm's `train_statistics=running` (Ioffe 2017, section 2 ablation): train mode
/// normalizes with the running statistics before the step's update, as constants for the
/// gradient, while the batch statistics still update the running statistics.
@Suite("BatchNorm train_statistics")
struct TrainStatisticsTests {
    private static let running: [String: OptionValue] = ["train_statistics": .text("running")]
    private static let shapes: [[Int]] = [[6, 3], [3, 2, 4], [2, 3, 2, 3], [2, 2, 2, 2, 2], [2, 3, 4, 5]]

    /// Gives `layer` random O(1) weight/bias (both signs) and running statistics.
    private func randomize(_ layer: any Normalization, _ rng: inout TestRNG) throws {
        for p in layer.parameters {
            if p.name == "weight" {
                p.value = Tensor(shape: p.value.shape, doubles: (0..<p.value.count).map { i in (i % 3 == 2 ? -1 : 1) * rng.uniform(0.6, 1.4) })
            } else if p.name == "bias" {
                p.value = rng.uniformTensor(p.value.shape, -0.5, 0.5)
            }
        }
        try layer.requireBuffer("running_mean").value = rng.uniformTensor(try layer.requireBuffer("running_mean").value.shape, -0.5, 0.5)
        try layer.requireBuffer("running_var").value = rng.uniformTensor(try layer.requireBuffer("running_var").value.shape, 0.5, 2)
    }

    /// Copies every parameter and buffer value of `from` into `to` (same method and shape).
    private func copyState(from: any Normalization, to: any Normalization) throws {
        for p in from.parameters { try to.requireParameter(p.name).value = p.value.copy }
        for b in from.buffers { try to.requireBuffer(b.name).value = b.value.copy }
    }

    @Test("defaults to batch; parses case-insensitively; BN exposes it, BRN does not")
    func optionSchema() throws {
        let bn = try #require(try makeNorm("bn", [:], input: [4, 3]) as? BatchNorm)
        #expect(bn.trainStatistics == .batch)
        let spec = try #require(BatchNorm.descriptor.option("train_statistics"))
        #expect(spec.kind == .choice(["batch", "running"]) && spec.defaultValue == .text("batch"))
        let parsed = try NormOptions.parse(method: "batch_norm", schema: BatchNorm.descriptor.options, settings: ["train_statistics=Running"])
        #expect(parsed["train_statistics"] == .text("running"))
        let bnRunning = try #require(try makeNorm("bn", parsed, input: [4, 3]) as? BatchNorm)
        #expect(bnRunning.trainStatistics == .running)
        #expect(throws: NormError.self) { try makeNorm("bn", ["train_statistics": .text("moving")], input: [4, 3]) }
        #expect(BatchRenorm.descriptor.option("train_statistics") == nil)
        #expect(throws: NormError.self) { try makeNorm("brn", Self.running, input: [4, 3]) }
        let text = DescriptorText.describe(BatchNorm.descriptor)
        #expect(text.contains("train_statistics") && text.contains("Ioffe 2017"))
    }

    @Test("train_statistics=running with track_running_stats=false is a one-line configuration error")
    func requiresTracking() throws {
        let error = #expect(throws: NormError.self) {
            try makeNorm("bn", Self.running.merging(["track_running_stats": .bool(false)]) { a, _ in a }, input: [4, 3, 2])
        }
        guard case let .invalidConfiguration(method, _)? = error else {
            Issue.record("expected invalidConfiguration, got \(String(describing: error))"); return
        }
        #expect(method == "batch_norm")
        let line = error!.description
        #expect(!line.contains("\n") && line.contains("train_statistics=running") && line.contains("track_running_stats"))
        // Explicit batch without tracking stays valid.
        _ = try makeNorm("bn", ["train_statistics": .text("batch"), "track_running_stats": .bool(false)], input: [4, 3, 2])
    }

    @Test("train forward with running equals eval forward on the same pre-step buffers", arguments: shapes)
    func trainForwardEqualsEval(shape: [Int]) throws {
        var rng = TestRNG(seed: 400 + UInt64(shape.count * 10 + shape[1]))
        let layer = try makeNorm("bn", Self.running, input: shape)
        let twin = try makeNorm("bn", [:], input: shape)
        try randomize(layer, &rng)
        for step in 0..<3 {
            // Each step starts from the previous step's update: the twin evaluates on those buffers.
            try copyState(from: layer, to: twin)
            let x = rng.normalTensor(shape, mean: 0.4 + Double(step), std: 1.5)
            let y = try layer.forward(x, mode: .train).copy
            let yEval = try twin.forward(x, mode: .eval).copy
            expectBitIdentical(y, yEval, "step \(step): train(running) vs eval on the pre-step buffers \(shape)")
            // And not the batch-normalized output (the option is effective).
            let yBatch = try twin.forward(x, mode: .train)
            #expect(y.maxAbsDifference(yBatch) > 1e-2)
        }
    }

    @Test("running statistics and lastBatchStatistics are updated exactly as with batch",
          arguments: [[:], ["momentum": OptionValue.none], ["momentum": .real(0.3)], ["keras_decay": .real(0.9)],
                      ["running_var": .text("biased")], ["skip_nonfinite": .bool(true)]] as [[String: OptionValue]])
    func runningUpdateUnchanged(options: [String: OptionValue]) throws {
        var rng = TestRNG(seed: 500)
        let shape = [4, 3, 5]
        let withRunning = try #require(try makeNorm("bn", options.merging(Self.running) { a, _ in a }, input: shape) as? BatchNorm)
        let withBatch = try #require(try makeNorm("bn", options, input: shape) as? BatchNorm)
        try randomize(withRunning, &rng)
        try copyState(from: withRunning, to: withBatch)
        let skips = options["skip_nonfinite"] == .bool(true)
        for step in 0..<4 {
            var x = rng.normalTensor(shape, mean: Double(step) - 1, std: 0.5 + 0.5 * Double(step))
            if skips && step == 2 { x[flat: 7] = .nan }
            _ = try withRunning.forward(x, mode: .train)
            _ = try withBatch.forward(x, mode: .train)
            for b in withBatch.buffers {
                expectBitIdentical(try withRunning.requireBuffer(b.name).value, b.value, "\(options) step \(step) \(b.name)")
            }
            let a = try #require(withRunning.lastBatchStatistics), e = try #require(withBatch.lastBatchStatistics)
            #expect(a.count == e.count)
            #expect(zip(a.mean, e.mean).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "lastBatchStatistics.mean step \(step)")
            #expect(zip(a.variance, e.variance).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "lastBatchStatistics.variance step \(step)")
        }
        if skips { #expect(withRunning.runningStatistics?.skippedUpdates == 1 && withBatch.runningStatistics?.skippedUpdates == 1) }
        // Eval is unchanged by the option.
        let x = rng.normalTensor(shape)
        expectBitIdentical(try withRunning.forward(x, mode: .eval).copy, try withBatch.forward(x, mode: .eval).copy, "eval")
    }

    @Test("backward treats the running statistics as constants: closed form and finite differences",
          arguments: shapes)
    func backwardConstantStatistics(shape: [Int]) throws {
        var rng = TestRNG(seed: 600 + UInt64(shape.count * 10 + shape[1]))
        let layer = try makeNorm("bn", Self.running, input: shape)
        try randomize(layer, &rng)
        let x = rng.normalTensor(shape, mean: 0.3, std: 1), gy = rng.normalTensor(shape)

        // Closed form: dx = dy·γ/√(rv + eps), dγ = Σ dy·x̂, dβ = Σ dy with x̂ from the running stats.
        let eps = 1e-5
        let rm = try layer.requireBuffer("running_mean").value.doubles, rv = try layer.requireBuffer("running_var").value.doubles
        let w = try layer.requireParameter("weight").value.doubles
        let c = shape[1], xv = x.doubles, gv = gy.doubles
        var gx = [Double](repeating: 0, count: xv.count), gw = [Double](repeating: 0, count: c), gb = gw
        for i in 0..<xv.count {
            let ch = sampleAndChannel(i, shape: shape).c
            let inv = 1 / (rv[ch] + eps).squareRoot()
            gx[i] = gv[i] * w[ch] * inv
            gw[ch] += gv[i] * (xv[i] - rm[ch]) * inv
            gb[ch] += gv[i]
        }
        let saved = layer.bufferSnapshot()
        _ = try layer.forward(x, mode: .train)
        let gotGX = try layer.backward(gy).copy
        // float32 kernels on O(1) values: a few ulps.
        expectClose(gotGX, gx, rtol: 1e-5, "dL/dx \(shape)")
        expectClose(try #require(try layer.requireParameter("weight").gradient), gw, rtol: 1e-5, "dL/dweight \(shape)")
        expectClose(try #require(try layer.requireParameter("bias").gradient), gb, rtol: 1e-5, "dL/dbias \(shape)")

        // Finite differences (buffers restored before every forward, so each sees the pre-step stats).
        for b in layer.buffers { b.value = saved[b.name]!.copy }
        let result = try compareGradients(layer, x: x, gy: gy, mode: .train)
        #expect(result.entries.map(\.name).sorted() == ["bias", "weight", "x"])
        for e in result.entries {
            #expect(e.relativeError < 1e-2, "\(shape): d/d\(e.name) relative error \(e.relativeError)")
            #expect(e.analyticNorm > 1e-3)
        }

        // Without affine: dx = dy/√(rv + eps).
        let plain = try makeNorm("bn", Self.running.merging(["affine": .bool(false)]) { a, _ in a }, input: shape)
        for b in layer.buffers { try plain.requireBuffer(b.name).value = saved[b.name]!.copy }
        _ = try plain.forward(x, mode: .train)
        let gxPlain = try plain.backward(gy)
        let expectedPlain = (0..<xv.count).map { i in gv[i] / (rv[sampleAndChannel(i, shape: shape).c] + eps).squareRoot() }
        expectClose(gxPlain, expectedPlain, rtol: 1e-5, "dL/dx without affine \(shape)")
    }

    @Test("train with running still needs more than one value per channel (batch statistics feed the update)")
    func singleValueStillAnError() throws {
        let layer = try makeNorm("bn", Self.running, input: [1, 3])
        #expect(throws: NormError.self) { try layer.forward(Tensor(shape: [1, 3], doubles: [1, 2, 3]), mode: .train) }
        _ = try layer.forward(Tensor(shape: [1, 3], doubles: [1, 2, 3]), mode: .eval)
    }
}
