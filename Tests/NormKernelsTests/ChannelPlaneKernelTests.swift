import Foundation
import Testing
@testable import NormKernels
import NormTestSupport

/// ``ChannelPlaneKernels`` (BatchNorm's train passes fused per channel) against the separate
/// passes they fuse — ``Reductions/moments(_:segments:stride:length:)`` /
/// ``Reductions/gradientSums(x:g:segments:stride:length:mu:)`` per channel, then
/// ``PlaneKernels``' per-channel affine / linear pass — bit for bit, against float64, and
/// bit-identical at 1 and 2 threads.
@Suite("Channel plane kernels", .serialized)
struct ChannelPlaneKernelTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        let n: Int, c: Int, s: Int
        var testDescription: String { "(\(n), \(c), \(s))" }
    }

    static let shapes: [Shape] = [
        Shape(n: 8, c: 16, s: 784),     // channels split across threads
        Shape(n: 3, c: 5, s: 2049),     // planes past one float32 block, scalar tails
        Shape(n: 40, c: 3, s: 100),     // a channel's runs share blocks
        Shape(n: 2, c: 7, s: 17),       // below the serial threshold
    ]

    /// The affine a channel normalizes with: `scale = invstd·w`, `shift = b − tail·scale`.
    private static func coefficients(_ w: [Float], _ b: [Float], eps: Double) -> ChannelPlaneKernels.Coefficients {
        { c, mean, variance in
            let sc = 1 / (variance + eps).squareRoot() * Double(w[c])
            let head = Float(mean)
            return (head, Float(sc), Float(Double(b[c]) - (mean - Double(head)) * sc))
        }
    }

    @Test("normalize: the separate passes bit for bit, float64 statistics, 1 and 2 threads alike", arguments: shapes)
    func normalize(_ sh: Shape) {
        var rng = TestRNG(seed: UInt64(sh.n * 131 + sh.c * 7 + sh.s))
        let count = sh.n * sh.c * sh.s, eps = 1e-5
        let x = rng.floats(count, mean: 50, std: 2), w = rng.floats(sh.c, mean: 1, std: 0.5), b = rng.floats(sh.c)
        let coefficients = Self.coefficients(w, b, eps: eps)

        func fused(_ threads: Int) -> (y: [Float], mean: [Double], variance: [Double]) {
            withThreads(threads) {
                var y = [Float](repeating: .nan, count: count)
                var mean = [Double](repeating: .nan, count: sh.c), variance = mean
                ChannelPlaneKernels.normalize(x: x, y: &y, n: sh.n, channels: sh.c, length: sh.s, mean: &mean, variance: &variance,
                                              coefficients: coefficients)
                return (y, mean, variance)
            }
        }
        let one = fused(1), two = fused(2)
        #expect(one.y.map(\.bitPattern) == two.y.map(\.bitPattern) && one.mean == two.mean && one.variance == two.variance)

        // The separate passes.
        var mu = [Float](), scale = [Float](), shift = [Float](), mean = [Double](), variance = [Double]()
        x.withUnsafeBufferPointer { xb in
            for c in 0..<sh.c {
                let (m, m2) = Reductions.moments(xb.baseAddress! + c * sh.s, segments: sh.n, stride: sh.c * sh.s, length: sh.s)
                let v = m2 / Double(sh.n * sh.s)
                mean.append(m); variance.append(v)
                let t = coefficients(c, m, v)
                mu.append(t.head); scale.append(t.scale); shift.append(t.shift)
            }
        }
        var y = [Float](repeating: .nan, count: count)
        PlaneKernels.affine(x: x, y: &y, planes: sh.n * sh.c, length: sh.s, period: sh.c, mu: mu, scale: scale, shift: shift,
                            floor: nil, order: .forward)
        #expect(one.mean == mean && one.variance == variance)
        #expect(one.y.map(\.bitPattern) == y.map(\.bitPattern))

        // Float64.
        var yRef = [Double](repeating: 0, count: count), meanRef = [Double](), varRef = [Double]()
        for c in 0..<sh.c {
            var values = [Double]()
            for i in 0..<sh.n { for j in 0..<sh.s { values.append(Double(x[(i * sh.c + c) * sh.s + j])) } }
            let m = values.reduce(0, +) / Double(values.count)
            let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)
            meanRef.append(m); varRef.append(v)
            for i in 0..<sh.n { for j in 0..<sh.s {
                let p = (i * sh.c + c) * sh.s + j
                yRef[p] = (Double(x[p]) - m) / (v + eps).squareRoot() * Double(w[c]) + Double(b[c])
            }}
        }
        #expect(relError(one.mean, meanRef) <= 1e-6)
        #expect(relError(one.variance, varRef) <= 1e-5)
        #expect(relError(one.y, yRef) <= 1e-5)
    }

    @Test("backward: the separate passes bit for bit, float64 sums, 1 and 2 threads alike", arguments: shapes)
    func backward(_ sh: Shape) {
        var rng = TestRNG(seed: UInt64(sh.n * 17 + sh.c * 3 + sh.s))
        let count = sh.n * sh.c * sh.s
        let x = rng.floats(count, mean: -3, std: 1.5), g = rng.floats(count)
        let head = rng.floats(sh.c, mean: -3, std: 0.1)
        // Any per-channel function of the sums: the kernel applies what it is given.
        let coefficients: ChannelPlaneKernels.GradientCoefficients = { c, sg, sgx in
            (Float(1 + Double(c) * 0.1), Float(-sgx / Double(count)), Float(-sg / Double(count)))
        }

        func fused(_ threads: Int) -> (gx: [Float], sg: [Double], sgx: [Double]) {
            withThreads(threads) {
                var gx = [Float](repeating: .nan, count: count)
                var sg = [Double](repeating: .nan, count: sh.c), sgx = sg
                ChannelPlaneKernels.backward(x: x, g: g, gx: &gx, n: sh.n, channels: sh.c, length: sh.s, head: head,
                                             sumG: &sg, sumGX: &sgx, coefficients: coefficients)
                return (gx, sg, sgx)
            }
        }
        let one = fused(1), two = fused(2)
        #expect(one.gx.map(\.bitPattern) == two.gx.map(\.bitPattern) && one.sg == two.sg && one.sgx == two.sgx)

        var a = [Float](), bb = [Float](), cc = [Float](), sg = [Double](), sgx = [Double]()
        x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
            for c in 0..<sh.c {
                let (s1, s2) = Reductions.gradientSums(x: xb.baseAddress! + c * sh.s, g: gb.baseAddress! + c * sh.s, segments: sh.n,
                                                       stride: sh.c * sh.s, length: sh.s, mu: head[c])
                sg.append(s1); sgx.append(s2)
                let t = coefficients(c, s1, s2)
                a.append(t.a); bb.append(t.b); cc.append(t.c)
            }
        }}
        var gx = [Float](repeating: .nan, count: count)
        PlaneKernels.linearCombination(x: x, g: g, out: &gx, planes: sh.n * sh.c, length: sh.s, period: sh.c, mu: head,
                                       a: a, b: bb, c: cc, order: .forward)
        #expect(one.sg == sg && one.sgx == sgx)
        #expect(one.gx.map(\.bitPattern) == gx.map(\.bitPattern))

        var sgRef = [Double](repeating: 0, count: sh.c), sgxRef = sgRef
        for p in 0..<count {
            let c = (p / sh.s) % sh.c
            sgRef[c] += Double(g[p]); sgxRef[c] += Double(g[p]) * (Double(x[p]) - Double(head[c]))
        }
        let scale = Double(sh.n * sh.s).squareRoot()
        #expect(relError(one.sg, sgRef) <= 1e-5 * scale)
        #expect(relError(one.sgx, sgxRef) <= 1e-5 * scale)
    }

    /// Outputs larger than the last-level cache are written with non-temporal stores (an
    /// ordinary-store head up to the first 64-byte boundary, then aligned streaming stores):
    /// the same bits as ordinary stores, at every alignment and tail length.
    @Test("non-temporal output stores give the same bits", arguments: shapes + [Shape(n: 3, c: 4, s: 37), Shape(n: 5, c: 3, s: 1)])
    func streamingStoresAreBitIdentical(_ sh: Shape) {
        var rng = TestRNG(seed: UInt64(sh.n * 17 + sh.c * 5 + sh.s))
        let count = sh.n * sh.c * sh.s
        let x = rng.floats(count, mean: 3, std: 2), g = rng.floats(count), w = rng.floats(sh.c, mean: 1, std: 0.5)
        let coefficients = Self.coefficients(w, rng.floats(sh.c), eps: 1e-5)
        let gradient: ChannelPlaneKernels.GradientCoefficients = { c, sg, sgx in (w[c], Float(sg * 1e-3), Float(sgx * 1e-3)) }
        func run(streaming: Bool) -> [[Float]] {
            let saved = StreamingStores.thresholdBytes
            defer { StreamingStores.thresholdBytes = saved }
            StreamingStores.thresholdBytes = streaming ? 0 : Int.max
            #expect(StreamingStores.pay(arrays: 3, count: count) == streaming)
            var y = [Float](repeating: .nan, count: count), gx = y
            var mean = [Double](repeating: 0, count: sh.c), variance = mean, sumG = mean, sumGX = mean
            // Offset by one float, so the output planes start off a 64-byte boundary too.
            var yShifted = [Float](repeating: .nan, count: count + 1)
            ChannelPlaneKernels.normalize(x: x, y: &y, n: sh.n, channels: sh.c, length: sh.s, mean: &mean, variance: &variance,
                                          coefficients: coefficients)
            yShifted.withUnsafeMutableBufferPointer { yb in
                ChannelPlaneKernels.normalize(x: x, y: yb.baseAddress! + 1, n: sh.n, channels: sh.c, length: sh.s, mean: &mean,
                                              variance: &variance, coefficients: coefficients)
            }
            let head = mean.map(Float.init)
            ChannelPlaneKernels.backward(x: x, g: g, gx: &gx, n: sh.n, channels: sh.c, length: sh.s, head: head,
                                         sumG: &sumG, sumGX: &sumGX, coefficients: gradient)
            return [y, Array(yShifted.dropFirst()), gx]
        }
        let streamed = run(streaming: true), stored = run(streaming: false)
        for (a, b) in zip(streamed, stored) { #expect(a.map(\.bitPattern) == b.map(\.bitPattern)) }
        #expect(!stored[0].contains { $0.isNaN } && !stored[2].contains { $0.isNaN })
    }
}
