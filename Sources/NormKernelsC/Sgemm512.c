// Single-precision matrix products for the convolution engine, written for AVX-512.
//
// Two shapes cover every product of an im2col convolution:
//   nk_sgemm_packed:  C = op(A) · B      (forward W·cols, backward Wᵀ·dY)
//   nk_sgemm_abt:     C = A · Bᵀ         (weight gradient dY·colsᵀ)
// Both accumulate each output in a fixed order that depends only on the shapes, never on
// the thread count or the data, so results are deterministic. They run only on CPUs with
// AVX-512 F/BW/DQ/VL (checked at run time by nk_sgemm_available); the functions carry their
// own target attribute, so the rest of this library stays baseline x86-64.

#include "NormKernelsC.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define NK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")))

int nk_sgemm_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

// Rows of op(A) per register tile, columns per tile (three 16-float vectors).
enum { MR = 8, NR = 48 };

// A per-thread scratch buffer that grows on demand and is never freed (one per thread and
// use, a few hundred KB at most).
typedef struct { float *data; size_t capacity; } scratch_t;

static float *scratch_reserve(scratch_t *s, size_t floats) {
    if (floats > s->capacity) {
        free(s->data);
        s->data = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
        s->capacity = s->data ? floats : 0;
    }
    return s->data;
}

// op(A) packed into panels of MR rows, and one NR-column panel of op(B).
static _Thread_local scratch_t packed_a = {NULL, 0};
static _Thread_local scratch_t packed_b = {NULL, 0};

// op(A) into panels of MR rows: panel p holds, for every k, rows p·MR ..< p·MR+MR
// (zero beyond m), so the kernel broadcasts consecutive floats.
static void pack_a(int trans, long m, long k, const float *a, long lda, float *dst) {
    long panels = (m + MR - 1) / MR;
    for (long p = 0; p < panels; p++) {
        float *panel = dst + p * k * MR;
        for (long r = 0; r < MR; r++) {
            long row = p * MR + r;
            if (row >= m) {
                for (long kk = 0; kk < k; kk++) panel[kk * MR + r] = 0;
            } else if (trans) {
                for (long kk = 0; kk < k; kk++) panel[kk * MR + r] = a[kk * lda + row];
            } else {
                const float *src = a + row * lda;
                for (long kk = 0; kk < k; kk++) panel[kk * MR + r] = src[kk];
            }
        }
    }
}

// Writes (beta = 0) or adds (beta = 1) or scales-and-adds one accumulator row of `width`
// columns (a 16-lane vector, masked at the matrix edge).
NK_AVX512 static inline void store_row(float *c, __m512 acc, __mmask16 mask, float beta) {
    if (beta == 0.0f) {
        _mm512_mask_storeu_ps(c, mask, acc);
    } else {
        __m512 old = _mm512_maskz_loadu_ps(mask, c);
        _mm512_mask_storeu_ps(c, mask, _mm512_fmadd_ps(_mm512_set1_ps(beta), old, acc));
    }
}

static inline __mmask16 lane_mask(long width) {
    return width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1u);
}

// B's columns j ..< j+width into an aligned (k, NR) panel: the kernel then streams one
// contiguous block instead of k rows at B's (often unaligned) stride, once per panel of A.
NK_AVX512 static void pack_b(int transB, long k, const float *b, long ldb, long width, float *dst) {
    if (transB) {   // B is stored (n, k): gather columns, reading B's rows contiguously
        for (long j = 0; j < NR; j++) {
            if (j < width) {
                const float *src = b + j * ldb;
                for (long kk = 0; kk < k; kk++) dst[kk * NR + j] = src[kk];
            } else {
                for (long kk = 0; kk < k; kk++) dst[kk * NR + j] = 0;
            }
        }
        return;
    }
    __mmask16 m0 = lane_mask(width), m1 = width > 16 ? lane_mask(width - 16) : 0,
              m2 = width > 32 ? lane_mask(width - 32) : 0;
    for (long kk = 0; kk < k; kk++) {
        const float *src = b + kk * ldb;
        float *row = dst + kk * NR;
        _mm512_store_ps(row, _mm512_maskz_loadu_ps(m0, src));
        _mm512_store_ps(row + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        _mm512_store_ps(row + 32, _mm512_maskz_loadu_ps(m2, src + 32));
    }
}

// One MR × (16·NV) tile over a packed B panel; rows of C `rows` (≤ MR), columns `width`.
#define NK_TILE(NV)                                                                           \
NK_AVX512 static void tile_packed_##NV(long k, const float *panel, const float *bp,          \
                                       float *c, long ldc, long rows, long width, float beta) { \
    __m512 acc[MR][NV];                                                                       \
    for (int r = 0; r < MR; r++) for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps(); \
    for (long kk = 0; kk < k; kk++) {                                                         \
        __m512 bv[NV];                                                                        \
        for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(bp + kk * NR + 16 * v);           \
        const float *ak = panel + kk * MR;                                                    \
        for (int r = 0; r < MR; r++) {                                                        \
            __m512 av = _mm512_set1_ps(ak[r]);                                                \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);   \
        }                                                                                     \
    }                                                                                         \
    for (long r = 0; r < rows; r++) {                                                         \
        for (int v = 0; v < NV; v++) {                                                        \
            long left = width - 16 * v;                                                       \
            if (left > 0) store_row(c + r * ldc + 16 * v, acc[r][v], lane_mask(left), beta);  \
        }                                                                                     \
    }                                                                                         \
}
NK_TILE(1)
NK_TILE(2)
NK_TILE(3)

