/// The three timed operations.
public enum BenchOp: String, Sendable, Codable, CaseIterable {
    case trainForward = "train_fwd"
    case evalForward = "eval_fwd"
    case backward = "backward"
}

/// Minimal memory traffic of each operation and the GB/s and ratios derived from it.
///
/// A normalization is memory-bound, so its floor is the bytes it must move, counted in
/// passes over a float32 tensor of the input's size (4 bytes per element and pass):
/// - train forward: 3 — read x for the statistics, read x again and write y;
/// - eval forward: 2 (read x, write y) with running statistics; a method that normalizes
///   with statistics of the input in eval too (GN, LN, FRN, untracked IN) needs the train
///   forward's 3;
/// - backward: 5 — read x and dL/dy for the reductions, read both again, write dL/dx.
/// STREAM's convention counts copy as 2 passes and triad as 3 (no write-allocate traffic),
/// the same way: a store is one pass.
public enum Traffic {
    public static let bytesPerElement = 4

    /// Passes over the tensor that `op` needs at least.
    public static func passes(_ op: BenchOp, evalUsesRunningStatistics: Bool) -> Int {
        switch op {
        case .trainForward: return 3
        case .evalForward: return evalUsesRunningStatistics ? 2 : 3
        case .backward: return 5
        }
    }

    /// Bytes moved by `passes` passes over `elements` float32 values.
    public static func bytes(elements: Int, passes: Int) -> Double {
        Double(elements) * Double(passes) * Double(bytesPerElement)
    }

    /// GB/s (10⁹ bytes per second) for `bytes` moved in `milliseconds`.
    public static func gigabytesPerSecond(bytes: Double, milliseconds: Double) -> Double {
        milliseconds > 0 ? bytes / (milliseconds * 1e-3) / 1e9 : 0
    }

    /// `gbps` as a percentage of `copyGBps`.
    public static func percentOfCopy(_ gbps: Double, copyGBps: Double) -> Double {
        copyGBps > 0 ? gbps / copyGBps * 100 : 0
    }

    /// How many times faster than numpy (`numpyMs / ms`).
    public static func speedup(ms: Double, numpyMs: Double?) -> Double? {
        guard let numpyMs, ms > 0 else { return nil }
        return numpyMs / ms
    }
}
