import Foundation
import Testing
import NormCore
@testable import NormNet

@Suite struct AdamTests {
    /// Runs Adam/AdamW on one parameter with a fixed gradient sequence.
    func run(_ config: AdamConfig, decays: Bool = true, grads: [[Float]], start: [Float], lrs: [Double]? = nil) throws -> [Float] {
        let p = Parameter(name: "w", value: Tensor(shape: [start.count], scalars: start))
        let adam = try Adam(config, parameters: [(p, decays)])
        for (k, g) in grads.enumerated() {
            p.gradient = Tensor(shape: [g.count], scalars: g)
            adam.step(learningRate: lrs?[k])
        }
        return p.value.scalars
    }

    /// PyTorch's Adam / AdamW for one coordinate, in float64.
    func reference(_ c: AdamConfig, decays: Bool = true, grads: [Double], start: Double, lrs: [Double]? = nil) -> Double {
        var p = start, m = 0.0, v = 0.0
        for (k, g0) in grads.enumerated() {
            let t = Double(k + 1), lr = lrs?[k] ?? c.learningRate, wd = decays ? c.weightDecay : 0
            var g = g0
            if c.decoupledWeightDecay { p *= 1 - lr * wd } else { g += wd * p }
            m = c.beta1 * m + (1 - c.beta1) * g
            v = c.beta2 * v + (1 - c.beta2) * g * g
            let mHat = m / (1 - pow(c.beta1, t)), vHat = v / (1 - pow(c.beta2, t))
            p -= lr * mHat / (vHat.squareRoot() + c.epsilon)
        }
        return p
    }

    @Test func firstStepByHand() throws {
        // Step 1: m̂ = g, v̂ = g², so p moves by lr·g/(|g| + ε) ≈ lr·sign(g).
        let got = try run(AdamConfig(learningRate: 0.1), grads: [[2, -0.5]], start: [1, 1])
        #expect(abs(Double(got[0]) - (1 - 0.1 * 2 / (2 + 1e-8))) < 1e-7)
        #expect(abs(Double(got[1]) - (1 + 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-7)
    }

    @Test func twoStepsByHand() throws {
        // lr 0.1, β1 0.9, β2 0.999, g = 1 then 3, p0 = 0.
        // t=1: m = 0.1, v = 0.001, m̂ = 1, v̂ = 1 → p = −0.1.
        // t=2: m = 0.39, v = 0.000999 + 0.009 = 0.009999, m̂ = 0.39/0.19 = 2.0526315789,
        //      v̂ = 0.009999/0.001999, so p = −0.1 − 0.1·m̂/(sqrt(v̂) + ε) = −0.19177811.
        let got = try run(AdamConfig(learningRate: 0.1), grads: [[1], [3]], start: [0])
        let expected = -0.1 - 0.1 * (0.39 / 0.19) / ((0.009999 / 0.001999).squareRoot() + 1e-8)
        #expect(abs(expected - (-0.19177811)) < 1e-7)
        #expect(abs(Double(got[0]) - expected) < 1e-6)
    }

    @Test func adamWDecayIsDecoupled() throws {
        // Zero gradient: Adam's L2 term becomes the gradient (moves by ≈ lr), AdamW only shrinks p.
        let adamW = try run(AdamConfig(learningRate: 0.1, weightDecay: 0.5, decoupledWeightDecay: true), grads: [[0]], start: [2])
        #expect(abs(Double(adamW[0]) - 2 * (1 - 0.1 * 0.5)) < 1e-7)
        let adam = try run(AdamConfig(learningRate: 0.1, weightDecay: 0.5), grads: [[0]], start: [2])
        #expect(abs(Double(adam[0]) - (2 - 0.1 * 1 / (1 + 1e-8))) < 1e-7)
    }

    @Test(arguments: [
        AdamConfig(learningRate: 0.01),
        AdamConfig(learningRate: 0.05, beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.1),
        AdamConfig(learningRate: 0.05, weightDecay: 0.1, decoupledWeightDecay: true),
        AdamConfig(learningRate: 0.02, beta1: 0, beta2: 0.5, weightDecay: 0.3, decoupledWeightDecay: true),
    ])
    func matchesReference(_ c: AdamConfig) throws {
        let grads: [[Float]] = [[1, -0.5], [0.25, 2], [-1, 0.75], [0.1, -3]]
        let lrs = [c.learningRate, c.learningRate / 2, c.learningRate, c.learningRate / 4]
        for decays in [true, false] {
            let got = try run(c, decays: decays, grads: grads, start: [2, -1], lrs: lrs)
            for j in 0..<2 {
                let ref = reference(c, decays: decays, grads: grads.map { Double($0[j]) }, start: [2.0, -1.0][j], lrs: lrs)
                #expect(abs(Double(got[j]) - ref) < 2e-6, "coordinate \(j) decays \(decays): \(got[j]) vs \(ref)")
            }
        }
    }

    @Test func frozenAndGradientlessParametersAreSkipped() throws {
        let frozen = Parameter(name: "a", value: Tensor(shape: [1], scalars: [1]))
        frozen.requiresGrad = false
        frozen.gradient = Tensor(shape: [1], scalars: [1])
        let none = Parameter(name: "b", value: Tensor(shape: [1], scalars: [1]))
        let adam = try Adam(AdamConfig(learningRate: 0.1, weightDecay: 0.1, decoupledWeightDecay: true),
                            parameters: [(frozen, true), (none, true)])
        adam.step(learningRate: nil)
        #expect(frozen.value.scalars == [1] && none.value.scalars == [1])
        #expect(adam.moments(of: frozen) == nil && adam.moments(of: none) == nil)
    }

    @Test func badSettingsAreRefused() {
        #expect(throws: NetError.self) { try AdamConfig(beta1: 1).validate() }
        #expect(throws: NetError.self) { try AdamConfig(beta2: -0.1).validate() }
        #expect(throws: NetError.self) { try AdamConfig(learningRate: .nan).validate() }
        #expect(throws: NetError.self) { try AdamConfig(weightDecay: -1).validate() }
    }

    @Test func optimizerConfigBuildsTheNamedOptimizer() throws {
        let p = Parameter(name: "w", value: Tensor(shape: [1], scalars: [1]))
        let adamw = OptimizerName.adamw.config(learningRate: 0.01, weightDecay: 0.05)
        #expect(adamw.name == "adamw" && adamw.learningRate == 0.01 && adamw.weightDecay == 0.05)
        #expect(try adamw.makeOptimizer(parameters: [(p, true)]) is Adam)
        #expect(try OptimizerName.sgd.config(learningRate: 0.1, weightDecay: 0).makeOptimizer(parameters: [(p, true)]) is SGD)
        #expect(OptimizerName.adam.config(learningRate: 1e-3, weightDecay: 0).name == "adam")
    }
}
