import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Float64 normalization of `values` in groups: `groupOf(i)` names element i's group.
private func referenceNormalize(_ values: [Double], eps: Double, groupOf: (Int) -> Int, groups: Int) -> (y: [Double], mean: [Double], inv: [Double]) {
    var sum = [Double](repeating: 0, count: groups), cnt = [Double](repeating: 0, count: groups)
    for i in values.indices { sum[groupOf(i)] += values[i]; cnt[groupOf(i)] += 1 }
    let mean = (0..<groups).map { sum[$0] / cnt[$0] }
    var ss = [Double](repeating: 0, count: groups)
    for i in values.indices { let g = groupOf(i); ss[g] += (values[i] - mean[g]) * (values[i] - mean[g]) }
    let inv = (0..<groups).map { 1 / (ss[$0] / cnt[$0] + eps).squareRoot() }
    return (values.indices.map { (values[$0] - mean[groupOf($0)]) * inv[groupOf($0)] }, mean, inv)
}

@Suite("Numerics of the kernels")
struct NumericsTests {
    /// Inputs 1e4 + N(0, 1): a one-pass float32 variance (E[x²] − E[x]² ≈ 1e8 − 1e8) loses
    /// every digit, and even rounding the mean to float32 (ulp(1e4) ≈ 1e-3) shifts x̂ by up to
    /// 5e-4. The kernels shift by a pilot value and keep a float64 tail of the mean, so the
    /// output should be as accurate as float32 output of an O(1) value: a few 1e-7. We require
    /// 1e-4 absolute (x̂ is O(1)): tighter than the ~1e-3 the issue asks for, so that even the
    /// ≤ 5e-4 error of subtracting a float32-rounded mean is caught, and still loose enough for
    /// any float32 rounding order.
    @Test("mean ≫ std: outputs and input gradients match a float64 computation",
          arguments: ["bn", "gn", "ln", "in"])
    func largeMeanSmallSpread(method: String) throws {
        var rng = TestRNG(seed: 51)
        let shape = [4, 4, 6, 5], c = 4, s = 30
        let x = rng.normalTensor(shape, mean: 1e4, std: 1)
        let g = rng.normalTensor(shape)
        let options: [String: OptionValue] = method == "gn" ? ["num_groups": .integer(2)] : [:]
        let layer = try makeNorm(method, options, input: shape)
        let groupOf: (Int) -> Int
        let groups: Int
        switch method {
        case "bn": groupOf = { ($0 / s) % c }; groups = c
        case "gn": groupOf = { ($0 / (2 * s)) }; groups = 4 * 2   // (n, g) with 2 channels per group, contiguous
        case "ln": groupOf = { $0 / (c * s) }; groups = 4
        default: groupOf = { $0 / s }; groups = 4 * c
        }
        let ref = referenceNormalize(x.doubles, eps: 1e-5, groupOf: groupOf, groups: groups)
        let y = try layer.forward(x, mode: .train)
        let (errY, _) = maxAbsError(y.doubles, ref.y)
        #expect(errY < 1e-4, "\(method): output max abs error \(errY)")

        // dL/dx = inv · (g − mean_group(g) − x̂ · mean_group(g·x̂)) (unit weight, zero bias).
        let gv = g.doubles
        var mg = [Double](repeating: 0, count: groups), mgx = mg, cnt = mg
        for i in gv.indices { let k = groupOf(i); mg[k] += gv[i]; mgx[k] += gv[i] * ref.y[i]; cnt[k] += 1 }
        let expectedGX = gv.indices.map { i -> Double in
            let k = groupOf(i)
            return ref.inv[k] * (gv[i] - mg[k] / cnt[k] - ref.y[i] * mgx[k] / cnt[k])
        }
        let gx = try layer.backward(g)
        let (errG, scaleG) = maxAbsError(gx.doubles, expectedGX)
        // Same reasoning for the gradient: O(1) values, float32 combination: 1e-4 of the scale.
        #expect(errG < 1e-4 * max(1, scaleG), "\(method): dL/dx max abs error \(errG) (scale \(scaleG))")
        // Running statistics hold the large mean accurately too (float32 at 1e4: ulp ≈ 1e-3).
        if method == "bn" {
            let rm = try layer.requireBuffer("running_mean").value.doubles
            expectClose(rm, (0..<c).map { 0.1 * ref.mean[$0] }, rtol: 1e-6, "running_mean")
        }
    }

    @Test("FRN at a large offset: x / √(mean(x²) + eps) matches float64")
    func filterResponseLargeValues() throws {
        var rng = TestRNG(seed: 52)
        let shape = [2, 3, 8, 8]
        let x = rng.normalTensor(shape, mean: 1e4, std: 1)
        let layer = try makeNorm("frn", ["tlu": .bool(false)], input: shape)
        let y = try layer.forward(x, mode: .train)
        let v = x.doubles
        let expected = v.indices.map { i -> Double in
            let p = i / 64
            let nu2 = (0..<64).reduce(0.0) { $0 + v[p * 64 + $1] * v[p * 64 + $1] } / 64
            return v[i] / (nu2 + 1e-6).squareRoot()
        }
        expectClose(y, expected, rtol: 1e-5, "FRN output")
    }
}

