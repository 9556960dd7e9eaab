// The transforms of the Winograd F(2x2, 3x3) convolution (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks", section 4.1) and their adjoints, for 3x3
// kernels with stride 1 and zero padding 1:
//
//       | 1  0 -1  0 |        | 1    0    0  |
//   Bᵀ= | 0  1  1  0 |    G = | 1/2  1/2  1/2|    Aᵀ = | 1  1  1  0 |
//       | 0 -1  1  0 |        | 1/2 -1/2  1/2|         | 0  1 -1 -1 |
//       | 0  1  0 -1 |        | 0    0    1  |
//
// Tile (ty, tx) of a plane reads the 4x4 window of the zero-padded input whose top-left
// corner is input position (2ty − 1, 2tx − 1) and produces outputs (2ty + i, 2tx + j),
// i, j ∈ {0, 1}, cropped at odd edges; a plane has ceil(H/2)·ceil(W/2) tiles.
//
// Domain layout (V, M and their gradients): 16 matrices, one per ξ = 4a + b (a the row,
// b the column of the 4x4 tile), each (C, T) row-major with T = images · tiles and column
// n·tiles + ty·tilesW + tx — so the 16 products of the convolution are plain GEMMs — the
// matrix of ξ at ξ·ldxi (ldxi ≥ C·T; a little more than C·T keeps the 16 streams of a
// transform out of each other's cache sets).
//
// Every function works row of tiles by row of tiles: the vertical combination runs on whole
// rows (even and odd columns apart), the horizontal one across the tiles of the row, both as
// contiguous loops the compiler vectorizes. Each output is computed in a fixed order on the
// calling thread (deterministic); the scratch is per thread and reused.

#include "NormKernelsC.h"
#include <stdlib.h>
#include <string.h>

// Only additions, subtractions and exact halvings: no contraction into fused multiply-adds,
// so the values do not depend on the instruction set.
#pragma STDC FP_CONTRACT OFF

// The domain transforms use 256-bit vectors on x86-64: the Swift kernel targets already
// assume a Haswell-class CPU (Package.swift).
#if defined(__x86_64__)
#define NK_WINO_TARGET __attribute__((target("avx2")))
#else
#define NK_WINO_TARGET
#endif

typedef struct { float *data; size_t capacity; } wino_scratch_t;
static _Thread_local wino_scratch_t wino_rows = {NULL, 0};

static float *wino_reserve(size_t floats) {
    if (floats > wino_rows.capacity) {
        free(wino_rows.data);
        wino_rows.data = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
        wino_rows.capacity = wino_rows.data ? floats : 0;
    }
    return wino_rows.data;
}

// U in (cout·cin, 16) order first (contiguous), then transposed into the 16 matrices: 16
// strided streams a whole weight apart would fall into the same cache sets.
void nk_wino_filter(const float *w, long cout, long cin, float *u) {
    long plane = cout * cin;
    float *tile = wino_reserve((size_t)16 * plane);
    for (long k = 0; k < plane; k++) {
        const float *g = w + k * 9;
        double r[4][3];
        for (long j = 0; j < 3; j++) {   // G·g
            double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
            r[0][j] = g0;
            r[1][j] = 0.5 * (g0 + g1 + g2);
            r[2][j] = 0.5 * (g0 - g1 + g2);
            r[3][j] = g2;
        }
        float *dst = tile + k * 16;
        for (long a = 0; a < 4; a++) {   // (·)·Gᵀ
            double c0 = r[a][0], c1 = r[a][1], c2 = r[a][2];
            dst[4 * a + 0] = (float)c0;
            dst[4 * a + 1] = (float)(0.5 * (c0 + c1 + c2));
            dst[4 * a + 2] = (float)(0.5 * (c0 - c1 + c2));
            dst[4 * a + 3] = (float)c2;
        }
    }
    for (long xi = 0; xi < 16; xi++) {
        float *dst = u + xi * plane;
        for (long k = 0; k < plane; k++) dst[k] = tile[k * 16 + xi];
    }
}

