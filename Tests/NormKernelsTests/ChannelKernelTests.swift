import Foundation
import Testing
import NormKernels
import NormTestSupport

/// ``ChannelKernels`` (BatchNorm on `(N, C)`: column reductions and the elementwise passes) and
/// ``ChannelMath``, against float64 formulas and against the documented order of additions.
///
/// Shapes: several 64-row blocks with a partial last one (tiles across threads), a single block
/// cut into column slabs, column counts that are not a multiple of 16 (scalar tails), fewer
/// than 16 columns, one row — all but the smallest above `Parallel.serialThreshold`, so 2 threads split them.
@Suite("Channel kernels", .serialized)
struct ChannelKernelTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        let rows: Int, cols: Int
        var testDescription: String { "\(rows) × \(cols)" }
    }

    static let shapes: [Shape] = [
        Shape(rows: 256, cols: 1024),   // the bench's (256, 1024): 4 row blocks
        Shape(rows: 40, cols: 1000),    // one block, columns cut into slabs, 8-column tail
        Shape(rows: 700, cols: 50),     // 11 blocks (the last partial), 2-column tail
        Shape(rows: 3000, cols: 12),    // no full 16-column chunk
        Shape(rows: 1, cols: 40_000),   // a single row
        Shape(rows: 5, cols: 80),       // 5 chunks in slabs of 2 (the last one short); serial
    ]

    /// The documented order: per column, float32 sums over each block of 64 rows in row order,
    /// the block sums added in float64 in block order.
    private func blockedSums(rows: Int, cols: Int, _ term: (Int, Int) -> (Float, Float)) -> ([Double], [Double]) {
        var sumA = [Double](repeating: 0, count: cols), sumAB = sumA
        for c in 0..<cols {
            var n0 = 0
            while n0 < rows {
                var a: Float = 0, ab: Float = 0
                for n in n0..<min(n0 + 64, rows) { let (p, q) = term(n, c); a += p; ab += p * q }
                sumA[c] += Double(a); sumAB[c] += Double(ab)
                n0 += 64
            }
        }
        return (sumA, sumAB)
    }

    @Test("shiftedSums and gradientSums: the documented order exactly, float64 within float32 block error, 1 and 2 threads bit-identical",
          arguments: shapes)
    func columnReductions(_ shape: Shape) {
        let rows = shape.rows, cols = shape.cols
        var rng = TestRNG(seed: UInt64(rows * 31 + cols))
        let x = rng.floats(rows * cols, mean: 3, std: 2), g = rng.floats(rows * cols)
        let pilot = Array(x[0..<cols])
        let mu = rng.floats(cols, mean: 3, std: 0.1)

        func run(_ threads: Int) -> [[Double]] {
            withThreads(threads) {
                var s1 = [Double](repeating: .nan, count: cols), s2 = s1, sg = s1, sgx = s1
                ChannelKernels.shiftedSums(x: x, rows: rows, cols: cols, pilot: pilot, s1: &s1, s2: &s2)
                ChannelKernels.gradientSums(x: x, g: g, rows: rows, cols: cols, mu: mu, sumG: &sg, sumGX: &sgx)
                return [s1, s2, sg, sgx]
            }
        }
        let one = run(1), two = run(2)
        #expect(one == two, "1 and 2 threads differ")

        let shifted = blockedSums(rows: rows, cols: cols) { n, c in let u = x[n * cols + c] - pilot[c]; return (u, u) }
        let grad = blockedSums(rows: rows, cols: cols) { n, c in (g[n * cols + c], x[n * cols + c] - mu[c]) }
        #expect(one[0] == shifted.0 && one[1] == shifted.1, "shiftedSums departs from the documented order")
        #expect(one[2] == grad.0 && one[3] == grad.1, "gradientSums departs from the documented order")

        // float64 truth; each float32 block adds at most 64 terms, so its error is below
        // 64 · 2^-24 ≈ 4e-6 of the sum of the terms' magnitudes: checked at 1e-5 of that.
        for c in 0..<cols {
            var a = 0.0, ab = 0.0, absA = 0.0, absAB = 0.0, ga = 0.0, gab = 0.0, absG = 0.0, absGX = 0.0
            for n in 0..<rows {
                let u = Double(x[n * cols + c]) - Double(pilot[c])
                a += u; ab += u * u; absA += abs(u); absAB += u * u
                let gv = Double(g[n * cols + c]), xv = Double(x[n * cols + c]) - Double(mu[c])
                ga += gv; gab += gv * xv; absG += abs(gv); absGX += abs(gv * xv)
            }
            #expect(abs(one[0][c] - a) <= 1e-5 * max(absA, 1e-30))
            #expect(abs(one[1][c] - ab) <= 1e-5 * max(absAB, 1e-30))
            #expect(abs(one[2][c] - ga) <= 1e-5 * max(absG, 1e-30))
            #expect(abs(one[3][c] - gab) <= 1e-5 * max(absGX, 1e-30))
        }
    }

    @Test("affine and linearCombination match float64; 1 and 2 threads bit-identical", arguments: shapes)
    func elementwise(_ shape: Shape) {
        let rows = shape.rows, cols = shape.cols, n = rows * cols
        var rng = TestRNG(seed: UInt64(rows + 7 * cols))
        let x = rng.floats(n, mean: 1, std: 2), g = rng.floats(n)
        let mu = rng.floats(cols, mean: 1), scale = rng.floats(cols), shift = rng.floats(cols)
        let a = rng.floats(cols), b = rng.floats(cols), cc = rng.floats(cols)

        func run(_ threads: Int) -> ([Float], [Float]) {
            withThreads(threads) {
                var y = [Float](repeating: .nan, count: n), gx = y
                ChannelKernels.affine(x: x, y: &y, rows: rows, cols: cols, mu: mu, scale: scale, shift: shift)
                ChannelKernels.linearCombination(x: x, g: g, out: &gx, rows: rows, cols: cols, mu: mu, a: a, b: b, cc: cc)
                return (y, gx)
            }
        }
        let one = run(1), two = run(2)
        #expect(one.0 == two.0 && one.1 == two.1, "1 and 2 threads differ")
        var wantY = [Double](repeating: 0, count: n), wantGX = wantY
        for i in 0..<n {
            let c = i % cols, d = Double(x[i]) - Double(mu[c])
            wantY[i] = d * Double(scale[c]) + Double(shift[c])
            wantGX[i] = Double(a[c]) * Double(g[i]) + Double(b[c]) * d + Double(cc[c])
        }
        // A few float32 roundings of terms of order 10: well inside 1e-5 relative to max(1, |y|).
        #expect(relError(one.0, wantY) < 1e-5)
        #expect(relError(one.1, wantGX) < 1e-5)
    }

    @Test("ChannelMath.inverseStandardDeviation equals the scalar 1/√(v + eps) bit for bit, partial steps included",
          arguments: [0, 1, 3, 4, 5, 8, 9, 1023])
    func inverseStandardDeviation(_ count: Int) {
        var rng = TestRNG(seed: UInt64(count) + 5)
        let v = (0..<count).map { _ in rng.uniform() * 3 }, vf = v.map(Float.init)
        var out = [Double](repeating: .nan, count: count + 1), outF = out
        ChannelMath.inverseStandardDeviation(v, eps: 1e-5, count: count, into: &out)
        ChannelMath.inverseStandardDeviation(vf, eps: 1e-5, count: count, into: &outF)
        #expect(Array(out[0..<count]) == v.map { 1 / ($0 + 1e-5).squareRoot() })
        #expect(Array(outF[0..<count]) == vf.map { 1 / (Double($0) + 1e-5).squareRoot() })
        #expect(out[count].isNaN && outF[count].isNaN, "wrote past count")
    }
}
