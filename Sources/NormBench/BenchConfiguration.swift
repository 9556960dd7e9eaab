import Foundation
import NormCore

/// What one `normlab bench` run measures and how hard it tries.
public struct BenchConfiguration: Sendable, Equatable {
    /// Method names or aliases to benchmark; `nil` is every registered method.
    public var methods: [String]?
    /// Input shapes `(N, C, ...)`. A method skips the shapes whose rank it does not accept.
    public var shapes: [[Int]]
    /// Thread counts (each op is timed at every one).
    public var threads: [Int]
    /// Small shapes and few repetitions.
    public var quick: Bool
    /// Untimed calls before the timed ones.
    public var warmup: Int
    /// Timed calls: at least `minReps` and at least `minSeconds` in total, at most `maxReps`.
    /// The full run's cap is high enough that even a 20 µs op is sampled over `minSeconds`:
    /// a median over a few milliseconds follows whatever else the machine did in them.
    public var minReps: Int
    public var maxReps: Int
    public var minSeconds: Double
    /// The same, for the numpy side (its calls are 10-100x slower).
    public var numpyMinReps: Int
    public var numpyMinSeconds: Double
    /// Rounds the timings are taken in: every round times every method × shape × op (and a
    /// size-matched copy) for `1/rounds` of the sampling budget, with its own warm-up, and
    /// each median is over the samples of all rounds. A load that comes and goes on a shared
    /// machine then falls on every measurement alike instead of on the few timed while it
    /// lasted, so the ratios the targets compare are taken under the same conditions.
    public var rounds: Int
    /// Elements per array of the STREAM run on arrays far larger than the last-level cache.
    public var streamElements: Int
    /// Whether to time the numpy implementations at all.
    public var numpy: Bool
    /// Seed of the inputs and parameter values.
    public var seed: UInt64
    /// Relative tolerance of the correctness check against the float64 reference:
    /// `max|out − ref| ≤ tolerance · max(1, max|ref|)` (the parity suite's criterion).
    public var tolerance: Double

    /// The shapes: `(32,64,56,56)`, `(8,256,14,14)`, `(256,1024)`, `(64,32,8,8)`.
    public static let standardShapes: [[Int]] = [[32, 64, 56, 56], [8, 256, 14, 14], [256, 1024], [64, 32, 8, 8]]
    /// `--quick` shapes: the same kinds, 8-100x smaller.
    public static let quickShapes: [[Int]] = [[8, 32, 16, 16], [128, 256], [16, 16, 8, 8]]

    /// `1` and every core (deduplicated).
    public static var defaultThreads: [Int] {
        let n = max(1, ProcessInfo.processInfo.activeProcessorCount)
        return n == 1 ? [1] : [1, n]
    }

    /// The full run (about two minutes in a release build on 2 cores, 3 rounds).
    public static func standard() -> BenchConfiguration {
        BenchConfiguration(methods: nil, shapes: standardShapes, threads: defaultThreads, quick: false,
                           warmup: 10, minReps: 15, maxReps: 20_000, minSeconds: 0.3,
                           numpyMinReps: 5, numpyMinSeconds: 0.3, rounds: 3,
                           streamElements: max(4 * MachineInfo.lastLevelCacheBytes / 4, 16 << 20),
                           numpy: true, seed: 7, tolerance: 1e-4)
    }

    /// `--quick`: small shapes, few repetitions, a STREAM array of twice the LLC.
    public static func quickRun() -> BenchConfiguration {
        BenchConfiguration(methods: nil, shapes: quickShapes, threads: defaultThreads, quick: true,
                           warmup: 1, minReps: 3, maxReps: 30, minSeconds: 0.01,
                           numpyMinReps: 2, numpyMinSeconds: 0.01, rounds: 1,
                           streamElements: max(2 * MachineInfo.lastLevelCacheBytes / 4, 4 << 20),
                           numpy: true, seed: 7, tolerance: 1e-4)
    }

    /// Parses `32x64x56x56,256x1024` (also `32,64,56,56` for a single shape is refused:
    /// shapes are separated by commas, extents by `x`).
    public static func parseShapes(_ text: String) throws -> [[Int]] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty else { throw BenchError("--shapes needs at least one shape like 32x64x56x56") }
        return try parts.map { part in
            let extents = part.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard extents.count >= 2, extents.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw BenchError("bad shape '\(part)': expected positive extents joined by 'x', rank >= 2, e.g. 32x64x56x56")
            }
            return extents.map { $0! }
        }
    }

    /// Parses `1,2`.
    public static func parseThreads(_ text: String) throws -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",") {
            guard let t = Int(part.trimmingCharacters(in: .whitespaces)), t >= 1 else {
                throw BenchError("bad thread count '\(part)' in --threads: expected positive integers like 1,2")
            }
            if !out.contains(t) { out.append(t) }
        }
        guard !out.isEmpty else { throw BenchError("--threads needs at least one count") }
        return out
    }
}

/// A bench error (bad selection, failed correctness check), printed as one line.
public struct BenchError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// `32x64x56x56`.
public func shapeLabel(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "x") }

extension BenchError: UserFacingError {}