NK_AVX512 void nk_sgemm(int transA, int transB, long m, long n, long k, const float *a, long lda,
                               const float *b, long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        }
        return;
    }
    long panels = (m + MR - 1) / MR;
    float *packed = scratch_reserve(&packed_a, (size_t)(panels * MR * k));
    float *bpanel = scratch_reserve(&packed_b, (size_t)(k * NR));
    if (!packed || !bpanel) abort();
    pack_a(transA, m, k, a, lda, packed);
    for (long j = 0; j < n; j += NR) {
        long width = n - j < NR ? n - j : NR;
        pack_b(transB, k, transB ? b + j * ldb : b + j, ldb, width, bpanel);
        for (long p = 0; p < panels; p++) {
            long rows = m - p * MR < MR ? m - p * MR : MR;
            const float *ap = packed + p * k * MR;
            float *cp = c + p * MR * ldc + j;
            if (width > 32) tile_packed_3(k, ap, bpanel, cp, ldc, rows, width, beta);
            else if (width > 16) tile_packed_2(k, ap, bpanel, cp, ldc, rows, width, beta);
            else tile_packed_1(k, ap, bpanel, cp, ldc, rows, width, beta);
        }
    }
}

// Dot-product tiles of C = A·Bᵀ: 4 rows of A × 4 rows of B, sixteen 16-lane partial sums
// over k, each reduced once at the end (lanes in a fixed tree order).
enum { TA = 4, TB = 4 };

NK_AVX512 static void tile_abt(long k, const float *a, long lda, long rowsA, const float *b, long ldb,
                               long rowsB, float *c, long ldc, float beta) {
    __m512 acc[TA][TB];
    for (int i = 0; i < TA; i++) for (int j = 0; j < TB; j++) acc[i][j] = _mm512_setzero_ps();
    const float *ar[TA], *br[TB];
    for (int i = 0; i < TA; i++) ar[i] = a + (i < rowsA ? i : 0) * lda;
    for (int j = 0; j < TB; j++) br[j] = b + (j < rowsB ? j : 0) * ldb;
    for (long kk = 0; kk < k; kk += 16) {
        __mmask16 mask = lane_mask(k - kk);
        __m512 bv[TB];
        for (int j = 0; j < TB; j++) bv[j] = _mm512_maskz_loadu_ps(mask, br[j] + kk);
        for (int i = 0; i < TA; i++) {
            __m512 av = _mm512_maskz_loadu_ps(mask, ar[i] + kk);
            for (int j = 0; j < TB; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    for (long i = 0; i < rowsA; i++) {
        for (long j = 0; j < rowsB; j++) {
            float sum = _mm512_reduce_add_ps(acc[i][j]);
            float *dst = c + i * ldc + j;
            *dst = beta == 0.0f ? sum : beta * *dst + sum;
        }
    }
}

NK_AVX512 void nk_sgemm_abt(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                            float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    for (long i = 0; i < m; i += TA) {
        long rowsA = m - i < TA ? m - i : TA;
        for (long j = 0; j < n; j += TB) {
            long rowsB = n - j < TB ? n - j : TB;
            tile_abt(k, a + i * lda, lda, rowsA, b + j * ldb, ldb, rowsB, c + i * ldc + j, ldc, beta);
        }
    }
}

#else

int nk_sgemm_available(void) { return 0; }
void nk_sgemm_packed(int transA, long m, long n, long k, const float *a, long lda,
                     const float *b, long ldb, float beta, float *c, long ldc) { abort(); }
void nk_sgemm_abt(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                  float beta, float *c, long ldc) { abort(); }

#endif
