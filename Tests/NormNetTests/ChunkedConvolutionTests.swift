import Testing
import NormTestSupport
import NormCore
@testable import NormNet

/// The chunked convolution engine against the whole-batch im2col path (the reference), finite
/// differences, and itself across thread counts.
@Suite(.serialized) struct ChunkedConvolutionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let input: [Int], cout: Int, kernel: Int, stride: Int, pad: Int, bias: Bool
        /// Column floats per chunk: small, so the batch splits into several chunks (the last one short).
        let chunkFloats: Int
        var testDescription: String { "\(input) -> \(cout) k\(kernel) s\(stride) p\(pad) bias=\(bias) chunk=\(chunkFloats)" }
    }

    static let cases: [Case] = [
        Case(input: [5, 3, 8, 8], cout: 4, kernel: 3, stride: 1, pad: 1, bias: false, chunkFloats: 27 * 64 * 2),
        Case(input: [7, 2, 7, 7], cout: 3, kernel: 3, stride: 2, pad: 1, bias: true, chunkFloats: 18 * 16 * 3),
        Case(input: [4, 2, 20, 18], cout: 2, kernel: 3, stride: 1, pad: 1, bias: true, chunkFloats: 1),
        Case(input: [9, 3, 11], cout: 4, kernel: 5, stride: 2, pad: 2, bias: true, chunkFloats: 15 * 6 * 4),
    ]

    func make(_ c: Case, chunked: Bool) throws -> Convolution {
        let conv: Convolution = c.input.count == 4
            ? try Conv2d(inChannels: c.input[1], outChannels: c.cout, kernel: c.kernel, stride: c.stride, padding: c.pad, bias: c.bias)
            : try Conv1d(inChannels: c.input[1], outChannels: c.cout, kernel: c.kernel, stride: c.stride, padding: c.pad, bias: c.bias)
        var rng = SeededGenerator(seed: 21)
        for p in conv.parameters { p.value = Tensor.randomNormal(p.value.shape, std: 0.5, using: &rng) }
        conv.usesChunks = chunked
        conv.usesWinograd = false   // the im2col engines, also for the 3x3/s1/p1 cases
        conv.chunked.chunkFloats = c.chunkFloats
        return conv
    }

    func run(_ conv: Convolution, _ x: Tensor, _ gy: Tensor) throws -> [Tensor] {
        let y = try conv.forward(x, mode: .train)
        let gx = try conv.backward(gy)
        return [y, gx] + conv.parameters.map { $0.gradient! }
    }

    func inputs(_ c: Case, _ conv: Convolution) throws -> (Tensor, Tensor) {
        var rng = SeededGenerator(seed: 22)
        let x = Tensor.randomNormal(c.input, using: &rng)
        let outShape = [c.input[0]] + (try conv.outputShape(forSample: Array(c.input.dropFirst())))
        return (x, Tensor.randomNormal(outShape, using: &rng))
    }

    /// Small batches split into up to four chunks even when one chunk would fit them (so two
    /// images use two threads), and the split depends on the geometry only.
    @Test func smallBatchesSplitIntoUpToFourChunks() throws {
        let conv = try Conv2d(inChannels: 64, outChannels: 64, kernel: 3, stride: 1, padding: 1, bias: false)
        for (n, per) in [(1, 1), (2, 1), (4, 1), (8, 2), (32, 4), (128, 4)] {
            // 64·9 = 576 column rows × 49 positions: 4 images fit the default 128k floats.
            #expect(conv.chunked.imagesPerChunk(try conv.geometry(forShape: [n, 64, 7, 7])) == per, "N = \(n)")
        }
    }

    @Test(arguments: cases) func matchesTheWholeBatchPath(_ c: Case) throws {
        let a = try make(c, chunked: true), b = try make(c, chunked: false)
        #expect(a.chunked.imagesPerChunk(try a.geometry(forShape: c.input)) < c.input[0])
        let (x, gy) = try inputs(c, a)
        for _ in 0..<2 {   // the second step reuses every buffer
            for (u, v) in zip(try run(a, x, gy), try run(b, x, gy)) {
                #expect(u.shape == v.shape)
                #expect(relativeError(u.scalars.map(Double.init), v.scalars.map(Double.init)) < 1e-6)
            }
        }
    }

    @Test(arguments: cases) func finiteDifferences(_ c: Case) throws {
        let conv = try make(c, chunked: true)
        var rng = SeededGenerator(seed: 23)
        let x = Tensor.randomNormal(c.input, using: &rng)
        for (name, e) in try gradientErrors(conv, input: x) { #expect(e < 5e-3, "\(name): \(e)") }
    }

    @Test(arguments: cases) func bitIdenticalAcrossThreadCounts(_ c: Case) throws {
        let results = try resultsPerThreadCount {
            let conv = try make(c, chunked: true)
            let (x, gy) = try inputs(c, conv)
            return try run(conv, x, gy)
        }
        for r in results.dropFirst() {
            #expect(zip(r, results[0]).allSatisfy { $0.isBitIdentical(to: $1) })
        }
    }

    /// Weight standardization goes through the chunked engine like through the plain path.
    @Test func weightStandardizationMatchesTheWholeBatchPath() throws {
        let c = Self.cases[0]
        let a = try make(c, chunked: true), b = try make(c, chunked: false)
        a.weightStandardization = try WeightStandardization()
        b.weightStandardization = try WeightStandardization()
        let (x, gy) = try inputs(c, a)
        for (u, v) in zip(try run(a, x, gy), try run(b, x, gy)) {
            #expect(relativeError(u.scalars.map(Double.init), v.scalars.map(Double.init)) < 1e-5)
        }
    }

    @Test func frozenWeightsAndSkippedInputGradient() throws {
        let c = Self.cases[1]
        let conv = try make(c, chunked: true), reference = try make(c, chunked: false)
        conv.weight.requiresGrad = false
        conv.computesInputGradient = false
        let (x, gy) = try inputs(c, conv)
        _ = try conv.forward(x, mode: .train)
        #expect(try conv.backward(gy).count == 0)
        #expect(conv.weight.gradient == nil)
        _ = try run(reference, x, gy)
        let gb = try #require(conv.bias?.gradient), want = try #require(reference.bias?.gradient)
        #expect(relativeError(gb.scalars.map(Double.init), want.scalars.map(Double.init)) < 1e-6)
    }
}
