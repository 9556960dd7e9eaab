import Foundation
import Testing
import NormKernels
import NormTestSupport


/// The fused kernels (statistics and output per block of runs, backward per run, LayerNorm's
/// panelled backward, FRN) against float64 formulas, and bit-identical across thread counts.
///
/// Sizes: every case above `Parallel.serialThreshold` runs split across threads; runs shorter
/// than 16 (scalar tails), longer than `Reductions.block` (blocked moments), several segments
/// per run, and LayerNorm rows past the 4 MB panel (panels inside a 16-row block) and long
/// enough to be normalized in pairs.
@Suite("Fused kernels", .serialized)
struct FusedKernelTests {
    struct RunCase: Sendable, CustomTestStringConvertible {
        let runs: Int, length: Int, segment: Int, channels: Int, affine: Bool, offset: Double
        var testDescription: String { "\(runs) runs × \(length) (segments of \(segment)), C=\(channels), affine \(affine), offset \(offset)" }
    }

    static let runCases: [RunCase] = [
        RunCase(runs: 2048, length: 64, segment: 64, channels: 32, affine: false, offset: 0.5),     // InstanceNorm (64, 32, 8, 8)
        RunCase(runs: 96, length: 6 * 49, segment: 49, channels: 24, affine: true, offset: 1e3),    // GroupNorm, 6 channels per group
        RunCase(runs: 40, length: 5000, segment: 5000, channels: 8, affine: true, offset: -2),      // runs past one float32 block
        RunCase(runs: 3000, length: 12, segment: 4, channels: 9, affine: true, offset: 3),          // short scalar tails
    ]

    /// Per run: the float64 mean, biased variance and 1/√(var + eps).
    private func stats(_ x: [Float], runs: Int, length: Int, eps: Double) -> (mean: [Double], variance: [Double], invstd: [Double]) {
        var mean = [Double](), variance = [Double](), invstd = [Double]()
        for r in 0..<runs {
            let v = x[(r * length)..<((r + 1) * length)].map(Double.init)
            let m = v.reduce(0, +) / Double(length)
            let s = v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(length)
            mean.append(m); variance.append(s); invstd.append(1 / (s + eps).squareRoot())
        }
        return (mean, variance, invstd)
    }

