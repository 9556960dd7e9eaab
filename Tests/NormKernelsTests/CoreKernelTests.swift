import Foundation
import Testing
import NormKernels
import NormTestSupport


/// The float64 two-pass mean and sum of squared deviations of float32 values.
private func twoPass(_ v: [Float]) -> (mean: Double, m2: Double) {
    let d = v.map(Double.init)
    let mean = d.reduce(0, +) / Double(d.count)
    return (mean, d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) })
}

/// Reductions and elementwise kernels against float64.
///
/// Tolerances: the kernels accumulate float32 SIMD lanes over blocks of ≤ 2048 values (≤ 128
/// per lane) and add block sums in float64, so relative errors stay below ~1e-5 of the
/// quantity's natural scale (n·std² for M2, std for the mean); the elementwise kernels do 2–3
/// float32 operations per value (a few ulps, ~1e-6 relative to O(1) values).
@Suite("NormCore kernels")
struct CoreKernelTests {
    @Test("Reductions.moments: mean and M2 over strided segments, any length, large offsets",
          arguments: [(1, 1, 0.0), (1, 15, 0.0), (1, 16, 3.0), (1, 33, -2.0), (3, 7, 0.5), (4, 5000, 0.0),
                      (2, 4100, 1e4), (5, 64, 1e4), (1, 2048, -1e3)])
    func moments(segments: Int, length: Int, offset: Double) {
        var rng = TestRNG(seed: UInt64(segments * 100_000 + length))
        let stride = length + 3   // gaps between the runs must be skipped
        let all = rng.floats(segments * stride, mean: offset, std: 1.5)
        var picked: [Float] = []
        for s in 0..<segments { picked += all[(s * stride)..<(s * stride + length)] }
        let (mean, m2) = all.withUnsafeBufferPointer {
            Reductions.moments($0.baseAddress!, segments: segments, stride: stride, length: length)
        }
        let ref = twoPass(picked)
        let n = Double(picked.count)
        #expect(abs(mean - ref.mean) <= 1e-5 * 1.5 + 1e-12 * abs(ref.mean), "mean \(mean) vs \(ref.mean)")
        #expect(abs(m2 - ref.m2) <= 1e-5 * max(ref.m2, n * 2.25 * 1e-3), "M2 \(m2) vs \(ref.m2)")
        #expect(m2 >= 0)
    }

    @Test("Reductions.shortRunSumsPair gives each run exactly its shortRunSums", arguments: [1, 3, 4, 7, 32, 33, 255, 256])
    func shortRunPair(length: Int) {
        var rng = TestRNG(seed: UInt64(length) + 11)
        let x = rng.floats(2 * length, mean: 40, std: 2)
        x.withUnsafeBufferPointer { xb in
            let p = xb.baseAddress!, q = p + length
            let (first, second) = Reductions.shortRunSumsPair(p, q, length: length)
            let a = Reductions.shortRunSums(p, length: length), b = Reductions.shortRunSums(q, length: length)
            #expect(first.pilot == a.pilot && first.s1 == a.s1 && first.s2 == a.s2, "first run")
            #expect(second.pilot == b.pilot && second.s1 == b.s1 && second.s2 == b.s2, "second run")
        }
    }

    @Test("Reductions.moments of nothing is NaN; of constants is exactly 0")
    func momentsEdgeCases() {
        let empty: [Float] = [0]
        let (m0, v0) = empty.withUnsafeBufferPointer { Reductions.moments($0.baseAddress!, segments: 1, stride: 0, length: 0) }
        #expect(m0.isNaN && v0.isNaN)
        let constant = [Float](repeating: 12345.678, count: 3000)
        let (m, v) = constant.withUnsafeBufferPointer { Reductions.moments($0.baseAddress!, segments: 1, stride: 0, length: 3000) }
        #expect(m == Double(Float(12345.678)))
        #expect(v == 0)
    }

