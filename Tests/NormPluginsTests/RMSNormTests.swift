import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// RMSNorm (Zhang & Sennrich 2019): finite-difference gradients, the closed form in float64,
/// the identity with LayerNorm on zero-mean samples, and option validation.
@Suite struct RMSNormTests {
    private static let shapes: [[Int]] = [[5, 3], [2, 3, 4], [2, 3, 2, 3], [2, 2, 2, 2, 2]]

    @Test("gradients match central differences", arguments: shapes)
    func gradients(_ shape: [Int]) throws {
        var rng = TestRNG(seed: UInt64(shape.reduce(7, *)))
        let layer = try makeNorm("rms", ["eps": .real(1e-3)], input: shape)
        try layer.requireParameter("weight").value = Tensor(shape: [shape[1]], doubles: (0..<shape[1]).map { i in
            (i % 2 == 0 ? 1 : -1) * rng.uniform(0.6, 1.4) })
        let x = rng.normalTensor(shape, mean: 0.3), gy = rng.normalTensor(shape)
        for mode in [Mode.train, .eval] {
            let result = try compareGradients(layer, x: x, gy: gy, mode: mode)
            #expect(result.entries.map(\.name) == ["x", "weight"])
            for e in result.entries {
                #expect(e.relativeError < 1e-2, "\(shape) \(mode) d/d\(e.name): \(e.relativeError)")
                #expect(e.analyticNorm > 1e-3)
            }
        }
    }

    @Test func forwardIsTheClosedFormPerSample() throws {
        var rng = TestRNG(seed: 3)
        let shape = [3, 4, 5], eps = 0.25
        let layer = try makeNorm("rms_norm", ["eps": .real(eps)], input: shape)
        let w = [0.5, -1.0, 2.0, 1.5]
        try layer.requireParameter("weight").value = Tensor(shape: [4], doubles: w)
        let x = rng.normalTensor(shape, mean: 1, std: 2)
        let y = try layer.forward(x, mode: .train).copy
        let v = x.doubles, m = 20
        var expected = [Double](repeating: 0, count: v.count)
        for n in 0..<3 {
            let row = v[(n * m)..<((n + 1) * m)]
            let r = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(m) + eps).squareRoot()
            for i in row.indices { expected[i] = v[i] * r * w[(i / 5) % 4] }
        }
        expectClose(y, expected, rtol: 1e-6, "RMSNorm output")
        #expect(try layer.forward(x, mode: .eval).isBitIdentical(to: y), "train and eval are identical")
    }

    @Test func equalsLayerNormOnZeroMeanSamples() throws {
        var rng = TestRNG(seed: 11)
        let shape = [4, 3, 2, 2], m = 12
        var v = rng.normalTensor(shape, std: 1.5).doubles
        for n in 0..<4 {
            let mean = v[(n * m)..<((n + 1) * m)].reduce(0, +) / Double(m)
            for i in (n * m)..<((n + 1) * m) { v[i] -= mean }
        }
        let x = Tensor(shape: shape, doubles: v), gy = rng.normalTensor(shape)
        let rms = try makeNorm("rms", ["affine": .bool(false), "eps": .real(1e-5)], input: shape)
        let ln = try makeNorm("ln", ["affine": .bool(false)], input: shape)
        expectClose(try rms.forward(x, mode: .train).copy, try ln.forward(x, mode: .train).copy, rtol: 1e-5, "RMS vs LN output")
        // With zero-mean samples x_hat agrees; the gradients differ by LN's mean term:
        // dx_RMS − dx_LN = r · mean(g) per sample, r = 1/√(mean(x²) + eps).
        let gxRMS = try rms.backward(gy).copy, gxLN = try ln.backward(gy).copy
        let g = gy.doubles
        var expected = gxLN.doubles
        for n in 0..<4 {
            let r = 1 / (v[(n * m)..<((n + 1) * m)].reduce(0) { $0 + $1 * $1 } / Double(m) + 1e-5).squareRoot()
            let meanG = g[(n * m)..<((n + 1) * m)].reduce(0, +) / Double(m)
            for i in (n * m)..<((n + 1) * m) { expected[i] += r * meanG }
        }
        expectClose(gxRMS, expected, rtol: 1e-5, "RMS dx = LN dx + r·mean(g)")
        #expect(rms.parameters.isEmpty && rms.buffers.isEmpty && !rms.tracksRunningStatistics)
    }

    @Test func aSingleValuePerSampleIsValid() throws {
        let layer = try makeNorm("rms", ["eps": .real(1)], input: [2, 1])
        let y = try layer.forward(Tensor(shape: [2, 1], scalars: [3, -1]), mode: .train)
        expectClose(y, [3 / 10.0.squareRoot(), -1 / 2.0.squareRoot()], rtol: 1e-6, "x / sqrt(x^2 + eps)")
    }

    @Test func badOptionsAreOneLineErrors() throws {
        for (key, value) in [("eps", OptionValue.real(-1)), ("affine", .text("maybe")), ("momentum", .real(0.1))] {
            let error = try #require(throws: NormError.self) { try makeNorm("rms", [key: value], input: [2, 3]) }
            #expect(!error.description.contains("\n") && error.description.contains(key), "\(error)")
        }
        let layer = try makeNorm("rms", input: [2, 3, 4])
        let error = try #require(throws: NormError.self) { try layer.forward(Tensor.zeros([2, 4, 4]), mode: .train) }
        #expect(error.description.contains("channels"))
    }
}