    @Test("PlaneKernels.normalizeRuns and its backward match float64; 1 and 2 threads bit-identical", arguments: runCases)
    func planeRuns(_ c: RunCase) {
        var rng = TestRNG(seed: UInt64(c.runs * 7 + c.length))
        let n = c.runs * c.length, eps = 1e-5, segs = c.length / c.segment
        let x = rng.floats(n, mean: c.offset, std: 1.5), g = rng.floats(n)
        let w: [Float]? = c.affine ? rng.floats(c.channels, mean: 1, std: 0.3) : nil
        let b: [Float]? = c.affine ? rng.floats(c.channels, std: 0.3) : nil

        func run(_ threads: Int) -> (y: [Float], mean: [Double], variance: [Double], invstd: [Double], gx: [Float], sg: [Double], sgx: [Double]) {
            withThreads(threads) {
                var y = [Float](repeating: .nan, count: n), gx = y
                var mean = [Double](repeating: .nan, count: c.runs), variance = mean, invstd = mean
                var sg = [Double](repeating: .nan, count: c.runs * segs), sgx = sg
                w.withOptionalPointer { wp in b.withOptionalPointer { bp in
                    PlaneKernels.normalizeRuns(x: x, y: &y, runs: c.runs, length: c.length, segment: c.segment, channels: c.channels,
                                               eps: eps, weight: wp, bias: bp, mean: &mean, variance: &variance, invstd: &invstd)
                    PlaneKernels.normalizeRunsBackward(x: x, g: g, gx: &gx, runs: c.runs, length: c.length, segment: c.segment,
                                                       channels: c.channels, mean: mean, invstd: invstd, weight: wp, sumG: &sg, sumGX: &sgx)
                }}
                return (y, mean, variance, invstd, gx, sg, sgx)
            }
        }
        let one = run(1), two = run(2)
        #expect(one.y.map(\.bitPattern) == two.y.map(\.bitPattern))
        #expect(one.gx.map(\.bitPattern) == two.gx.map(\.bitPattern))
        // Non-temporal output stores (``StreamingStores``, taken for tensors past the last-level
        // cache; forced here) write the same bits.
        let saved = StreamingStores.thresholdBytes
        StreamingStores.thresholdBytes = 0
        let streamed = run(2)
        StreamingStores.thresholdBytes = saved
        #expect(streamed.gx.map(\.bitPattern) == one.gx.map(\.bitPattern))
        #expect(one.mean == two.mean && one.invstd == two.invstd && one.sg == two.sg && one.sgx == two.sgx)

        let ref = stats(x, runs: c.runs, length: c.length, eps: eps)
        #expect(relError(one.mean, ref.mean) <= 1e-6 * 1.5 + 1e-12 * abs(c.offset))
        #expect(relError(one.variance, ref.variance) <= 1e-5)
        var yRef = [Double](), gxRef = [Double](), sgRef = [Double](), sgxRef = [Double]()
        for r in 0..<c.runs {
            let m = ref.mean[r], iv = ref.invstd[r]
            var ghatMean = 0.0, ghatXhatMean = 0.0
            for i in 0..<c.length {
                let p = r * c.length + i, ch = (r * segs + i / c.segment) % c.channels
                let xhat = (Double(x[p]) - m) * iv, wc = w.map { Double($0[ch]) } ?? 1
                yRef.append(xhat * wc + (b.map { Double($0[ch]) } ?? 0))
                ghatMean += Double(g[p]) * wc / Double(c.length)
                ghatXhatMean += Double(g[p]) * wc * xhat / Double(c.length)
            }
            for j in 0..<segs {
                var s1 = 0.0, s2 = 0.0
                for i in (j * c.segment)..<((j + 1) * c.segment) {
                    let p = r * c.length + i
                    s1 += Double(g[p]); s2 += Double(g[p]) * (Double(x[p]) - m)
                }
                sgRef.append(s1); sgxRef.append(s2)
            }
            for i in 0..<c.length {
                let p = r * c.length + i, ch = (r * segs + i / c.segment) % c.channels
                let xhat = (Double(x[p]) - m) * iv, wc = w.map { Double($0[ch]) } ?? 1
                gxRef.append(iv * (Double(g[p]) * wc - ghatMean - xhat * ghatXhatMean))
            }
        }
        #expect(relError(one.y, yRef) <= 1e-5, "output")
        #expect(relError(one.gx, gxRef) <= 1e-5, "dL/dx")
        #expect(relError(one.sg, sgRef) <= 1e-5 * Double(c.segment).squareRoot(), "Σg")
        #expect(relError(one.sgx, sgxRef) <= 1e-5 * Double(c.segment).squareRoot(), "Σg(x − mean)")
    }

    struct RowCase: Sendable, CustomTestStringConvertible {
        let rows: Int, length: Int, segments: Int, affine: Bool, wantW: Bool, wantB: Bool
        var testDescription: String { "\(rows) rows × \(length), \(segments) runs per row, affine \(affine), dW \(wantW), dB \(wantB)" }
    }

    static let rowCases: [RowCase] = [
        RowCase(rows: 8, length: 6272, segments: 1, affine: true, wantW: true, wantB: true),      // one row block, direct gradients
        RowCase(rows: 40, length: 1024, segments: 32, affine: true, wantW: true, wantB: true),    // GroupNorm rows, 3 row blocks
        RowCase(rows: 37, length: 20_000, segments: 1, affine: true, wantW: false, wantB: true),  // panels of 16 rows (> 4 MB)
        RowCase(rows: 21, length: 70_000, segments: 1, affine: true, wantW: true, wantB: true),   // panels of 4 rows; rows in pairs
        RowCase(rows: 3, length: 2500, segments: 5, affine: false, wantW: false, wantB: false),   // no affine, chunk tails
        RowCase(rows: 18, length: 3000, segments: 2, affine: true, wantW: true, wantB: false),    // runs past one chunk
        RowCase(rows: 19, length: 64, segments: 8, affine: true, wantW: true, wantB: true),       // 4-lane runs, a last unpaired row
    ]

