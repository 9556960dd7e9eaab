import Foundation
import Testing
import NormCore
@testable import NormNet

@Suite struct OptimizerTests {
    /// Runs `steps` updates of SGD on one parameter with a fixed gradient sequence.
    func run(_ config: SGDConfig, decays: Bool = true, grads: [[Float]], start: [Float]) throws -> [Float] {
        let p = Parameter(name: "w", value: Tensor(shape: [start.count], scalars: start))
        let sgd = try SGD(config, parameters: [(p, decays)])
        for g in grads {
            p.gradient = Tensor(shape: [g.count], scalars: g)
            sgd.step()
        }
        return p.value.scalars
    }

    /// PyTorch's rule written out in float64 for one coordinate.
    func reference(_ c: SGDConfig, decays: Bool = true, grads: [Double], start: Double) -> Double {
        var p = start, buf = 0.0
        for (k, g0) in grads.enumerated() {
            var g = g0 + (decays ? c.weightDecay * p : 0)
            if c.momentum != 0 {
                buf = k == 0 ? g : c.momentum * buf + (1 - c.dampening) * g
                g = c.nesterov ? g + c.momentum * buf : buf
            }
            p -= c.learningRate * g
        }
        return p
    }

    @Test func plainSGD() throws {
        let c = SGDConfig(learningRate: 0.5, momentum: 0, weightDecay: 0)
        #expect(try run(c, grads: [[1, -2]], start: [3, 4]) == [2.5, 5])
    }

    @Test(arguments: [
        SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 0),
        SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01),
        SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true),
        SGDConfig(learningRate: 0.2, momentum: 0.5, dampening: 0.3, weightDecay: 0.1),
        SGDConfig(learningRate: 0.3, momentum: 0, weightDecay: 0.2),
    ])
    func matchesHandComputation(_ c: SGDConfig) throws {
        let grads: [[Float]] = [[1, -0.5], [0.25, 2], [-1, 0.75]]
        let got = try run(c, grads: grads, start: [2, -1])
        for j in 0..<2 {
            let ref = reference(c, grads: grads.map { Double($0[j]) }, start: [2.0, -1.0][j])
            #expect(abs(Double(got[j]) - ref) < 1e-5, "coordinate \(j): \(got[j]) vs \(ref)")
        }
    }

    @Test func nesterovByHand() throws {
        // Step 1: buf = g = 1 → p = 1 − 0.1·(1 + 0.9·1) = 0.81.
        // Step 2: g = 1, buf = 0.9 + 1 = 1.9 → p = 0.81 − 0.1·(1 + 0.9·1.9) = 0.539.
        let c = SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 0, nesterov: true)
        let got = try run(c, grads: [[1], [1]], start: [1])
        #expect(abs(got[0] - 0.539) < 1e-6)
    }

    @Test func weightDecayOnlyWhereAllowed() throws {
        let c = SGDConfig(learningRate: 0.1, momentum: 0, weightDecay: 0.5)
        #expect(try run(c, decays: true, grads: [[0]], start: [2]) == [1.9])
        #expect(try run(c, decays: false, grads: [[0]], start: [2]) == [2])
    }

    @Test func frozenParametersUntouched() throws {
        let p = Parameter(name: "w", value: Tensor(shape: [2], scalars: [1, 2]), requiresGrad: false)
        p.gradient = Tensor(shape: [2], scalars: [1, 1])
        let sgd = try SGD(SGDConfig(), parameters: [(p, true)])
        sgd.step()
        #expect(p.value.scalars == [1, 2])
        #expect(sgd.momentumBuffer(of: p) == nil)
    }

    @Test func invalidConfigs() {
        #expect(throws: NetError.self) { try SGDConfig(learningRate: -1).validate() }
        #expect(throws: NetError.self) { try SGDConfig(momentum: 0, nesterov: true).validate() }
        #expect(throws: NetError.self) { try SGDConfig(weightDecay: .nan).validate() }
    }

    @Test func schedules() throws {
        let cosine = LRSchedule(.cosine(minimumFactor: 0))
        #expect(cosine.rate(at: 0, totalSteps: 100, base: 0.1) == 0.1)
        #expect(abs(cosine.rate(at: 50, totalSteps: 100, base: 0.1) - 0.05) < 1e-12)
        #expect(cosine.rate(at: 99, totalSteps: 100, base: 0.1) < 0.001)

        let warm = LRSchedule(.cosine(minimumFactor: 0), warmupSteps: 10)
        #expect(warm.rate(at: 0, totalSteps: 110, base: 1) == 0)
        #expect(abs(warm.rate(at: 5, totalSteps: 110, base: 1) - 0.5) < 1e-12)
        #expect(warm.rate(at: 10, totalSteps: 110, base: 1) == 1)
        #expect(abs(warm.rate(at: 60, totalSteps: 110, base: 1) - 0.5) < 1e-12)

        let warmFrom = LRSchedule(.constant, warmupSteps: 4, warmupStartFactor: 0.2)
        #expect(abs(warmFrom.rate(at: 2, totalSteps: 10, base: 1) - 0.6) < 1e-12)
        #expect(warmFrom.rate(at: 7, totalSteps: 10, base: 1) == 1)

        let step = LRSchedule(LRSchedule.standardStep)
        #expect(step.rate(at: 49, totalSteps: 100, base: 1) == 1)
        #expect(abs(step.rate(at: 50, totalSteps: 100, base: 1) - 0.1) < 1e-12)
        #expect(abs(step.rate(at: 74, totalSteps: 100, base: 1) - 0.1) < 1e-12)
        #expect(abs(step.rate(at: 75, totalSteps: 100, base: 1) - 0.01) < 1e-12)

        #expect(LRSchedule(.constant).rate(at: 99, totalSteps: 100, base: 0.3) == 0.3)
        #expect(throws: NetError.self) { try LRSchedule(.cosine(minimumFactor: 2)).validate() }
        #expect(throws: NetError.self) { try LRSchedule(.constant, warmupSteps: -1).validate() }
    }
}
