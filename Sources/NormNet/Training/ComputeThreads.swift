import CBLAS
import NormCore

/// The threads the engine uses.
public enum ComputeThreads {
    /// Sets NormCore's `Parallel` pool to `count` threads (the kernels, and the engine's
    /// split of every large matrix product) and OpenBLAS to one thread per call (see ``Gemm``).
    public static func set(_ count: Int) {
        Parallel.threadCount = max(1, count)
        openblas_set_num_threads(1)
    }

    /// The threads in use.
    public static var count: Int { Parallel.threadCount }
}
