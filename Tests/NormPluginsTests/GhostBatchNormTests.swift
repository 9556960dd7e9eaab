import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Ghost Batch Normalization (Hoffer et al. 2017): identities with BN and IN, the running
/// statistics updated once per virtual batch in order, gradients, reporting, folding, errors.
@Suite struct GhostBatchNormTests {
    private func setAffine(_ layer: any Normalization, _ rng: inout TestRNG, channels: Int) throws {
        try layer.requireParameter("weight").value = Tensor(shape: [channels], doubles: (0..<channels).map { i in
            (i % 2 == 0 ? 1 : -1) * rng.uniform(0.6, 1.4) })
        try layer.requireParameter("bias").value = rng.uniformTensor([channels], -0.5, 0.5)
    }

    @Test("virtual_batch_size = N is BatchNorm, bit for bit", arguments: [[8, 3], [4, 3, 5], [4, 2, 3, 3]])
    func fullVirtualBatchIsBatchNorm(_ shape: [Int]) throws {
        var rng = TestRNG(seed: 5)
        let options: [String: OptionValue] = ["momentum": .real(0.3)]
        let gbn = try makeNorm("gbn", options.merging(["virtual_batch_size": .integer(shape[0])]) { a, _ in a }, input: shape)
        let bn = try makeNorm("bn", options, input: shape)
        try setAffine(gbn, &rng, channels: shape[1])
        for p in bn.parameters { p.value = try gbn.requireParameter(p.name).value }
        for (step, mode) in [Mode.train, .train, .eval].enumerated() {
            let x = rng.normalTensor(shape, mean: 0.5, std: 2), g = rng.normalTensor(shape)
            expectBitIdentical(try gbn.forward(x, mode: mode).copy, try bn.forward(x, mode: mode).copy, "output, step \(step)")
            expectBitIdentical(try gbn.backward(g).copy, try bn.backward(g).copy, "grad_input, step \(step)")
            for p in bn.parameters {
                expectBitIdentical(try #require(gbn.requireParameter(p.name).gradient), try #require(p.gradient), "grad \(p.name)")
            }
            for b in bn.buffers { expectBitIdentical(try gbn.requireBuffer(b.name).value, b.value, "\(b.name), step \(step)") }
        }
    }

    @Test func eachVirtualBatchIsBatchNormOnItsOwnAndUpdatesTheRunningStatisticsInOrder() throws {
        var rng = TestRNG(seed: 9)
        let shape = [6, 3, 4], chunk = [2, 3, 4], per = 24
        let gbn = try makeNorm("ghost_batch_norm", ["virtual_batch_size": .integer(2), "momentum": .real(0.3)], input: shape)
        let bn = try makeNorm("bn", ["momentum": .real(0.3)], input: chunk)
        try setAffine(gbn, &rng, channels: 3)
        for p in bn.parameters { p.value = try gbn.requireParameter(p.name).value }
        let x = rng.normalTensor(shape, mean: 0.5, std: 2), g = rng.normalTensor(shape)
        let y = try gbn.forward(x, mode: .train).copy, gx = try gbn.backward(g).copy
        var expectedY: [Double] = [], expectedGX: [Double] = [], gw = [Double](repeating: 0, count: 3), gb = gw
        for k in 0..<3 {
            let xk = Tensor(shape: chunk, scalars: Array(x.scalars[(k * per)..<((k + 1) * per)]))
            let gk = Tensor(shape: chunk, scalars: Array(g.scalars[(k * per)..<((k + 1) * per)]))
            expectedY += try bn.forward(xk, mode: .train).doubles   // one running-stat update per chunk
            expectedGX += try bn.backward(gk).doubles
            for c in 0..<3 {
                gw[c] += Double(try bn.requireParameter("weight").gradient![flat: c])
                gb[c] += Double(try bn.requireParameter("bias").gradient![flat: c])
            }
        }
        expectClose(y, expectedY, rtol: 1e-6, "output = BN per chunk")
        expectClose(gx, expectedGX, rtol: 1e-6, "grad_input = BN per chunk")
        expectClose(try #require(gbn.requireParameter("weight").gradient), gw, rtol: 1e-5, "grad_weight = sum over chunks")
        expectClose(try #require(gbn.requireParameter("bias").gradient), gb, rtol: 1e-5, "grad_bias = sum over chunks")
        for b in bn.buffers { expectClose(try gbn.requireBuffer(b.name).value, b.value.doubles, rtol: 1e-6, b.name) }
        #expect(try gbn.requireBuffer("num_batches_tracked").value[flat: 0] == 3, "one update per virtual batch")
    }

    /// The channel-row path ((N, C) inputs) hands whole virtual batches to the threads: the
    /// same bits for every thread count, each chunk BatchNorm on its own.
    @Test func channelRowChunksGiveTheSameBitsForEveryThreadCount() throws {
        let shape = [64, 600], vbs = 8, per = vbs * 600
        let results = try resultsPerThreadCount { () throws -> [Tensor] in
            var rng = TestRNG(seed: 17)
            let gbn = try makeNorm("ghost_batch_norm", ["virtual_batch_size": .integer(vbs)], input: shape)
            try setAffine(gbn, &rng, channels: 600)
            let x = rng.normalTensor(shape, mean: 0.5, std: 2), g = rng.normalTensor(shape)
            let y = try gbn.forward(x, mode: .train).copy, gx = try gbn.backward(g).copy
            return [x, g, y, gx, try #require(gbn.requireParameter("weight").gradient), try #require(gbn.requireParameter("bias").gradient)]
                + gbn.buffers.map(\.value)
        }
        for r in results.dropFirst() {
            #expect(zip(r, results[0]).allSatisfy { $0.isBitIdentical(to: $1) })
        }
        let (x, g, y, gx) = (results[0][0], results[0][1], results[0][2], results[0][3])
        let bn = try makeNorm("bn", [:], input: [vbs, 600])
        for k in [0, 7] {
            let range = (k * per)..<((k + 1) * per)
            var rng = TestRNG(seed: 17)
            try setAffine(bn, &rng, channels: 600)
            let yk = try bn.forward(Tensor(shape: [vbs, 600], scalars: Array(x.scalars[range])), mode: .train)
            let gk = try bn.backward(Tensor(shape: [vbs, 600], scalars: Array(g.scalars[range])))
            expectClose(Array(y.doubles[range]), yk.doubles, rtol: 1e-6, "output of chunk \(k)")
            expectClose(Array(gx.doubles[range]), gk.doubles, rtol: 1e-5, "grad_input of chunk \(k)")
        }
    }

    @Test func virtualBatchesOfOneSampleAreInstanceNormInTrainMode() throws {
        var rng = TestRNG(seed: 2)
        let shape = [3, 2, 5]
        let gbn = try makeNorm("gbn", ["virtual_batch_size": .integer(1)], input: shape)
        let inorm = try makeNorm("in", ["affine": .bool(true)], input: shape)
        try setAffine(gbn, &rng, channels: 2)
        for p in inorm.parameters { p.value = try gbn.requireParameter(p.name).value }
        let x = rng.normalTensor(shape, mean: 1, std: 1.5), g = rng.normalTensor(shape)
        expectClose(try gbn.forward(x, mode: .train).copy, try inorm.forward(x, mode: .train).copy, rtol: 1e-6, "output")
        expectClose(try gbn.backward(g).copy, try inorm.backward(g).copy, rtol: 1e-5, "grad_input")
    }

    @Test("gradients match central differences", arguments: [Mode.train, .eval])
    func gradients(_ mode: Mode) throws {
        for shape in [[6, 3], [4, 2, 3], [4, 2, 2, 2]] {
            var rng = TestRNG(seed: UInt64(shape.reduce(1, *)))
            let layer = try makeNorm("gbn", ["virtual_batch_size": .integer(2)], input: shape)
            try setAffine(layer, &rng, channels: shape[1])
            try layer.requireBuffer("running_mean").value = rng.uniformTensor([shape[1]], -0.5, 0.5)
            try layer.requireBuffer("running_var").value = rng.uniformTensor([shape[1]], 0.5, 2)
            let x = rng.normalTensor(shape, mean: 0.3), gy = rng.normalTensor(shape)
            let result = try compareGradients(layer, x: x, gy: gy, mode: mode)
            #expect(result.entries.map(\.name) == ["x", "weight", "bias"])
            for e in result.entries {
                #expect(e.relativeError < 1e-2, "\(shape) \(mode) d/d\(e.name): \(e.relativeError)")
                #expect(e.analyticNorm > 1e-3)
            }
        }
    }

    @Test func reportsTheWholeBatchMomentsAndFoldsIntoBatchNormEval() throws {
        var rng = TestRNG(seed: 4)
        let shape = [8, 3, 2, 2]
        let layer = try makeNorm("gbn", ["virtual_batch_size": .integer(4)], input: shape)
        let x = rng.normalTensor(shape, mean: 2, std: 3)
        _ = try layer.forward(x, mode: .train)
        let reporting = try #require(layer as? any BatchStatisticsReporting)
        let moments = try #require(reporting.lastBatchMoments)
        let (mean, variance, count) = channelMoments(x)
        #expect(moments.count == count && !moments.perInstance)
        expectClose(moments.mean, mean, rtol: 1e-5, "pooled mean")
        expectClose(moments.variance, variance, rtol: 1e-5, "pooled biased variance (float32 kernels)")
        #expect(reporting.evalStatistics?.storesUnbiasedVariance == true)

        let folded = try (try #require(layer as? any AffineFolding)).foldedIntoAffine().get()
        let probe = rng.normalTensor([5, 3, 2, 2])   // eval accepts any batch size
        expectClose(try folded.forward(probe, mode: .eval).copy, try layer.forward(probe, mode: .eval).copy, rtol: 1e-6, "folded eval")
        let untracked = try makeNorm("gbn", ["track_running_stats": .bool(false)], input: shape)
        #expect(throws: FoldingRefusal.self) { try (untracked as! any AffineFolding).foldedIntoAffine().get() }
    }

    @Test func aBatchNotDivisibleByTheVirtualSizeIsAnErrorNamingBoth() throws {
        let layer = try makeNorm("gbn", ["virtual_batch_size": .integer(4)], input: [6, 3])
        let error = try #require(throws: NormError.self) { try layer.forward(Tensor.zeros([6, 3]), mode: .train) }
        #expect(error.description.contains("6") && error.description.contains("virtual_batch_size=4") && !error.description.contains("\n"))
        let untracked = try makeNorm("gbn", ["virtual_batch_size": .integer(4), "track_running_stats": .bool(false)], input: [6, 3])
        #expect(throws: NormError.self) { try untracked.forward(Tensor.zeros([6, 3]), mode: .eval) }
        let single = try makeNorm("gbn", ["virtual_batch_size": .integer(1)], input: [4, 3])
        let one = try #require(throws: NormError.self) { try single.forward(Tensor.zeros([4, 3]), mode: .train) }
        #expect(one.description.contains("1 value"))
        #expect(GhostBatchNorm.descriptor.constraintViolation(options: ["virtual_batch_size": .integer(4)], shape: [6, 3, 2])?
            .contains("not divisible") == true)
    }

    @Test func badOptionsAreOneLineErrors() throws {
        let bad: [[String: OptionValue]] = [["virtual_batch_size": .integer(0)], ["virtual_batch_size": .text("many")],
                                            ["virtual_batch_size": .real(2.5)], ["eps": .real(-1)], ["momentum": .real(2)],
                                            ["track_running_stats": .bool(false), "momentum": .real(0.2)]]
        for options in bad {
            let error = try #require(throws: NormError.self) { try makeNorm("gbn", options, input: [4, 3]) }
            #expect(!error.description.contains("\n"), "\(error)")
        }
    }
}
