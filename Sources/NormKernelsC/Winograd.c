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
// n·tiles + ty·tilesW + tx — so the 16 products of the convolution are plain GEMMs.
//
// Every function works row of tiles by row of tiles: the vertical combination runs on whole
// rows (even and odd columns apart), the horizontal one across the tiles of the row, both as
// contiguous loops the compiler vectorizes. Each output is computed in a fixed order on the
// calling thread (deterministic); the scratch is per thread and reused.

#include "NormKernelsC.h"
#include <stdlib.h>
#include <string.h>

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

// Input row `row` (NULL: a padding row) split into the padded row's even and odd columns:
// e[t] = padded[2t] = row[2t − 1], o[t] = padded[2t + 1] = row[2t], t ∈ [0, tw], 0 outside.
static void split_padded_row(const float *row, long w, long tw, float *restrict e, float *restrict o) {
    if (!row) {
        memset(e, 0, (size_t)(tw + 1) * sizeof(float));
        memset(o, 0, (size_t)(tw + 1) * sizeof(float));
        return;
    }
    long evenValid = w / 2;              // e[t] valid for 1 ≤ t ≤ w/2
    e[0] = 0;
    for (long t = 1; t <= evenValid; t++) e[t] = row[2 * t - 1];
    for (long t = evenValid + 1; t <= tw; t++) e[t] = 0;
    long oddValid = (w + 1) / 2;         // o[t] valid for t < ceil(w/2)
    for (long t = 0; t < oddValid; t++) o[t] = row[2 * t];
    for (long t = oddValid; t <= tw; t++) o[t] = 0;
}

void nk_wino_filter(const float *w, long cout, long cin, float *u) {
    long plane = cout * cin;
    for (long o = 0; o < cout; o++) {
        for (long i = 0; i < cin; i++) {
            const float *g = w + (o * cin + i) * 9;
            double r[4][3];
            for (long j = 0; j < 3; j++) {
                double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                r[0][j] = g0;
                r[1][j] = 0.5 * (g0 + g1 + g2);
                r[2][j] = 0.5 * (g0 - g1 + g2);
                r[3][j] = g2;
            }
            float *dst = u + o * cin + i;
            for (long a = 0; a < 4; a++) {
                double c0 = r[a][0], c1 = r[a][1], c2 = r[a][2];
                dst[(4 * a + 0) * plane] = (float)c0;
                dst[(4 * a + 1) * plane] = (float)(0.5 * (c0 + c1 + c2));
                dst[(4 * a + 2) * plane] = (float)(0.5 * (c0 - c1 + c2));
                dst[(4 * a + 3) * plane] = (float)c2;
            }
        }
    }
}

void nk_wino_filter_adjoint(const float *du, long cout, long cin, float *dw) {
    long plane = cout * cin;
    for (long o = 0; o < cout; o++) {
        for (long i = 0; i < cin; i++) {
            const float *src = du + o * cin + i;
            double r[4][3];   // (X G) per tile row a: columns j of Xᵀ·G... i.e. X·G
            for (long a = 0; a < 4; a++) {
                double x0 = src[(4 * a + 0) * plane], x1 = src[(4 * a + 1) * plane];
                double x2 = src[(4 * a + 2) * plane], x3 = src[(4 * a + 3) * plane];
                r[a][0] = x0 + 0.5 * (x1 + x2);
                r[a][1] = 0.5 * (x1 - x2);
                r[a][2] = 0.5 * (x1 + x2) + x3;
            }
            float *g = dw + (o * cin + i) * 9;
            for (long j = 0; j < 3; j++) {
                double x0 = r[0][j], x1 = r[1][j], x2 = r[2][j], x3 = r[3][j];
                g[j] = (float)(x0 + 0.5 * (x1 + x2));
                g[3 + j] = (float)(0.5 * (x1 - x2));
                g[6 + j] = (float)(0.5 * (x1 + x2) + x3);
            }
        }
    }
}

