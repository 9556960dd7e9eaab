/// A seeded pseudo-random generator: xoshiro256** (Blackman & Vigna 2018) whose state is
/// expanded from a 64-bit seed with SplitMix64. Pure integer arithmetic, so the stream is
/// identical on every machine and Swift version; every random draw in normlab comes from
/// one of these, created from an explicit seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    /// A second normal deviate kept from the last Box–Muller pair.
    private var spareNormal: Double?

    public init(seed: UInt64) {
        var z = seed
        func splitMix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal deviate (Box–Muller; deterministic, no platform math differences
    /// beyond `log`/`cos`/`sin` of the C library).
    public mutating func nextNormal() -> Double {
        if let spare = spareNormal { spareNormal = nil; return spare }
        var u1 = nextUniform()
        while u1 <= 0 { u1 = nextUniform() }
        let u2 = nextUniform()
        let radius = (-2 * log(u1)).squareRoot()
        spareNormal = radius * sin(2 * Double.pi * u2)
        return radius * cos(2 * Double.pi * u2)
    }

    /// Uniform integer in `range`.
    public mutating func nextInt(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// An independent generator derived from this one's seed stream (for per-cell/per-layer streams).
    public mutating func fork() -> SeededGenerator { SeededGenerator(seed: next()) }
}

extension Tensor {
    /// A tensor of normal deviates `mean + std·N(0, 1)` drawn from `generator`.
    public static func randomNormal(_ shape: [Int], mean: Double = 0, std: Double = 1,
                                    using generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, initializingWith: { buffer in
            for i in 0..<buffer.count { buffer[i] = Float(mean + std * generator.nextNormal()) }
        })
    }

    /// A tensor of uniform deviates in `[low, high)` drawn from `generator`.
    public static func randomUniform(_ shape: [Int], low: Double = 0, high: Double = 1,
                                     using generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, initializingWith: { buffer in
            for i in 0..<buffer.count { buffer[i] = Float(low + (high - low) * generator.nextUniform()) }
        })
    }
}

import Foundation
