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

/// Sixteen floats, imported into Swift as `SIMD16<Float>`.
typedef float nk_float16 __attribute__((ext_vector_type(16)));

/// Stores 16 floats at `p` (64-byte aligned) with a non-temporal hint: the line goes to memory
/// without being read first or kept in the caches. For outputs larger than the last-level
/// cache, which no cache would keep anyway; ``nk_store_fence`` before another thread reads them.
static inline __attribute__((always_inline)) void nk_stream_store16(float *p, nk_float16 v) {
    __builtin_nontemporal_store(v, (nk_float16 *)p);
}

/// Orders this thread's non-temporal stores before its later stores (x86 `sfence`).
static inline __attribute__((always_inline)) void nk_store_fence(void) {
#if defined(__x86_64__)
    __builtin_ia32_sfence();
#endif
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

/// Winograd F(2x2, 3x3) transforms (Lavin & Gray 2016) for 3x3, stride-1, padding-1
/// convolutions over `(images, C, h, w)` planes; see `Winograd.c` for the matrices and the
/// layout of the transformed domain: 16 row-major `(C, T)` matrices, one per ξ at `ξ·ldxi`,
/// `T = images · ceil(h/2) · ceil(w/2)` tiles. All run on the calling thread, in a fixed order.

/// `U[ξ] = G·g·Gᵀ` for a weight `(cout, cin, 3, 3)`: 16 matrices `(cout, cin)` (float64 inside).
void nk_wino_filter(const float *w, long cout, long cin, float *u);
/// The adjoint of ``nk_wino_filter``: `dw = Gᵀ·dU·G` as `(cout, cin, 3, 3)`.
void nk_wino_filter_adjoint(const float *du, long cout, long cin, float *dw);
/// `V[ξ] = Bᵀ·d·B` for every 4x4 zero-padded input window (stride 2).
void nk_wino_input(const float *x, long images, long channels, long h, long w, float *v, long ldxi);
/// `y = Aᵀ·M·A (+ bias[c])` per tile, cropped to `(images, channels, h, w)`; `bias` may be NULL.
void nk_wino_output(const float *m, long ldxi, long images, long channels, long h, long w, const float *bias, float *y);
/// The adjoint of ``nk_wino_output``: `Ŷ[ξ] = A·dy·Aᵀ` per tile (`dy` zero beyond the edges).
void nk_wino_output_adjoint(const float *dy, long images, long channels, long h, long w, float *yhat, long ldxi);
/// The adjoint of ``nk_wino_input``: `dx = Σ B·dV·Bᵀ` over the overlapping windows, padding
/// cropped; overwrites the `(images, channels, h, w)` planes of `dx`.
void nk_wino_input_adjoint(const float *dv, long ldxi, long images, long channels, long h, long w, float *dx);

#endif