@Suite("Output buffers")
struct OutputReuseTests {
    @Test("a held output or input gradient is never overwritten by the next forward/backward",
          arguments: [("bn", [String: OptionValue]()), ("brn", [:]), ("gn", ["num_groups": .integer(2)]), ("ln", [:]),
                      ("in", [:]), ("frn", [:])])
    func heldResultsSurvive(method: String, options: [String: OptionValue]) throws {
        var rng = TestRNG(seed: 53)
        let shape = [2, 4, 3, 2]
        let layer = try makeNorm(method, options, input: shape)
        let x1 = rng.normalTensor(shape), x2 = rng.normalTensor(shape, mean: 5, std: 3), g = rng.normalTensor(shape)
        let y1 = try layer.forward(x1, mode: .train)
        let y1Copy = y1.copy
        let gx1 = try layer.backward(g)
        let gx1Copy = gx1.copy
        let y2 = try layer.forward(x2, mode: .train)
        let gx2 = try layer.backward(rng.normalTensor(shape))
        expectBitIdentical(y1, y1Copy, "\(method) first output")
        expectBitIdentical(gx1, gx1Copy, "\(method) first input gradient")
        #expect(!y2.isBitIdentical(to: y1) && !gx2.isBitIdentical(to: gx1))
    }
}

/// `Parallel.threadCount` is process-global: this suite runs serially and restores it. Other
/// suites running meanwhile are unaffected in their results, which is the very property
/// checked here (any thread count gives bit-identical results).
@Suite("Thread-count determinism", .serialized)
struct ThreadDeterminismTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let method: String
        let options: [String: OptionValue]
        var testDescription: String { method }
    }

    static let cases: [Case] = [
        Case(method: "bn", options: [:]),
        Case(method: "brn", options: ["r_max": .real(1.5), "d_max": .real(0.5)]),
        Case(method: "gn", options: ["num_groups": .integer(4)]),
        Case(method: "ln", options: [:]),
        Case(method: "in", options: ["affine": .bool(true), "track_running_stats": .bool(true)]),
        Case(method: "frn", options: ["learnable_eps": .bool(true)]),
        Case(method: "evonorm_s0", options: ["groups": .integer(4)]),
        Case(method: "evonorm_b0", options: [:]),
        Case(method: "bcn", options: ["num_groups": .integer(4)]),
        Case(method: "gbn", options: ["virtual_batch_size": .integer(2)]),
        Case(method: "lrn", options: [:]),
        Case(method: "sn", options: [:]),
        Case(method: "rms", options: [:]),
    ]

    /// The methods with their own `(N, C)` kernels (row blocks, column sums, virtual batches of rows).
    static let rowCases: [Case] = [
        Case(method: "evonorm_s0", options: ["groups": .integer(16)]),
        Case(method: "bcn", options: ["num_groups": .integer(16)]),
        Case(method: "gbn", options: ["virtual_batch_size": .integer(32)]),
        Case(method: "rms", options: [:]),
    ]

    /// Everything one train step produces: output, dL/dx, parameter gradients, buffers.
    private func run(_ c: Case, threads: Int, x: Tensor, g: Tensor) throws -> [(String, Tensor)] {
        Parallel.threadCount = threads
        let layer = try makeNorm(c.method, c.options, input: x.shape)
        var rng = TestRNG(seed: 61)
        for p in layer.parameters where p.name != "eps" { p.value = rng.uniformTensor(p.value.shape, -1, 1) }
        var out: [(String, Tensor)] = [("output", try layer.forward(x, mode: .train).copy), ("grad_input", try layer.backward(g).copy)]
        for p in layer.parameters { out.append(("grad_" + p.name, try #require(p.gradient).copy)) }
        for b in layer.buffers { out.append((b.name, b.value.copy)) }
        if layer.tracksRunningStatistics {
            out.append(("eval_output", try layer.forward(x, mode: .eval).copy))
            out.append(("eval_grad_input", try layer.backward(g).copy))
        }
        return out
    }

    @Test("results are bit-identical with 1 and 2 threads on a tensor above the serial threshold", arguments: cases)
    func bitIdenticalAcrossThreadCounts(_ c: Case) throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        var rng = TestRNG(seed: 60)
        let shape = [4, 8, 36, 40]   // 46,080 elements > Parallel.serialThreshold (32,768)
        #expect(shape.product > Parallel.serialThreshold)
        let x = rng.normalTensor(shape, mean: 3, std: 2), g = rng.normalTensor(shape)
        let one = try run(c, threads: 1, x: x, g: g)
        let two = try run(c, threads: 2, x: x, g: g)
        #expect(one.map(\.0) == two.map(\.0))
        for ((name, a), (_, b)) in zip(one, two) { expectBitIdentical(a, b, "\(c.method) \(name)") }
    }

    @Test("(N, C) inputs: bit-identical with 1 and 2 threads above the serial threshold", arguments: rowCases)
    func bitIdenticalAcrossThreadCountsOnRows(_ c: Case) throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        var rng = TestRNG(seed: 62)
        let shape = [96, 512]   // 49,152 elements > Parallel.serialThreshold (32,768)
        let x = rng.normalTensor(shape, mean: 3, std: 2), g = rng.normalTensor(shape)
        let one = try run(c, threads: 1, x: x, g: g)
        let two = try run(c, threads: 2, x: x, g: g)
        #expect(one.map(\.0) == two.map(\.0))
        for ((name, a), (_, b)) in zip(one, two) { expectBitIdentical(a, b, "\(c.method) \(name)") }
    }
}
