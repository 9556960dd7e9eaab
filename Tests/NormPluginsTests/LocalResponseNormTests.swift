import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Local Response Normalization (PyTorch's nn.LocalResponseNorm): the window, size 1 in closed
/// form, finite-difference gradients, and errors.
@Suite struct LocalResponseNormTests {
    /// float64 LRN written from the formula: window [c − size/2, c + (size−1)/2], zeros outside.
    private func direct(_ x: Tensor, size: Int, alpha: Double, beta: Double, k: Double) -> [Double] {
        let c = x.shape[1], s = x.spatialCount, v = x.doubles
        var out = v
        for n in 0..<x.shape[0] { for ch in 0..<c { for i in 0..<s {
            var sum = 0.0
            for j in (ch - size / 2)...(ch + (size - 1) / 2) where j >= 0 && j < c {
                let a = v[(n * c + j) * s + i]
                sum += a * a
            }
            out[(n * c + ch) * s + i] = v[(n * c + ch) * s + i] / pow(k + alpha / Double(size) * sum, beta)
        }}}
        return out
    }

    @Test("forward is the windowed formula", arguments: [(1, 6), (2, 6), (3, 6), (4, 6), (5, 3), (9, 4)])
    func forwardMatchesTheFormula(_ size: Int, _ channels: Int) throws {
        // 3x2 positions (the scalar loop) and 5x7 = 2·16 + 3 (the 16-lane loop and its tail).
        for spatial in [[3, 2], [5, 7]] {
            var rng = TestRNG(seed: UInt64(size * 31 + channels))
            let shape = [2, channels] + spatial
            for beta in [0.75, 0.5, 1, 1.3] {
                let options: [String: OptionValue] = ["size": .integer(size), "alpha": .real(0.8), "beta": .real(beta), "k": .real(1.5)]
                let layer = try makeNorm("lrn", options, input: shape)
                let x = rng.normalTensor(shape, std: 2)
                let y = try layer.forward(x, mode: .train).copy
                expectClose(y, direct(x, size: size, alpha: 0.8, beta: beta, k: 1.5), rtol: 1e-6,
                            "size \(size), C \(channels), \(shape), beta \(beta)")
                #expect(try layer.forward(x, mode: .eval).isBitIdentical(to: y), "train and eval are identical")
            }
        }
    }

    @Test func sizeOneIsTheClosedForm() throws {
        let layer = try makeNorm("local_response_norm", ["size": .integer(1), "alpha": .real(0.5), "beta": .real(2), "k": .real(2)],
                                 input: [1, 2, 2])
        let x = Tensor(shape: [1, 2, 2], scalars: [1, -2, 0.5, 3])
        let y = try layer.forward(x, mode: .train)
        expectClose(y, x.doubles.map { $0 / pow(2 + 0.5 * $0 * $0, 2) }, rtol: 1e-6, "a / (k + alpha a^2)^beta")
        #expect(layer.parameters.isEmpty && layer.buffers.isEmpty && !layer.tracksRunningStatistics)
    }

    @Test("gradients match central differences",
          arguments: [(3, 0.75, 1.0), (2, 0.75, 2.0), (4, 2.0, 1.0), (5, 0.5, 1.0), (1, 1.3, 0.5)])
    func gradients(_ size: Int, _ beta: Double, _ k: Double) throws {
        for shape in [[2, 4, 3], [2, 5, 2, 2], [1, 3, 2, 1, 2], [1, 3, 19]] {
            var rng = TestRNG(seed: UInt64(size * 100 + shape.count))
            let layer = try makeNorm("lrn", ["size": .integer(size), "alpha": .real(1), "beta": .real(beta), "k": .real(k)], input: shape)
            let x = rng.normalTensor(shape, mean: 0.2), gy = rng.normalTensor(shape)
            let result = try compareGradients(layer, x: x, gy: gy, mode: .train)
            #expect(result.entries.map(\.name) == ["x"])
            for e in result.entries {
                #expect(e.relativeError < 1e-2, "size \(size) beta \(beta) \(shape): \(e.relativeError)")
                #expect(e.analyticNorm > 1e-3)
            }
        }
    }

    @Test func badOptionsAndInputsAreOneLineErrors() throws {
        let bad: [[String: OptionValue]] = [["size": .integer(0)], ["size": .real(2.5)], ["alpha": .real(-1)], ["beta": .text("x")],
                                            ["k": .real(0)], ["k": .real(-1)], ["affine": .bool(true)]]
        for options in bad {
            let error = try #require(throws: NormError.self) { try makeNorm("lrn", options, input: [2, 3, 4]) }
            #expect(!error.description.contains("\n") && error.description.contains("local_response_norm"), "\(error)")
        }
        let layer = try makeNorm("lrn", input: [2, 3, 4])
        let rank2 = try #require(throws: NormError.self) { try layer.forward(Tensor.zeros([2, 3]), mode: .train) }
        #expect(rank2.description.contains("spatial"))
        #expect(throws: NormError.self) { try layer.backward(Tensor.zeros([2, 3, 4])) }
    }
}