void nk_wino_input(const float *x, long images, long channels, long h, long w, float *v) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    long stride = tw + 1;
    float *buf = wino_reserve((size_t)16 * stride);
    float *pe[4], *po[4], *qe[4], *qo[4];
    for (int k = 0; k < 4; k++) {
        pe[k] = buf + (2 * k) * stride; po[k] = buf + (2 * k + 1) * stride;
        qe[k] = buf + (8 + 2 * k) * stride; qo[k] = buf + (9 + 2 * k) * stride;
    }
    long xi = channels * T;
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            const float *plane = x + (n * channels + c) * h * w;
            float *out = v + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                for (int k = 0; k < 4; k++) {
                    long r = 2 * ty - 1 + k;
                    split_padded_row(r >= 0 && r < h ? plane + r * w : NULL, w, tw, pe[k], po[k]);
                }
                // Bᵀ·d on whole rows: q0 = d0 − d2, q1 = d1 + d2, q2 = d2 − d1, q3 = d1 − d3.
                for (long t = 0; t <= tw; t++) {
                    qe[0][t] = pe[0][t] - pe[2][t]; qo[0][t] = po[0][t] - po[2][t];
                    qe[1][t] = pe[1][t] + pe[2][t]; qo[1][t] = po[1][t] + po[2][t];
                    qe[2][t] = pe[2][t] - pe[1][t]; qo[2][t] = po[2][t] - po[1][t];
                    qe[3][t] = pe[1][t] - pe[3][t]; qo[3][t] = po[1][t] - po[3][t];
                }
                // (·)·B across the tiles: columns (e[t], o[t], e[t+1], o[t+1]).
                float *row = out + ty * tw;
                for (int a = 0; a < 4; a++) {
                    const float *e = qe[a], *o = qo[a];
                    float *v0 = row + (4 * a) * xi, *v1 = v0 + xi, *v2 = v1 + xi, *v3 = v2 + xi;
                    for (long t = 0; t < tw; t++) {
                        v0[t] = e[t] - e[t + 1];
                        v1[t] = o[t] + e[t + 1];
                        v2[t] = e[t + 1] - o[t];
                        v3[t] = o[t] - o[t + 1];
                    }
                }
            }
        }
    }
}

void nk_wino_output(const float *m, long images, long channels, long h, long w, const float *bias, float *y) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    float *buf = wino_reserve((size_t)4 * tw);
    float *ye[2] = {buf, buf + tw}, *yo[2] = {buf + 2 * tw, buf + 3 * tw};
    long xi = channels * T, full = w / 2;
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            float *plane = y + (n * channels + c) * h * w;
            float b = bias ? bias[c] : 0.0f;
            const float *src = m + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                const float *p = src + ty * tw;
                for (long t = 0; t < tw; t++) {
                    float s0[4], s1[4];
                    for (int k = 0; k < 4; k++) {
                        float m0 = p[k * xi + t], m1 = p[(4 + k) * xi + t], m2 = p[(8 + k) * xi + t], m3 = p[(12 + k) * xi + t];
                        s0[k] = m0 + m1 + m2;
                        s1[k] = m1 - m2 - m3;
                    }
                    ye[0][t] = s0[0] + s0[1] + s0[2]; yo[0][t] = s0[1] - s0[2] - s0[3];
                    ye[1][t] = s1[0] + s1[1] + s1[2]; yo[1][t] = s1[1] - s1[2] - s1[3];
                }
                for (int i = 0; i < 2; i++) {
                    long r = 2 * ty + i;
                    if (r >= h) break;
                    float *dst = plane + r * w;
                    for (long t = 0; t < full; t++) {
                        dst[2 * t] = ye[i][t] + b;
                        dst[2 * t + 1] = yo[i][t] + b;
                    }
                    if (w & 1) dst[w - 1] = ye[i][tw - 1] + b;
                }
            }
        }
    }
}