void nk_wino_filter_adjoint(const float *du, long cout, long cin, float *dw) {
    long plane = cout * cin;
    float *tile = wino_reserve((size_t)16 * plane);
    for (long xi = 0; xi < 16; xi++) {
        const float *src = du + xi * plane;
        for (long k = 0; k < plane; k++) tile[k * 16 + xi] = src[k];
    }
    for (long k = 0; k < plane; k++) {
        const float *x = tile + k * 16;
        double r[4][3];   // X·G per tile row a
        for (long a = 0; a < 4; a++) {
            double x0 = x[4 * a + 0], x1 = x[4 * a + 1], x2 = x[4 * a + 2], x3 = x[4 * a + 3];
            r[a][0] = x0 + 0.5 * (x1 + x2);
            r[a][1] = 0.5 * (x1 - x2);
            r[a][2] = 0.5 * (x1 + x2) + x3;
        }
        float *g = dw + k * 9;
        for (long j = 0; j < 3; j++) {   // Gᵀ·(·)
            double x0 = r[0][j], x1 = r[1][j], x2 = r[2][j], x3 = r[3][j];
            g[j] = (float)(x0 + 0.5 * (x1 + x2));
            g[3 + j] = (float)(0.5 * (x1 - x2));
            g[6 + j] = (float)(0.5 * (x1 + x2) + x3);
        }
    }
}

// Eight tiles at a time. Loads and stores are unaligned; a row of tiles is processed in
// whole vectors, so the last vector of a row reads past its tiles (into the next row, the
// next plane, or the ξ matrix's padding) and — for the domain outputs — writes past them.
// Those extra lanes are junk: they never reach an output (stores of a later row or plane,
// written afterwards, overwrite them; the last plane's go into the padding after the matrix,
// which needs ≥ 7 floats).
typedef float f8 __attribute__((ext_vector_type(8)));
typedef int i8 __attribute__((ext_vector_type(8)));

NK_WINO_TARGET static inline __attribute__((always_inline)) f8 ld8(const float *p) { f8 v; memcpy(&v, p, sizeof v); return v; }
NK_WINO_TARGET static inline __attribute__((always_inline)) void st8(float *p, f8 v) { memcpy(p, &v, sizeof v); }
static inline long round8(long x) { return (x + 7) & ~7L; }

// A row copy of a few dozen floats: inline vectors and one masked tail (a libc memcpy call
// costs more than the copy at these lengths).
#if defined(__x86_64__)
#include <immintrin.h>
NK_WINO_TARGET static inline __attribute__((always_inline)) void copy_row(float *dst, const float *src, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    if (i < n) {
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(dst + i, mask, _mm256_maskload_ps(src + i, mask));
    }
}
#else
static inline void copy_row(float *dst, const float *src, long n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
#endif

NK_WINO_TARGET void nk_wino_input(const float *x, long images, long channels, long h, long w, float *v, long ldxi) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    // The zero-padded plane split by row and column parity: q[2·rp + cp][r'·S + c'] is the
    // padded input at (2r' + rp, 2c' + cp), so window element (k, j) of tile (ty, tx) is
    // q[2·(k%2) + j%2][(ty + k/2)·S + tx + j/2] — linear in tx.
    long S = round8(tw) + 8, rows = th + 1, qsize = rows * S, len = 2 * S;
    float *q = wino_reserve((size_t)4 * qsize + len);
    memset(q, 0, (size_t)(4 * qsize + len) * sizeof(float));   // padding rows and columns, junk lanes
    float *padded = q + 4 * qsize;   // one padded row: 0, row[0 ..< w], zeros
    for (long c = 0; c < channels; c++) {
        for (long n = 0; n < images; n++) {   // channel-major: a plane's overhanging stores land on later planes
            const float *plane = x + (n * channels + c) * h * w;
            for (long r = 0; r < h; r++) {   // padded row r + 1 (rows 0 and past h stay zero)
                long pr = r + 1, rp = pr & 1, rr = pr >> 1;
                float *e = q + (2 * rp) * qsize + rr * S, *o = q + (2 * rp + 1) * qsize + rr * S;
                copy_row(padded + 1, plane + r * w, w);
                for (long t0 = 0; t0 <= tw; t0 += 8) {
                    f8 lo = ld8(padded + 2 * t0), hi = ld8(padded + 2 * t0 + 8);
                    st8(e + t0, __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14));
                    st8(o + t0, __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15));
                }
            }
            float *out = v + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                for (long t0 = 0; t0 < tw; t0 += 8) {
                    f8 d[4][4];
                    for (int k = 0; k < 4; k++)
                        for (int j = 0; j < 4; j++)
                            d[k][j] = ld8(q + (2 * (k & 1) + (j & 1)) * qsize + (ty + (k >> 1)) * S + t0 + (j >> 1));
                    float *o = out + ty * tw + t0;
                    for (int j = 0; j < 4; j++) {   // Bᵀ·d: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3
                        f8 d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j];
                        d[0][j] = d0 - d2; d[1][j] = d1 + d2; d[2][j] = d2 - d1; d[3][j] = d1 - d3;
                    }
                    for (int a = 0; a < 4; a++) {   // (·)·B: the same across the columns
                        f8 c0 = d[a][0], c1 = d[a][1], c2 = d[a][2], c3 = d[a][3];
                        st8(o + (4 * a + 0) * ldxi, c0 - c2);
                        st8(o + (4 * a + 1) * ldxi, c1 + c2);
                        st8(o + (4 * a + 2) * ldxi, c2 - c1);
                        st8(o + (4 * a + 3) * ldxi, c1 - c3);
                    }
                }
            }
        }
    }
}

