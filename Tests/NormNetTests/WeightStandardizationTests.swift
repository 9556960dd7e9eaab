import Foundation
import Testing
import NormCore
@testable import NormNet

@Suite struct WeightStandardizationTests {
    func randomConv2d(cin: Int = 2, cout: Int = 3, k: Int = 3, bias: Bool = true, seed: UInt64 = 1) throws -> Conv2d {
        let conv = try Conv2d(inChannels: cin, outChannels: cout, kernel: k, stride: 1, padding: 1, bias: bias)
        var rng = SeededGenerator(seed: seed)
        for p in conv.parameters { p.value = Tensor.randomNormal(p.value.shape, mean: 0.2, std: 0.5, using: &rng) }
        conv.weightStandardization = try WeightStandardization()
        return conv
    }

    /// The standardization of one row, in float64, straight from the definition.
    func standardizedRow(_ w: [Double], eps: Double) -> [Double] {
        let mean = w.reduce(0, +) / Double(w.count)
        let variance = w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)
        return w.map { ($0 - mean) / (variance + eps).squareRoot() }
    }

    @Test func standardizedRowsHaveZeroMeanAndUnitVariance() throws {
        let conv = try randomConv2d()
        let s = try WeightStandardization().standardize(conv.weight.value)
        let n = 2 * 3 * 3
        for o in 0..<3 {
            let row = (0..<n).map { Double(s.weight[flat: o * n + $0]) }
            let reference = standardizedRow((0..<n).map { Double(conv.weight.value[flat: o * n + $0]) }, eps: 1e-6)
            for i in 0..<n { #expect(abs(row[i] - reference[i]) < 1e-6) }
            #expect(abs(row.reduce(0, +) / Double(n)) < 1e-6)
            #expect(abs(row.map { $0 * $0 }.reduce(0, +) / Double(n) - 1) < 1e-4)
        }
    }

    @Test func forwardEqualsAPlainConvolutionWithTheStandardizedWeight() throws {
        let ws = try randomConv2d()
        let plain = try Conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1, bias: true)
        plain.weight.value = try WeightStandardization().standardize(ws.weight.value).weight
        plain.bias!.value = ws.bias!.value
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.randomNormal([2, 2, 5, 4], using: &rng)
        #expect(try ws.forward(x, mode: .train).isBitIdentical(to: try plain.forward(x, mode: .train)))
        // The parameter itself is untouched.
        #expect(!ws.weight.value.isBitIdentical(to: plain.weight.value))
    }

    @Test(arguments: [(2, 3, 3), (3, 2, 1), (1, 4, 3)])
    func convolutionGradientsMatchFiniteDifferences(_ shape: (Int, Int, Int)) throws {
        let conv = try randomConv2d(cin: shape.0, cout: shape.1, k: shape.2, seed: UInt64(shape.0 * 10 + shape.1))
        var rng = SeededGenerator(seed: 6)
        let x = Tensor.randomNormal([2, shape.0, 5, 4], using: &rng)
        for (name, e) in try gradientErrors(conv, input: x, h: 1e-2) { #expect(e < 5e-3, "\(name): \(e)") }
    }

    @Test func weightGradientMatchesFloat64FiniteDifferences() throws {
        // L(W) = Σ r · Ŵ(W) for one 12-element row, differentiated in float64 from the definition.
        var rng = SeededGenerator(seed: 11)
        let w = Tensor.randomNormal([1, 3, 2, 2], mean: -0.3, std: 0.7, using: &rng)
        let r = Tensor.randomNormal([1, 3, 2, 2], using: &rng)
        let eps = 1e-3  // large enough that ε's own contribution to the gradient is visible
        let s = try WeightStandardization(epsilon: eps).standardize(w)
        let analytic = s.weightGradient(r).scalars.map(Double.init)
        let wd = w.scalars.map(Double.init), rd = r.scalars.map(Double.init)
        func loss(_ v: [Double]) -> Double { zip(standardizedRow(v, eps: eps), rd).map(*).reduce(0, +) }
        let h = 1e-6
        let numeric = wd.indices.map { i -> Double in
            var p = wd, m = wd
            p[i] += h; m[i] -= h
            return (loss(p) - loss(m)) / (2 * h)
        }
        #expect(relativeError(numeric, analytic) < 1e-5)
    }

    @Test func frozenWeightGetsNoGradient() throws {
        let conv = try randomConv2d()
        conv.weight.requiresGrad = false
        var rng = SeededGenerator(seed: 2)
        let x = Tensor.randomNormal([1, 2, 4, 4], using: &rng)
        let y = try conv.forward(x, mode: .train)
        _ = try conv.backward(Tensor(repeating: 1, shape: y.shape))
        #expect(conv.weight.gradient == nil)
    }

    @Test func badEpsilonIsRefused() {
        #expect(throws: NetError.self) { try WeightStandardization(epsilon: 0) }
        #expect(throws: NetError.self) { try WeightStandardization(epsilon: .infinity) }
    }
}
