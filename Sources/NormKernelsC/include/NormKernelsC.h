#ifndef NORMKERNELSC_H
#define NORMKERNELSC_H

/// Software prefetch hints for the kernels (Swift has no prefetch instruction of its own).
/// A hint never faults, changes no value and may be ignored by the CPU.

/// Asks for the cache line holding `p` to be loaded into every cache level, for reading.
static inline __attribute__((always_inline)) void nk_prefetch_read(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// Asks for the cache line holding `p` to be loaded for writing.
static inline __attribute__((always_inline)) void nk_prefetch_write(const void *p) {
    __builtin_prefetch(p, 1, 3);
}

/// 1 when the CPU runs the AVX-512 (F, BW, DQ, VL) matrix products below; 0 otherwise.
int nk_sgemm_available(void);

/// `C = op(A)·op(B) + beta·C`, row-major: `op(A)` is (m, k) — `A` itself (leading dimension
/// `lda`) or, with `transA`, the transpose of a (k, m) `A`; `op(B)` is (k, n) — `B` or, with
/// `transB`, the transpose of an (n, k) `B`; `C` is (m, n). Requires ``nk_sgemm_available``.
/// Each output is summed over k in order (one fused multiply-add per term).
void nk_sgemm(int transA, int transB, long m, long n, long k, const float *a, long lda,
                     const float *b, long ldb, float beta, float *c, long ldc);

/// `C = A·Bᵀ + beta·C`, row-major: `A` (m, k), `B` (n, k), `C` (m, n). Requires
/// ``nk_sgemm_available``. Each output is sixteen strided partial sums over k, reduced in a
/// fixed order.
void nk_sgemm_abt(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                  float beta, float *c, long ldc);

#endif