    @Test("RowKernels.normalizeRuns and backwardRuns match float64; 1 and 2 threads bit-identical", arguments: rowCases)
    func rowRuns(_ c: RowCase) {
        var rng = TestRNG(seed: UInt64(c.rows * 31 + c.length))
        let n = c.rows * c.length, eps = 1e-5, len = c.length / c.segments, runs = c.rows * c.segments
        let x = rng.floats(n, mean: 4, std: 2), g = rng.floats(n)
        let w: [Float]? = c.affine ? rng.floats(c.length, mean: 1, std: 0.3) : nil
        let b: [Float]? = c.affine ? rng.floats(c.length, std: 0.3) : nil

        func run(_ threads: Int) -> (y: [Float], gx: [Float], gw: [Float], gb: [Float]) {
            withThreads(threads) {
                var y = [Float](repeating: .nan, count: n), gx = y
                var head = [Float](repeating: 0, count: runs), inv = head, k = head
                var gw = [Float](repeating: .nan, count: c.length), gb = gw
                w.withOptionalPointer { wp in b.withOptionalPointer { bp in
                    RowKernels.normalizeRuns(x: x, y: &y, rows: c.rows, length: c.length, segments: c.segments, eps: eps,
                                             w: wp, b: bp, head: &head, inv: &inv, k: &k)
                    gw.withUnsafeMutableBufferPointer { gwp in gb.withUnsafeMutableBufferPointer { gbp in
                        RowKernels.backwardRuns(x: x, g: g, gx: &gx, rows: c.rows, length: c.length, segments: c.segments,
                                                head: head, inv: inv, k: k, w: wp,
                                                gradW: c.wantW ? gwp.baseAddress : nil, gradB: c.wantB ? gbp.baseAddress : nil)
                    }}
                }}
                return (y, gx, gw, gb)
            }
        }
        let one = run(1), two = run(2)
        #expect(one.y.map(\.bitPattern) == two.y.map(\.bitPattern))
        #expect(one.gx.map(\.bitPattern) == two.gx.map(\.bitPattern))
        // Non-temporal output stores (``StreamingStores``, taken for tensors past the last-level
        // cache; forced here) write the same bits.
        let saved = StreamingStores.thresholdBytes
        StreamingStores.thresholdBytes = 0
        let streamed = run(2)
        StreamingStores.thresholdBytes = saved
        #expect(streamed.gx.map(\.bitPattern) == one.gx.map(\.bitPattern))
        #expect(one.gw.map(\.bitPattern) == two.gw.map(\.bitPattern) && one.gb.map(\.bitPattern) == two.gb.map(\.bitPattern))
        #expect(one.gw.allSatisfy(\.isNaN) != c.wantW && one.gb.allSatisfy(\.isNaN) != c.wantB, "only the asked gradients are written")

        let ref = stats(x, runs: runs, length: len, eps: eps)
        var yRef = [Double](repeating: 0, count: n), gxRef = yRef
        var gwRef = [Double](repeating: 0, count: c.length), gbRef = gwRef
        for r in 0..<runs {
            let m = ref.mean[r], iv = ref.invstd[r], base = r * len, col0 = (r % c.segments) * len
            var ghatMean = 0.0, ghatXhatMean = 0.0
            for i in 0..<len {
                let xhat = (Double(x[base + i]) - m) * iv, wc = w.map { Double($0[col0 + i]) } ?? 1
                yRef[base + i] = xhat * wc + (b.map { Double($0[col0 + i]) } ?? 0)
                ghatMean += Double(g[base + i]) * wc / Double(len)
                ghatXhatMean += Double(g[base + i]) * wc * xhat / Double(len)
                gwRef[col0 + i] += Double(g[base + i]) * xhat
                gbRef[col0 + i] += Double(g[base + i])
            }
            for i in 0..<len {
                let xhat = (Double(x[base + i]) - m) * iv, wc = w.map { Double($0[col0 + i]) } ?? 1
                gxRef[base + i] = iv * (Double(g[base + i]) * wc - ghatMean - xhat * ghatXhatMean)
            }
        }
        #expect(relError(one.y, yRef) <= 1e-5, "output")
        #expect(relError(one.gx, gxRef) <= 1e-5, "dL/dx")
        if c.wantW { #expect(relError(one.gw, gwRef) <= 1e-5 * Double(c.rows).squareRoot(), "dL/dw") }
        if c.wantB { #expect(relError(one.gb, gbRef) <= 1e-5 * Double(c.rows).squareRoot(), "dL/db") }
    }

    @Test("ThresholdKernels.forward and backward (FRN + TLU) match float64; 1 and 2 threads bit-identical",
          arguments: [(2048, 64, 32), (64, 3000, 16), (1500, 9, 5)])
    func frn(planes: Int, length: Int, channels: Int) {
        var rng = TestRNG(seed: UInt64(planes + length))
        let n = planes * length, absEps = 1e-6
        let x = rng.floats(n, mean: 0.5, std: 1), g = rng.floats(n)
        let w = rng.floats(channels, mean: 1, std: 0.3), b = rng.floats(channels, std: 0.3), tau = rng.floats(channels, std: 0.3)

        func run(_ threads: Int) -> (y: [Float], gx: [Float], pg: [Double], pgx: [Double], sg: [Double], invr: [Double], scale: [Float], shift: [Float]) {
            withThreads(threads) {
                var y = [Float](repeating: .nan, count: n), gx = y
                var invr = [Double](repeating: .nan, count: planes), pg = invr, pgx = invr, sg = invr
                var scale = [Float](repeating: .nan, count: planes), shift = scale
                ThresholdKernels.forward(x: x, y: &y, planes: planes, length: length, channels: channels, absEps: absEps,
                                         weight: w, bias: b, tau: tau, invr: &invr, scale: &scale, shift: &shift)
                ThresholdKernels.backward(x: x, g: g, gx: &gx, planes: planes, length: length, channels: channels,
                                          invr: invr, scale: scale, shift: shift, tau: tau, weight: w,
                                          passG: &pg, passGX: &pgx, sumG: &sg)
                return (y, gx, pg, pgx, sg, invr, scale, shift)
            }
        }
        let one = run(1), two = run(2)
        #expect(one.y.map(\.bitPattern) == two.y.map(\.bitPattern) && one.gx.map(\.bitPattern) == two.gx.map(\.bitPattern))
        #expect(one.pg == two.pg && one.pgx == two.pgx && one.sg == two.sg && one.invr == two.invr)

        var yRef = [Double](), gxRef = [Double](), pgRef = [Double](), pgxRef = [Double](), sgRef = [Double]()
        for p in 0..<planes {
            let ch = p % channels, base = p * length
            let nu2 = (0..<length).reduce(0.0) { $0 + Double(x[base + $1]) * Double(x[base + $1]) } / Double(length)
            let ir = 1 / (nu2 + absEps).squareRoot(), wc = Double(w[ch])
            #expect(abs(one.invr[p] - ir) <= 1e-6 * ir)
            var a = 0.0, c = 0.0, s = 0.0
            var mask = [Bool]()
            for i in 0..<length {
                let xv = Double(x[base + i])
                yRef.append(max(wc * xv * ir + Double(b[ch]), Double(tau[ch])))
                // The mask as the kernel decides it (float32), so ties cannot disagree.
                let m = x[base + i] * one.scale[p] + one.shift[p] >= tau[ch]
                mask.append(m)
                if m { a += Double(g[base + i]); c += Double(g[base + i]) * xv }
                s += Double(g[base + i])
            }
            pgRef.append(a); pgxRef.append(c); sgRef.append(s)
            for i in 0..<length {
                let gm = mask[i] ? Double(g[base + i]) : 0
                gxRef.append(wc * ir * gm - wc * ir * ir * ir * Double(x[base + i]) * c / Double(length))
            }
        }
        #expect(relError(one.y, yRef) <= 1e-5, "output")
        #expect(relError(one.gx, gxRef) <= 1e-5, "dL/dx")
        #expect(relError(one.pg, pgRef) <= 1e-5 && relError(one.pgx, pgxRef) <= 1e-5 && relError(one.sg, sgRef) <= 1e-5, "plane sums")
    }

    @Test("Reductions.Divisor divides exactly like `/`, powers of two included")
    func divisor() {
        var rng = TestRNG(seed: 5)
        for d in [1.0, 2, 3, 32, 64, 196, 1024, 3136, 50176, 0.5, 0.25, 1e300] {
            let q = Reductions.Divisor(d)
            for _ in 0..<200 {
                let x = rng.normal() * pow(10, Double(Int(rng.uniform() * 40) - 20))
                #expect(q.divide(x).bitPattern == (x / d).bitPattern, "\(x) / \(d)")
            }
            #expect(q.divide(0) == 0 && q.divide(.infinity) == .infinity && q.divide(.nan).isNaN)
        }
    }

    @Test("ScratchBuffers lends distinct, 64-byte aligned blocks to concurrent callers")
    func scratch() async {
        let seen = await withTaskGroup(of: Int.self) { group in
            for i in 0..<8 {
                group.addTask {
                    ScratchBuffers.withBuffer(of: Int.self, count: 1000 + i) { p in
                        for j in 0..<(1000 + i) { p[j] = i }
                        usleep(2000)
                        return (0..<(1000 + i)).allSatisfy { p[$0] == i } ? 1 : 0
                    }
                }
            }
            return await group.reduce(0, +)
        }
        #expect(seen == 8)
        #expect(ScratchBuffers.withBuffer(bytes: 1 << 20) { Int(bitPattern: $0) % 64 } == 0)
    }
}

extension Optional where Wrapped == [Float] {
    /// The array's base address, or nil.
    fileprivate func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let self else { return try body(nil) }
        return try self.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
