import Testing
import NormCore
@testable import NormNet

@Suite struct DropoutTests {
    @Test func evalIsIdentity() throws {
        let d = try Dropout(probability: 0.5, seed: 1)
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(try d.forward(x, mode: .eval) == x)
        let g = Tensor(shape: [2, 3], scalars: [1, 1, 1, 1, 1, 1])
        #expect(try d.backward(g) == g)
    }

    @Test func trainZeroesAndRescales() throws {
        let p = 0.25
        let d = try Dropout(probability: p, seed: 3)
        let n = 20_000
        let x = Tensor(repeating: 2, shape: [100, n / 100])
        let y = try d.forward(x, mode: .train).scalars
        let kept = y.filter { $0 != 0 }
        // Survivors are scaled by 1/(1−p); zeros appear at rate ≈ p.
        #expect(kept.allSatisfy { abs($0 - Float(2 / (1 - p))) < 1e-6 })
        let dropRate = Double(n - kept.count) / Double(n)
        #expect(abs(dropRate - p) < 0.02, "drop rate \(dropRate)")
        // The gradient uses the same mask and scale.
        let g = try d.backward(Tensor(repeating: 1, shape: x.shape)).scalars
        for i in 0..<n { #expect(g[i] == (y[i] == 0 ? 0 : Float(1 / (1 - p)))) }
    }

    @Test func sameSeedSameMasks() throws {
        let x = Tensor(repeating: 1, shape: [4, 16])
        let a = try Dropout(probability: 0.5, seed: 9), b = try Dropout(probability: 0.5, seed: 9)
        let c = try Dropout(probability: 0.5, seed: 10)
        let a1 = try a.forward(x, mode: .train), b1 = try b.forward(x, mode: .train)
        #expect(a1.isBitIdentical(to: b1))
        #expect(!a1.isBitIdentical(to: try c.forward(x, mode: .train)))
        // An eval pass in between draws nothing: the next train masks still agree.
        _ = try a.forward(x, mode: .eval)
        #expect(try a.forward(x, mode: .train).isBitIdentical(to: try b.forward(x, mode: .train)))
        // Consecutive masks differ.
        #expect(!a1.isBitIdentical(to: try a.forward(x, mode: .train)))
    }

    @Test func zeroProbabilityIsIdentityAndBadProbabilitiesAreRefused() throws {
        let d = try Dropout(probability: 0, seed: 1)
        let x = Tensor(shape: [1, 3], scalars: [1, -2, 3])
        #expect(try d.forward(x, mode: .train) == x)
        #expect(throws: NetError.self) { try Dropout(probability: 1, seed: 0) }
        #expect(throws: NetError.self) { try Dropout(probability: -0.1, seed: 0) }
        #expect(throws: NetError.self) { try Dropout(probability: .nan, seed: 0) }
    }
}