    @Test("Reductions.sumOfSquares and gradientSums match float64", arguments: [1, 17, 32, 2049, 5000])
    func sums(length: Int) {
        var rng = TestRNG(seed: UInt64(length))
        let x = rng.floats(length, mean: 0.3), g = rng.floats(length)
        let mu: Float = 0.25
        let ss = x.withUnsafeBufferPointer { Reductions.sumOfSquares($0.baseAddress!, length: length) }
        let refSS = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(ss - refSS) <= 1e-5 * refSS)
        let (sg, sgx) = x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
            Reductions.gradientSums(x: xb.baseAddress!, g: gb.baseAddress!, length: length, mu: mu)
        }}
        let refG = g.reduce(0.0) { $0 + Double($1) }
        let refGX = zip(g, x).reduce(0.0) { $0 + Double($1.0) * (Double($1.1) - Double(mu)) }
        let scale = Double(length).squareRoot()   // natural size of a sum of n O(1) terms of random sign
        #expect(abs(sg - refG) <= 1e-5 * scale)
        #expect(abs(sgx - refGX) <= 1e-5 * scale)
    }

    @Test("PlaneKernels.affine: (x − mu)·scale + shift per plane, with and without a floor")
    func planeAffine() {
        var rng = TestRNG(seed: 5)
        let planes = 3, length = 37
        let x = rng.floats(planes * length)
        let mu: [Float] = [0.1, -0.2, 0.3], scale: [Float] = [1.5, -0.5, 2], shift: [Float] = [0, 0.25, -1], floor: [Float] = [-0.5, 0, 0.1]
        for useFloor in [false, true] {
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                PlaneKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, planes: planes, length: length,
                                    mu: mu, scale: scale, shift: shift, floor: useFloor ? floor : nil)
            }}
            for i in 0..<x.count {
                let p = i / length
                var want = (Double(x[i]) - Double(mu[p])) * Double(scale[p]) + Double(shift[p])
                if useFloor { want = max(want, Double(floor[p])) }
                #expect(abs(Double(y[i]) - want) <= 1e-6 * max(1, abs(want)), "i=\(i) floor=\(useFloor)")
            }
        }
    }

    @Test("ThresholdKernels: the TLU gradient goes to the affine branch where x·s + t ≥ τ, ties included")
    func thresholdMask() {
        // One plane: s = 1, t = 0, τ = 0.5, with values exactly at the threshold.
        let x: [Float] = [-1, 0.5, 0.5, 2, 0.25, 3, -0.5, 0.5, 1, 0.75, -2, 0.5, 0.5, 0, 4, 0.49, 0.51, 0.5]
        let g: [Float] = x.indices.map { Float($0 + 1) / 10 }
        let pass = x.map { $0 >= 0.5 }
        let (pg, pgx, sg) = x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
            ThresholdKernels.gradientSums(x: xb.baseAddress!, g: gb.baseAddress!, planes: 1, length: x.count,
                                          scale: [1], shift: [0], floor: [0.5])
        }}
        let refPG = x.indices.reduce(0.0) { $0 + (pass[$1] ? Double(g[$1]) : 0) }
        let refPGX = x.indices.reduce(0.0) { $0 + (pass[$1] ? Double(g[$1]) * Double(x[$1]) : 0) }
        #expect(abs(pg[0] - refPG) < 1e-5 && abs(pgx[0] - refPGX) < 1e-5)
        #expect(abs(sg[0] - g.reduce(0.0) { $0 + Double($1) }) < 1e-5)

        var out = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in out.withUnsafeMutableBufferPointer { ob in
            ThresholdKernels.maskedLinear(x: xb.baseAddress!, g: gb.baseAddress!, out: ob.baseAddress!, planes: 1, length: x.count,
                                          scale: [1], shift: [0], floor: [0.5], a: [2], b: [-0.5])
        }}}
        for i in x.indices {
            let want = 2 * (pass[i] ? Double(g[i]) : 0) - 0.5 * Double(x[i])
            #expect(abs(Double(out[i]) - want) <= 1e-6 * max(1, abs(want)), "i=\(i)")
        }
    }

    @Test("Parallel.forEach covers every index exactly once, serial or split", arguments: [0, 1, 7, 1000, 40_000])
    func parallelCoverage(count: Int) {
        for work in [count, Parallel.serialThreshold * 4] {
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress
                Parallel.forEach(count, work: work) { range in
                    for i in range { base![i] += 1 }   // ranges are disjoint: no two threads share an index
                }
            }
            #expect(hits.allSatisfy { $0 == 1 }, "count \(count), work \(work)")
        }
    }
}
