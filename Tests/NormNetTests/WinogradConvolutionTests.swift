import Testing
import NormTestSupport
import NormCore
@testable import NormNet

/// The Winograd F(2×2, 3×3) engine against a float64 direct convolution and the im2col engine
/// (forward, dx, dW, db), finite differences, itself across thread counts, and its selection.
///
/// Tolerance: float32 products over `C_in·9` terms have a relative error of a few 1e-7 on
/// im2col; F(2×2, 3×3) adds exact-coefficient transforms of up to 4 terms per axis before and
/// after the products (sums of up to 9 input values in V, 16 products per output in Aᵀ·M·A),
/// which multiplies the rounding error by a small constant. Measured on these cases: Winograd
/// 0.3–2.6e-7 relative to float64, 0.6–3× im2col's. The tests require below 1e-6 and within
/// 8× im2col's plus 1e-7 (a wrong transform entry gives errors of order 1e-1).
@Suite(.serialized) struct WinogradConvolutionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let input: [Int], cout: Int, bias: Bool
        /// Transformed floats per chunk: small, so the batch splits into several chunks.
        let chunkFloats: Int
        var testDescription: String { "\(input) -> \(cout) bias=\(bias) chunk=\(chunkFloats)" }
    }

    static let cases: [Case] = [
        Case(input: [5, 4, 8, 8], cout: 4, bias: false, chunkFloats: 16 * 16 * 8 * 2),
        Case(input: [4, 4, 7, 7], cout: 3, bias: true, chunkFloats: 1),
        Case(input: [3, 5, 5, 3], cout: 2, bias: true, chunkFloats: 16 * 6 * 7 * 2),
        Case(input: [3, 4, 1, 1], cout: 2, bias: true, chunkFloats: 1),
        Case(input: [1, 4, 6, 9], cout: 5, bias: false, chunkFloats: 1 << 18),
        Case(input: [6, 16, 14, 14], cout: 8, bias: true, chunkFloats: 16 * 49 * 24 * 2),
        // Rows of 10 tiles: more than one 8-tile vector per row, the last one partial.
        Case(input: [2, 4, 9, 19], cout: 3, bias: true, chunkFloats: 1),
        Case(input: [3, 4, 4, 34], cout: 2, bias: false, chunkFloats: 16 * 34 * 6 * 2),
    ]

    func make(_ c: Case, winograd: Bool) throws -> Convolution {
        let conv = try Conv2d(inChannels: c.input[1], outChannels: c.cout, kernel: 3, stride: 1, padding: 1, bias: c.bias)
        var rng = SeededGenerator(seed: 31)
        for p in conv.parameters { p.value = Tensor.randomNormal(p.value.shape, std: 0.5, using: &rng) }
        conv.usesWinograd = winograd
        conv.winograd.chunkFloats = c.chunkFloats
        conv.winograd.minimumTiles = 1   // the small cases too
        return conv
    }

    func inputs(_ c: Case) -> (Tensor, Tensor) {
        var rng = SeededGenerator(seed: 32)
        let x = Tensor.randomNormal(c.input, using: &rng)
        return (x, Tensor.randomNormal([c.input[0], c.cout, c.input[2], c.input[3]], using: &rng))
    }

    /// `[y, dx, dW, (db)]`.
    func run(_ conv: Convolution, _ x: Tensor, _ gy: Tensor) throws -> [Tensor] {
        let y = try conv.forward(x, mode: .train)
        let gx = try conv.backward(gy)
        return [y, gx] + conv.parameters.map { $0.gradient! }
    }

    /// Float64 direct convolution (3×3, stride 1, padding 1) and its gradients: `[y, dx, dW, db]`.
    func reference(_ conv: Convolution, _ x: Tensor, _ gy: Tensor, weight: Tensor? = nil) -> [[Double]] {
        let (n, ci, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), co = conv.outChannels
        let xs = x.scalars.map(Double.init), g = gy.scalars.map(Double.init)
        let ws = (weight ?? conv.weight.value).scalars.map(Double.init)
        let bs = conv.bias?.value.scalars.map(Double.init) ?? [Double](repeating: 0, count: co)
        var y = [Double](repeating: 0, count: n * co * h * w), dx = [Double](repeating: 0, count: xs.count)
        var dw = [Double](repeating: 0, count: ws.count), db = [Double](repeating: 0, count: co)
        for b in 0..<n { for o in 0..<co { for r in 0..<h { for s in 0..<w {
            let out = ((b * co + o) * h + r) * w + s
            var acc = bs[o]
            db[o] += g[out]
            for i in 0..<ci { for u in 0..<3 { for v in 0..<3 {
                let rr = r + u - 1, ss = s + v - 1
                guard rr >= 0, rr < h, ss >= 0, ss < w else { continue }
                let xi = ((b * ci + i) * h + rr) * w + ss, wi = ((o * ci + i) * 3 + u) * 3 + v
                acc += ws[wi] * xs[xi]
                dx[xi] += ws[wi] * g[out]
                dw[wi] += xs[xi] * g[out]
            }}}
            y[out] = acc
        }}}}
        return [y, dx, dw] + (conv.bias == nil ? [] : [db])
    }

    @Test(arguments: cases) func matchesFloat64AndIm2col(_ c: Case) throws {
        let a = try make(c, winograd: true), b = try make(c, winograd: false)
        #expect(a.engine(forShape: c.input) == .winograd && b.engine(forShape: c.input) == .chunkedIm2col)
        let (x, gy) = inputs(c)
        let want = reference(a, x, gy)
        for _ in 0..<2 {   // the second step reuses every buffer
            let wino = try run(a, x, gy), im2col = try run(b, x, gy)
            for (k, (u, v)) in zip(wino, im2col).enumerated() {
                #expect(u.shape == v.shape)
                let eu = relativeError(u.scalars.map(Double.init), want[k]), ev = relativeError(v.scalars.map(Double.init), want[k])
                #expect(eu < 1e-6 && eu <= 8 * ev + 1e-7, "tensor \(k): winograd \(eu), im2col \(ev)")
            }
        }
        #expect(a.winograd.imagesPerChunk(try a.geometry(forShape: c.input), outChannels: c.cout) < c.input[0] || c.input[0] == 1)
    }

    /// The cases small enough for central differences over every input and weight.
    static let smallCases = cases.filter { $0.input.reduce(1, *) < 2000 }

    @Test(arguments: smallCases) func finiteDifferences(_ c: Case) throws {
        let conv = try make(c, winograd: true)
        #expect(conv.engine(forShape: c.input) == .winograd)
        var rng = SeededGenerator(seed: 33)
        let x = Tensor.randomNormal(c.input, using: &rng)
        for (name, e) in try gradientErrors(conv, input: x) { #expect(e < 5e-3, "\(name): \(e)") }
    }

    @Test(arguments: cases) func bitIdenticalAcrossThreadCounts(_ c: Case) throws {
        let results = try resultsPerThreadCount {
            let conv = try make(c, winograd: true)
            let (x, gy) = inputs(c)
            return try run(conv, x, gy)
        }
        for r in results.dropFirst() {
            #expect(zip(r, results[0]).allSatisfy { $0.isBitIdentical(to: $1) })
        }
    }

    /// With weight standardization the engine computes with Ŵ and passes dŴ through it.
    @Test func weightStandardization() throws {
        let c = Self.cases[0]
        let a = try make(c, winograd: true), b = try make(c, winograd: false)
        a.weightStandardization = try WeightStandardization()
        b.weightStandardization = try WeightStandardization()
        let (x, gy) = inputs(c)
        let wino = try run(a, x, gy), im2col = try run(b, x, gy)
        let standardized = try WeightStandardization().standardize(a.weight.value)
        let want = reference(a, x, gy, weight: standardized.weight)
        for k in 0..<2 {   // y and dx against float64 with Ŵ
            #expect(relativeError(wino[k].scalars.map(Double.init), want[k]) < 1e-6)
        }
        for (u, v) in zip(wino, im2col) {   // dW through the standardization, against im2col
            #expect(relativeError(u.scalars.map(Double.init), v.scalars.map(Double.init)) < 1e-5)
        }
        for (name, e) in try gradientErrors(a, input: x) { #expect(e < 5e-3, "\(name): \(e)") }
    }

    @Test func frozenWeightsAndSkippedInputGradient() throws {
        let c = Self.cases[1]
        let conv = try make(c, winograd: true), reference = try make(c, winograd: false)
        conv.weight.requiresGrad = false
        conv.computesInputGradient = false
        let (x, gy) = inputs(c)
        _ = try conv.forward(x, mode: .train)
        #expect(try conv.backward(gy).count == 0)
        #expect(conv.weight.gradient == nil)
        let want = try run(reference, x, gy)
        let gb = try #require(conv.bias?.gradient)
        #expect(relativeError(gb.scalars.map(Double.init), want[3].scalars.map(Double.init)) < 1e-6)

        // Frozen bias, input gradient only.
        let partial = try make(c, winograd: true)
        partial.bias?.requiresGrad = false
        _ = try partial.forward(x, mode: .train)
        let gx = try partial.backward(gy)
        #expect(partial.bias?.gradient == nil)
        #expect(relativeError(gx.scalars.map(Double.init), want[1].scalars.map(Double.init)) < 2e-6)
        #expect(relativeError(try #require(partial.weight.gradient).scalars.map(Double.init), want[2].scalars.map(Double.init)) < 2e-6)
    }

    /// Only 2-D 3×3 convolutions with stride 1, padding 1, at least 4 input channels and at
    /// least `minimumTiles` tiles run on the engine (defaults).
    @Test func selectedOnlyForThreeByThreeStrideOnePaddingOne() throws {
        let input = [2, 4, 16, 16]   // 128 tiles
        let shapes: [(kernel: Int, stride: Int, padding: Int, winograd: Bool)] = [
            (3, 1, 1, true), (3, 2, 1, false), (1, 1, 0, false), (5, 1, 2, false), (3, 1, 0, false),
        ]
        for s in shapes {
            let conv = try Conv2d(inChannels: 4, outChannels: 3, kernel: s.kernel, stride: s.stride, padding: s.padding)
            conv.usesWinograd = true
            #expect((conv.engine(forShape: input) == .winograd) == s.winograd, "k\(s.kernel) s\(s.stride) p\(s.padding)")
        }
        let shallow = try Conv2d(inChannels: WinogradConvolution.minimumInputChannels - 1, outChannels: 3, kernel: 3, stride: 1, padding: 1)
        shallow.usesWinograd = true
        #expect(shallow.engine(forShape: [2, WinogradConvolution.minimumInputChannels - 1, 16, 16]) == .chunkedIm2col)
        let conv1d = try Conv1d(inChannels: 4, outChannels: 3, kernel: 3, stride: 1, padding: 1)
        conv1d.usesWinograd = true
        #expect(conv1d.engine(forShape: [2, 4, 16]) == .chunkedIm2col)
        let conv = try Conv2d(inChannels: 4, outChannels: 3, kernel: 3, stride: 1, padding: 1)
        conv.usesWinograd = false
        #expect(conv.engine(forShape: input) == .chunkedIm2col)
        // Fewer tiles than the minimum (2 images of 7×7: 32 tiles) stay on im2col, more take Winograd.
        conv.usesWinograd = true
        #expect(conv.winograd.minimumTiles == 64)
        #expect(conv.engine(forShape: [2, 4, 7, 7]) == .chunkedIm2col)
        #expect(conv.engine(forShape: [4, 4, 7, 7]) == .winograd)
        // The backward pass runs on the forward pass's engine.
        var rng = SeededGenerator(seed: 34)
        for (n, engine) in [(2, Convolution.Engine.chunkedIm2col), (4, .winograd)] {
            _ = try conv.forward(Tensor.randomNormal([n, 4, 7, 7], using: &rng), mode: .train)
            #expect(conv.forwardEngine == engine)
            #expect(try conv.backward(Tensor.randomNormal([n, 3, 7, 7], using: &rng)).shape == [n, 4, 7, 7])
        }
    }
}