NK_WINO_TARGET void nk_wino_output(const float *m, long ldxi, long images, long channels, long h, long w, const float *bias, float *y) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles, len = 2 * round8(tw);
    float *buf = wino_reserve((size_t)2 * len);
    float *rows[2] = {buf, buf + len};
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            float *plane = y + (n * channels + c) * h * w;
            float b = bias ? bias[c] : 0.0f;
            const float *src = m + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                for (long t0 = 0; t0 < tw; t0 += 8) {
                    const float *p = src + ty * tw + t0;
                    f8 s[2][4];
                    for (int k = 0; k < 4; k++) {   // Aᵀ·M: rows m0 + m1 + m2, m1 − m2 − m3
                        f8 m0 = ld8(p + k * ldxi), m1 = ld8(p + (4 + k) * ldxi), m2 = ld8(p + (8 + k) * ldxi), m3 = ld8(p + (12 + k) * ldxi);
                        s[0][k] = m0 + m1 + m2;
                        s[1][k] = m1 - m2 - m3;
                    }
                    for (int i = 0; i < 2; i++) {   // (·)·A, interleaved into the output row
                        f8 e = s[i][0] + s[i][1] + s[i][2] + b, o = s[i][1] - s[i][2] - s[i][3] + b;
                        st8(rows[i] + 2 * t0, __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11));
                        st8(rows[i] + 2 * t0 + 8, __builtin_shufflevector(e, o, 4, 12, 5, 13, 6, 14, 7, 15));
                    }
                }
                for (int i = 0; i < 2 && 2 * ty + i < h; i++) copy_row(plane + (2 * ty + i) * w, rows[i], w);
            }
        }
    }
}

