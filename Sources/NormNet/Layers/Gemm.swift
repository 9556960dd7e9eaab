import CBLAS
import NormCore

/// Row-major single-precision matrix products through OpenBLAS's `cblas_sgemm`.
///
/// Large products are split by the engine into fixed blocks of 256 columns (or rows), run
/// across NormCore's `Parallel` pool, each a single-threaded `cblas_sgemm` call. OpenBLAS's
/// own threads are not used: on a small machine its spinning workers and the kernels' pool
/// fight over the same cores, and fixed blocks make every result independent of the
/// thread count (like NormCore's kernels).
enum Gemm {
    /// Products with fewer multiply-adds than this run as one call on the calling thread.
    static let parallelWork = 1 << 20
    /// Columns (or rows) per block of a split product.
    static let blockExtent = 256
    /// OpenBLAS set to one thread per call, once, before the first product (also when a
    /// library user never calls ``ComputeThreads/set(_:)``).
    static let singleThreadedBLAS: Void = openblas_set_num_threads(1)

    /// `C = alpha · op(A) · op(B) + beta · C` with `op(A)` of shape (m, k), `op(B)` of (k, n),
    /// all row-major with their natural leading dimensions.
    static func multiply(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                         alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         beta: Float = 0, c: UnsafeMutablePointer<Float>) {
        guard m > 0, n > 0 else { return }
        _ = singleThreadedBLAS
        guard k > 0 else {
            if beta == 0 { c.initialize(repeating: 0, count: m * n) }
            else if beta != 1 { for i in 0..<(m * n) { c[i] *= beta } }
            return
        }
        let lda = transA ? m : k, ldb = transB ? k : n
        let splitColumns = n >= m
        let extent = splitColumns ? n : m
        let blocks = (extent + blockExtent - 1) / blockExtent
        guard blocks > 1, m * n * k >= parallelWork else {
            call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, n)
            return
        }
        // Fixed blocks whatever the thread count: every block is the same single-threaded
        // call on any machine setting, so results do not depend on `Parallel.threadCount`.
        Parallel.forEach(blocks, work: Int.max) { range in
            for t in range {
                let lo = t * blockExtent, hi = min(extent, lo + blockExtent)
                if splitColumns {
                    call(transA, transB, m, hi - lo, k, alpha, a, lda, transB ? b + lo * k : b + lo, ldb, beta, c + lo, n)
                } else {
                    call(transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * k, lda, b, ldb, beta, c + lo * n, n)
                }
            }
        }
    }

    /// The same product as one single-threaded call on the calling thread (for callers that
    /// split their work themselves).
    static func multiplySerial(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                               alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                               beta: Float = 0, c: UnsafeMutablePointer<Float>) {
        guard m > 0, n > 0, k > 0 else { return multiply(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c) }
        _ = singleThreadedBLAS
        call(transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, n)
    }

    @inline(__always)
    private static func call(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
