import Testing
import NormCore
import NormKernelsC
@testable import NormNet

/// The AVX-512 matrix products (`Sources/NormKernelsC/Sgemm512.c`) against a float64
/// reference, over shapes that hit every tile edge (rows not a multiple of 8, columns not a
/// multiple of 16 or 48, depths not a multiple of 16), both transposes, padded leading
/// dimensions and every `beta` form.
///
/// Tolerance: a float32 dot product of length k with fused multiply-adds has error at most
/// γ_k·Σ|aᵢbᵢ| with γ_k ≈ k·2⁻²⁴ (Higham, *Accuracy and Stability of Numerical Algorithms*,
/// §3.1); the test allows 2·k·2⁻²⁴·Σ|aᵢbᵢ| plus the rounding of the stored result.
@Suite struct NativeGemmTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        let m: Int, n: Int, k: Int
        var testDescription: String { "\(m)x\(n)x\(k)" }
    }

    static let shapes: [Shape] = [
        Shape(m: 1, n: 1, k: 1), Shape(m: 7, n: 15, k: 5), Shape(m: 8, n: 16, k: 16), Shape(m: 9, n: 17, k: 17),
        Shape(m: 16, n: 47, k: 144), Shape(m: 17, n: 48, k: 33), Shape(m: 32, n: 49, k: 288), Shape(m: 3, n: 97, k: 130),
        Shape(m: 64, n: 98, k: 576), Shape(m: 144, n: 100, k: 16),
    ]

    /// Row-major matrix with a leading dimension `ld ≥ cols`; padding holds NaN, which must never be read.
    struct Matrix {
        var rows: Int, cols: Int, ld: Int
        var values: [Float]
        init(rows: Int, cols: Int, pad: Int, rng: inout SeededGenerator) {
            self.rows = rows; self.cols = cols; ld = cols + pad
            values = [Float](repeating: .nan, count: rows * ld)
            for r in 0..<rows { for c in 0..<cols { values[r * ld + c] = Float.random(in: -1...1, using: &rng) } }
        }
        subscript(r: Int, c: Int) -> Float { values[r * ld + c] }
    }

    /// `beta·C + op(A)·op(B)` in float64, and the error bound of each element.
    func reference(_ a: Matrix, _ ta: Bool, _ b: Matrix, _ tb: Bool, _ c: Matrix, beta: Float, m: Int, n: Int, k: Int)
        -> (values: [Double], bounds: [Double]) {
        var values = [Double](), bounds = [Double]()
        for i in 0..<m {
            for j in 0..<n {
                var sum = beta == 0 ? 0 : Double(beta) * Double(c[i, j]), mag = abs(sum)
                for p in 0..<k {
                    let term = Double(ta ? a[p, i] : a[i, p]) * Double(tb ? b[j, p] : b[p, j])
                    sum += term
                    mag += abs(term)
                }
                values.append(sum)
                bounds.append(2 * Double(k + 1) * 0x1p-24 * mag + 0x1p-24 * abs(sum) + 1e-30)
            }
        }
        return (values, bounds)
    }

    func check(_ result: Matrix, against ref: (values: [Double], bounds: [Double]), m: Int, n: Int) {
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let e = abs(Double(result[i, j]) - ref.values[i * n + j]) / ref.bounds[i * n + j]
                worst = max(worst, e.isNaN ? .infinity : e)
            }
        }
        #expect(worst <= 1, "error / bound = \(worst)")
        for r in 0..<result.rows { for p in result.cols..<result.ld { #expect(result.values[r * result.ld + p].isNaN, "padding written") } }
    }

    @Test(arguments: shapes) func productWithEveryTransposeAndBeta(_ s: Shape) throws {
        guard Gemm.nativeKernelsAvailable else {
            #expect(!Gemm.usesNativeKernels)   // without AVX-512 every product goes to OpenBLAS
            return
        }
        var rng = SeededGenerator(seed: UInt64(s.m * 10_007 + s.n * 101 + s.k))
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            for beta: Float in [0, 1, 0.5] {
                let a = ta ? Matrix(rows: s.k, cols: s.m, pad: 3, rng: &rng) : Matrix(rows: s.m, cols: s.k, pad: 3, rng: &rng)
                let b = tb ? Matrix(rows: s.n, cols: s.k, pad: 5, rng: &rng) : Matrix(rows: s.k, cols: s.n, pad: 5, rng: &rng)
                var c = Matrix(rows: s.m, cols: s.n, pad: 2, rng: &rng)
                let ref = reference(a, ta, b, tb, c, beta: beta, m: s.m, n: s.n, k: s.k)
                c.values.withUnsafeMutableBufferPointer { cp in
                    a.values.withUnsafeBufferPointer { ap in b.values.withUnsafeBufferPointer { bp in
                        nk_sgemm(ta ? 1 : 0, tb ? 1 : 0, s.m, s.n, s.k, ap.baseAddress!, a.ld, bp.baseAddress!, b.ld,
                                 beta, cp.baseAddress!, c.ld)
                    }}
                }
                check(c, against: ref, m: s.m, n: s.n)
            }
        }
    }

    @Test(arguments: shapes) func productWithTransposedB(_ s: Shape) throws {
        guard Gemm.nativeKernelsAvailable else { return #expect(!Gemm.usesNativeKernels) }
        var rng = SeededGenerator(seed: UInt64(s.m * 7 + s.n * 13 + s.k * 17))
        for beta: Float in [0, 1, -2] {
            let a = Matrix(rows: s.m, cols: s.k, pad: 1, rng: &rng), b = Matrix(rows: s.n, cols: s.k, pad: 4, rng: &rng)
            var c = Matrix(rows: s.m, cols: s.n, pad: 3, rng: &rng)
            let ref = reference(a, false, b, true, c, beta: beta, m: s.m, n: s.n, k: s.k)
            c.values.withUnsafeMutableBufferPointer { cp in
                a.values.withUnsafeBufferPointer { ap in b.values.withUnsafeBufferPointer { bp in
                    nk_sgemm_abt(s.m, s.n, s.k, ap.baseAddress!, a.ld, bp.baseAddress!, b.ld, beta, cp.baseAddress!, c.ld)
                }}
            }
            check(c, against: ref, m: s.m, n: s.n)
        }
    }

    /// A product split into column blocks gives the same bits as the whole product (each
    /// output's sum is independent of which columns are computed with it), so the engine's
    /// blocking never changes results.
    @Test func columnBlocksAreBitIdenticalToTheWholeProduct() throws {
        guard Gemm.nativeKernelsAvailable else { return #expect(!Gemm.usesNativeKernels) }
        var rng = SeededGenerator(seed: 5)
        let m = 24, n = 200, k = 77
        let a = Matrix(rows: m, cols: k, pad: 0, rng: &rng), b = Matrix(rows: k, cols: n, pad: 0, rng: &rng)
        var whole = [Float](repeating: 0, count: m * n), pieces = whole
        a.values.withUnsafeBufferPointer { ap in b.values.withUnsafeBufferPointer { bp in
            nk_sgemm(0, 0, m, n, k, ap.baseAddress!, k, bp.baseAddress!, n, 0, &whole, n)
            pieces.withUnsafeMutableBufferPointer { cp in
                for (lo, hi) in [(0, 13), (13, 77), (77, 200)] {
                    nk_sgemm(0, 0, m, hi - lo, k, ap.baseAddress!, k, bp.baseAddress! + lo, n, 0, cp.baseAddress! + lo, n)
                }
            }
        }}
        #expect(whole == pieces)
    }

    /// The engine's entry point (`Gemm.multiply`, blocked and threaded) routes `A·B` and
    /// `A·Bᵀ` to kernels that agree with the float64 reference, at a depth on each side of
    /// the `A·Bᵀ` switch-over to OpenBLAS.
    @Test(arguments: [100, 200]) func engineProductsMatchTheReference(_ k: Int) throws {
        var rng = SeededGenerator(seed: 9)
        let m = 40, n = 300
        let a = Matrix(rows: m, cols: k, pad: 0, rng: &rng), b = Matrix(rows: k, cols: n, pad: 0, rng: &rng)
        let bt = Matrix(rows: n, cols: k, pad: 0, rng: &rng)
        var nn = Matrix(rows: m, cols: n, pad: 0, rng: &rng), nt = nn
        Gemm.multiply(m: m, n: n, k: k, a: a.values, b: b.values, c: &nn.values)
        Gemm.multiply(transB: true, m: m, n: n, k: k, a: a.values, b: bt.values, c: &nt.values)
        check(nn, against: reference(a, false, b, false, nn, beta: 0, m: m, n: n, k: k), m: m, n: n)
        check(nt, against: reference(a, false, bt, true, nt, beta: 0, m: m, n: n, k: k), m: m, n: n)
    }
}