NK_WINO_TARGET void nk_wino_output_adjoint(const float *dy, long images, long channels, long h, long w, float *yhat, long ldxi) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles, len = 2 * round8(tw);
    float *buf = wino_reserve((size_t)2 * len);
    float *rows[2] = {buf, buf + len};
    memset(buf, 0, (size_t)2 * len * sizeof(float));   // the tails beyond w stay zero
    for (long c = 0; c < channels; c++) {
        for (long n = 0; n < images; n++) {   // channel-major: a plane's overhanging stores land on later planes
            const float *plane = dy + (n * channels + c) * h * w;
            float *out = yhat + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                copy_row(rows[0], plane + 2 * ty * w, w);
                if (2 * ty + 1 < h) copy_row(rows[1], plane + (2 * ty + 1) * w, w);
                else memset(rows[1], 0, (size_t)w * sizeof(float));
                for (long t0 = 0; t0 < tw; t0 += 8) {
                    f8 e[2], o[2];
                    for (int i = 0; i < 2; i++) {
                        f8 lo = ld8(rows[i] + 2 * t0), hi = ld8(rows[i] + 2 * t0 + 8);
                        e[i] = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
                        o[i] = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
                    }
                    // A·g·Aᵀ: rows (g0, g0 + g1, g0 − g1, −g1), then the same across the columns.
                    f8 re[4] = {e[0], e[0] + e[1], e[0] - e[1], -e[1]};
                    f8 ro[4] = {o[0], o[0] + o[1], o[0] - o[1], -o[1]};
                    float *p = out + ty * tw + t0;
                    for (int a = 0; a < 4; a++) {
                        st8(p + (4 * a + 0) * ldxi, re[a]);
                        st8(p + (4 * a + 1) * ldxi, re[a] + ro[a]);
                        st8(p + (4 * a + 2) * ldxi, re[a] - ro[a]);
                        st8(p + (4 * a + 3) * ldxi, -ro[a]);
                    }
                }
            }
        }
    }
}

NK_WINO_TARGET void nk_wino_input_adjoint(const float *dv, long ldxi, long images, long channels, long h, long w, float *dx) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    long pw = 2 * round8(tw) + 8, ph = 2 * th + 2;
    // The windows' left halves (padded columns 2t, 2t + 1) and right halves (2t + 2, 2t + 3)
    // are summed in two padded planes, so no store overlaps another one's partial vector.
    float *pad = wino_reserve((size_t)2 * ph * pw), *padRight = pad + ph * pw;
    const i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            const float *src = dv + c * T + n * tiles;
            memset(pad, 0, (size_t)2 * ph * pw * sizeof(float));
            for (long ty = 0; ty < th; ty++) {
                for (long t0 = 0; t0 < tw; t0 += 8) {
                    // Lanes past the row's last tile read other tiles: zeroed, they add nothing.
                    i8 keep = lane < (int)(tw - t0);
                    const float *p = src + ty * tw + t0;
                    f8 r[4][4];
                    for (int b = 0; b < 4; b++) {   // B·X: rows X0, X1 − X2 + X3, X1 + X2 − X0, −X3
                        f8 x0 = (f8)((i8)ld8(p + b * ldxi) & keep), x1 = (f8)((i8)ld8(p + (4 + b) * ldxi) & keep);
                        f8 x2 = (f8)((i8)ld8(p + (8 + b) * ldxi) & keep), x3 = (f8)((i8)ld8(p + (12 + b) * ldxi) & keep);
                        r[0][b] = x0; r[1][b] = x1 - x2 + x3; r[2][b] = x1 + x2 - x0; r[3][b] = -x3;
                    }
                    for (int a = 0; a < 4; a++) {   // (·)·Bᵀ across, added to padded row 2ty + a
                        f8 h0 = r[a][0], h1 = r[a][1] - r[a][2] + r[a][3], h2 = r[a][1] + r[a][2] - r[a][0], h3 = -r[a][3];
                        float *left = pad + (2 * ty + a) * pw + 2 * t0, *right = padRight + (2 * ty + a) * pw + 2 * t0 + 2;
                        st8(left, ld8(left) + __builtin_shufflevector(h0, h1, 0, 8, 1, 9, 2, 10, 3, 11));
                        st8(left + 8, ld8(left + 8) + __builtin_shufflevector(h0, h1, 4, 12, 5, 13, 6, 14, 7, 15));
                        st8(right, ld8(right) + __builtin_shufflevector(h2, h3, 0, 8, 1, 9, 2, 10, 3, 11));
                        st8(right + 8, ld8(right + 8) + __builtin_shufflevector(h2, h3, 4, 12, 5, 13, 6, 14, 7, 15));
                    }
                }
            }
            float *plane = dx + (n * channels + c) * h * w;
            for (long r = 0; r < h; r++) {
                const float *left = pad + (r + 1) * pw + 1, *right = padRight + (r + 1) * pw + 1;
                float *dst = plane + r * w;
                for (long i = 0; i < w; i++) dst[i] = left[i] + right[i];
            }
        }
    }
}