void nk_wino_output_adjoint(const float *dy, long images, long channels, long h, long w, float *yhat) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    float *buf = wino_reserve((size_t)4 * tw);
    float *ge[2] = {buf, buf + tw}, *go[2] = {buf + 2 * tw, buf + 3 * tw};
    long xi = channels * T, full = w / 2;
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            const float *plane = dy + (n * channels + c) * h * w;
            float *out = yhat + c * T + n * tiles;
            for (long ty = 0; ty < th; ty++) {
                for (int i = 0; i < 2; i++) {
                    long r = 2 * ty + i;
                    if (r >= h) {
                        memset(ge[i], 0, (size_t)tw * sizeof(float));
                        memset(go[i], 0, (size_t)tw * sizeof(float));
                        continue;
                    }
                    const float *src = plane + r * w;
                    for (long t = 0; t < full; t++) { ge[i][t] = src[2 * t]; go[i][t] = src[2 * t + 1]; }
                    if (w & 1) { ge[i][tw - 1] = src[w - 1]; go[i][tw - 1] = 0; }
                }
                // A·g·Aᵀ: rows (g0, g0 + g1, g0 − g1, −g1), then the same across the columns.
                float *row = out + ty * tw;
                for (long t = 0; t < tw; t++) {
                    float e0 = ge[0][t], e1 = ge[1][t], o0 = go[0][t], o1 = go[1][t];
                    float re[4] = {e0, e0 + e1, e0 - e1, -e1};
                    float ro[4] = {o0, o0 + o1, o0 - o1, -o1};
                    for (int a = 0; a < 4; a++) {
                        row[(4 * a + 0) * xi + t] = re[a];
                        row[(4 * a + 1) * xi + t] = re[a] + ro[a];
                        row[(4 * a + 2) * xi + t] = re[a] - ro[a];
                        row[(4 * a + 3) * xi + t] = -ro[a];
                    }
                }
            }
        }
    }
}

void nk_wino_input_adjoint(const float *dv, long images, long channels, long h, long w, float *dx) {
    long th = (h + 1) / 2, tw = (w + 1) / 2, tiles = th * tw, T = images * tiles;
    long pw = 2 * tw + 2, ph = 2 * th + 2;
    float *buf = wino_reserve((size_t)16 * tw + (size_t)ph * pw);
    float *hs = buf, *pad = buf + 16 * tw;   // hs[(4r + s)·tw + t]: tile row r, column s
    long xi = channels * T;
    for (long n = 0; n < images; n++) {
        for (long c = 0; c < channels; c++) {
            const float *src = dv + c * T + n * tiles;
            memset(pad, 0, (size_t)ph * pw * sizeof(float));
            for (long ty = 0; ty < th; ty++) {
                const float *p = src + ty * tw;
                // B·X·Bᵀ: rows (X0, X1 − X2 + X3, −X0 + X1 + X2, −X3), then the same across.
                for (long t = 0; t < tw; t++) {
                    float r[4][4];
                    for (int b = 0; b < 4; b++) {
                        float x0 = p[b * xi + t], x1 = p[(4 + b) * xi + t], x2 = p[(8 + b) * xi + t], x3 = p[(12 + b) * xi + t];
                        r[0][b] = x0;
                        r[1][b] = x1 - x2 + x3;
                        r[2][b] = x1 + x2 - x0;
                        r[3][b] = -x3;
                    }
                    for (int a = 0; a < 4; a++) {
                        hs[(4 * a + 0) * tw + t] = r[a][0];
                        hs[(4 * a + 1) * tw + t] = r[a][1] - r[a][2] + r[a][3];
                        hs[(4 * a + 2) * tw + t] = r[a][1] + r[a][2] - r[a][0];
                        hs[(4 * a + 3) * tw + t] = -r[a][3];
                    }
                }
                // Padded row 2ty + a gets columns 2t + s: the left halves of the windows
                // first, then the right halves (which overlap the next window's left half).
                for (int a = 0; a < 4; a++) {
                    float *prow = pad + (2 * ty + a) * pw;
                    const float *h0 = hs + (4 * a) * tw, *h1 = h0 + tw, *h2 = h1 + tw, *h3 = h2 + tw;
                    for (long t = 0; t < tw; t++) { prow[2 * t] += h0[t]; prow[2 * t + 1] += h1[t]; }
                    for (long t = 0; t < tw; t++) { prow[2 * t + 2] += h2[t]; prow[2 * t + 3] += h3[t]; }
                }
            }
            float *plane = dx + (n * channels + c) * h * w;
            for (long r = 0; r < h; r++) memcpy(plane + r * w, pad + (r + 1) * pw + 1, (size_t)w * sizeof(float));
        }
    }
}
