import Foundation
import Testing
import NormCore
@testable import NormNet

@Suite struct LabelSmoothingTests {
    let logits = Tensor(shape: [2, 3], scalars: [1, 2, 0.5, -1, 0, 3])
    let labels = [1, 0]

    /// PyTorch's `cross_entropy(label_smoothing=ε)` written out in float64.
    func reference(_ eps: Double, _ x: [Double]) -> Double {
        var total = 0.0
        for r in 0..<2 {
            let row = Array(x[(r * 3)..<(r * 3 + 3)])
            let lse = log(row.map { exp($0) }.reduce(0, +))
            let logp = row.map { $0 - lse }
            total += -(1 - eps) * logp[labels[r]] - eps / 3 * logp.reduce(0, +)
        }
        return total / 2
    }

    @Test(arguments: [0.0, 0.1, 0.3, 1.0])
    func valueAndGradient(_ eps: Double) throws {
        let r = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, labelSmoothing: eps)
        let x = logits.scalars.map(Double.init)
        #expect(abs(r.loss - reference(eps, x)) < 1e-12)
        // Finite differences of the float64 reference.
        let h = 1e-6
        for i in 0..<x.count {
            var p = x, m = x
            p[i] += h; m[i] -= h
            let numeric = (reference(eps, p) - reference(eps, m)) / (2 * h)
            #expect(abs(numeric - Double(r.gradient[flat: i])) < 1e-6, "logit \(i)")
        }
    }

    @Test func byHandForOneRow() throws {
        // Uniform logits over K = 4: every log p = −log 4, so the loss is log 4 for any ε,
        // and the gradient is (1/4 − t_j): label j gets 1/4 − (1 − ε + ε/4), others 1/4 − ε/4.
        let eps = 0.2
        let r = try SoftmaxCrossEntropy.evaluate(logits: Tensor(repeating: 0, shape: [1, 4]), labels: [2], labelSmoothing: eps)
        #expect(abs(r.loss - log(4)) < 1e-12)
        #expect(abs(Double(r.gradient[flat: 2]) - (0.25 - 0.85)) < 1e-7)
        #expect(abs(Double(r.gradient[flat: 0]) - (0.25 - 0.05)) < 1e-7)
    }

    @Test func zeroSmoothingIsBitIdenticalToThePlainLoss() throws {
        let plain = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels)
        let zero = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, labelSmoothing: 0)
        #expect(plain.loss == zero.loss && plain.gradient.isBitIdentical(to: zero.gradient))
    }

    @Test func outOfRangeSmoothingIsRefused() {
        #expect(throws: NetError.self) { try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, labelSmoothing: -0.1) }
        #expect(throws: NetError.self) { try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, labelSmoothing: 1.5) }
    }
}
