import Foundation
import NormCore

/// The test suites' seeded generator: SplitMix64 with Box–Muller normals. Independent of
/// NormCore's own generator, so a bug there cannot hide in the data the tests check with, and
/// deterministic (fixed seeds), so a failure reproduces.
public struct TestRNG {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// `n` values `mean + std · N(0, 1)`, rounded to float32.
    public mutating func floats(_ n: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        (0..<n).map { _ in Float(mean + std * normal()) }
    }

    /// `mean + std · N(0, 1)` elementwise, rounded to float32.
    public mutating func normalTensor(_ shape: [Int], mean: Double = 0, std: Double = 1) -> Tensor {
        Tensor(shape: shape, doubles: (0..<shape.product).map { _ in mean + std * normal() })
    }

    /// Uniform in [lo, hi) elementwise, rounded to float32.
    public mutating func uniformTensor(_ shape: [Int], _ lo: Double, _ hi: Double) -> Tensor {
        Tensor(shape: shape, doubles: (0..<shape.product).map { _ in uniform(lo, hi) })
    }
}
