import Foundation

/// Deterministic float64 samples (SplitMix64 + Box–Muller) for the kernel tests: independent of
/// NormCore's own generator, so a bug there cannot hide in the test data.
struct KernelRNG {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
    mutating func floats(_ n: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        (0..<n).map { _ in Float(mean + std * normal()) }
    }
}
