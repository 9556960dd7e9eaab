import CBLAS
import Foundation
import NormCore
import NormKernelsC

/// Row-major single-precision matrix products: normlab's own AVX-512 kernels
/// (`Sources/NormKernelsC/Sgemm512.c`) on CPUs that have AVX-512, OpenBLAS's `cblas_sgemm`
/// otherwise (and for the few shapes where it is faster, see ``nativeKernels(for:)``).
///
/// The convolutions' products are small and thin — 16 to 64 output channels, a few hundred
/// columns per chunk — where OpenBLAS's general kernels run at 50–110 GFLOP/s on one core of
/// the project's AMD EPYC and the AVX-512 kernels at 100–200 (1.4–2.2×, measured per shape).
/// Both are deterministic: each output's sum runs in an order fixed by the shapes alone.
/// Results therefore differ (in the last bits) between a machine with AVX-512 and one without,
/// never between runs or thread counts on one machine.
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
    /// Whether this CPU runs the AVX-512 kernels.
    static let nativeKernelsAvailable = nk_sgemm_available() == 1
    /// The environment variable that, set to `blas`, sends every product to OpenBLAS (to
    /// compare the two on one machine: `NORMLAB_GEMM=blas normlab bench train`).
    public static let environmentVariable = "NORMLAB_GEMM"
    /// Off makes every product go through OpenBLAS (tests and benchmarks compare the two).
    nonisolated(unsafe) static var usesNativeKernels = nativeKernelsAvailable
        && ProcessInfo.processInfo.environment[environmentVariable] != "blas"
    /// Below this depth, `A·Bᵀ` goes to OpenBLAS: the native `A·Bᵀ` kernel sums 16-lane
    /// partials over k and reduces each output once, which costs as much as the products
    /// themselves when k is small (measured: 0.9× OpenBLAS at k = 98, 1.5–2.2× from k = 196).
    static let minimumNativeDepthOfABt = 128

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

    /// Which kernel computes a product of these transposes and depth.
    private enum Kernel { case native, nativeABt, blas }

    @inline(__always)
    private static func kernel(_ transA: Bool, _ transB: Bool, _ k: Int, _ alpha: Float) -> Kernel {
        guard usesNativeKernels, alpha == 1 else { return .blas }
        if transB && !transA { return k >= minimumNativeDepthOfABt ? .nativeABt : .blas }
        return transB ? .blas : .native
    }

    @inline(__always)
    private static func call(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        switch kernel(transA, transB, k, alpha) {
        case .native:
            return nk_sgemm(transA ? 1 : 0, 0, m, n, k, a, lda, b, ldb, beta, c, ldc)
        case .nativeABt:
            return nk_sgemm_abt(m, n, k, a, lda, b, ldb, beta, c, ldc)
        case .blas:
            break
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
