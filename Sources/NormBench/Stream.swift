import Foundation
import NormCore

/// STREAM-style copy (`b = a`) and triad (`a = b + s·c`) kernels, written like the
/// normalization kernels (`SIMD16<Float>` loads and ordinary stores, no non-temporal
/// stores) and split over threads by the same `Parallel.forEach`, so "% of copy" compares
/// like with like.
public enum StreamKernels {
    public static func copy(_ a: UnsafePointer<Float>, _ b: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forEach(count, work: count) { range in
            var i = range.lowerBound
            let end = range.upperBound
            while i + 32 <= end {
                let u = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
                let v = UnsafeRawPointer(a + i + 16).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(b + i).storeBytes(of: u, as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(b + i + 16).storeBytes(of: v, as: SIMD16<Float>.self)
                i += 32
            }
            while i < end { b[i] = a[i]; i += 1 }
        }
    }

    public static func triad(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                             scalar: Float, count: Int) {
        Parallel.forEach(count, work: count) { range in
            let s = SIMD16<Float>(repeating: scalar)
            var i = range.lowerBound
            let end = range.upperBound
            while i + 16 <= end {
                let u = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
                let v = UnsafeRawPointer(c + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(a + i).storeBytes(of: u + s * v, as: SIMD16<Float>.self)
                i += 16
            }
            while i < end { a[i] = b[i] + scalar * c[i]; i += 1 }
        }
    }
}

/// One STREAM measurement.
public struct StreamResult: Sendable, Codable, Equatable {
    /// `copy` or `triad`.
    public var kernel: String
    /// Elements per array.
    public var elements: Int
    public var threads: Int
    /// Bytes counted per call (copy 2 × 4 B, triad 3 × 4 B per element).
    public var bytes: Double
    public var timing: TimingSummary
    /// From the median time.
    public var gbps: Double
    /// From the fastest call (STREAM reports the best).
    public var bestGbps: Double

    enum CodingKeys: String, CodingKey {
        case kernel, elements, threads, bytes, timing, gbps
        case bestGbps = "best_gbps"
    }
}

/// Runs STREAM copy/triad on arrays it allocates (and touches) once per size.
public final class StreamBench {
    private var arrays: (a: TensorStorage, b: TensorStorage, c: TensorStorage)?

    public init() {}

    private func arrays(_ n: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        if arrays?.a.count != n {
            arrays = nil
            let a = TensorStorage(repeating: 1, count: n), b = TensorStorage(repeating: 2, count: n), c = TensorStorage(repeating: 0.5, count: n)
            arrays = (a, b, c)
        }
        return (arrays!.a.base, arrays!.b.base, arrays!.c.base)
    }

    /// Frees the arrays.
    public func release() { arrays = nil }

    /// Measures `kernel` ("copy" or "triad") on `elements`-long arrays with `threads` threads.
    public func measure(_ kernel: String, elements n: Int, threads: Int,
                        warmup: Int, minReps: Int, maxReps: Int, minSeconds: Double) -> StreamResult {
        let saved = Parallel.threadCount
        Parallel.threadCount = threads
        defer { Parallel.threadCount = saved }
        let (a, b, c) = arrays(n)
        let times: [Double]
        let passes: Int
        if kernel == "triad" {
            passes = 3
            times = Timing.sample(warmup: warmup, minReps: minReps, maxReps: maxReps, minSeconds: minSeconds) {
                StreamKernels.triad(a, b, c, scalar: 3, count: n)
            }
        } else {
            passes = 2
            times = Timing.sample(warmup: warmup, minReps: minReps, maxReps: maxReps, minSeconds: minSeconds) {
                StreamKernels.copy(a, b, count: n)
            }
        }
        let summary = TimingSummary(seconds: times)
        let bytes = Traffic.bytes(elements: n, passes: passes)
        return StreamResult(kernel: kernel, elements: n, threads: threads, bytes: bytes, timing: summary,
                            gbps: Traffic.gigabytesPerSecond(bytes: bytes, milliseconds: summary.median),
                            bestGbps: Traffic.gigabytesPerSecond(bytes: bytes, milliseconds: summary.min))
    }
}
