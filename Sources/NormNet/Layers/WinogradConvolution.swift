import Foundation
import NormCore
import NormKernelsC

/// The convolution engine for the 3×3, stride-1, padding-1 2-D convolutions of a
/// ``Convolution``: Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016, "Fast
/// Algorithms for Convolutional Neural Networks", section 4.1), 16 multiplies per 2×2 output
/// tile and input channel instead of im2col's 36 (2.25× fewer).
///
/// Forward, with the transforms of `Sources/NormKernelsC/Winograd.c`:
/// `U[ξ] = G·g·Gᵀ` per `(c_out, c_in)` (once per call, kept for the backward pass),
/// `V[ξ] = Bᵀ·d·B` per 4×4 input window (stride 2, zero-padded), the 16 products
/// `M[ξ] = U[ξ]·V[ξ]` (`(C_out, C_in)·(C_in, T)`, T tiles), `y = Aᵀ·M·A` cropped, plus the bias.
/// Backward, the exact adjoint in the same domain: `Ŷ[ξ] = A·dy·Aᵀ`, `dV[ξ] = U[ξ]ᵀ·Ŷ[ξ]`,
/// `dx = Σ B·dV·Bᵀ` over the overlapping windows, `dU[ξ] = Ŷ[ξ]·V[ξ]ᵀ` (V recomputed from the
/// cached input, never stored), `dW = Gᵀ·dU·G`, `db = Σ dy`. With
/// ``Convolution/weightStandardization`` the engine computes with Ŵ and passes the gradient
/// through it, as the im2col engines do.
///
/// The error is a small constant times im2col's (the interpolation points 0, ±1 and G's
/// entries ½ are exact in binary; the transforms add and subtract up to 4 terms per axis).
///
/// Work and determinism as ``ChunkedConvolution``: fixed chunks of whole images, sized by the
/// geometry alone so a chunk's transformed input and products stay in the core's cache, each
/// chunk on one thread with single-threaded products, weight and bias gradients summed over
/// chunks in chunk order — results are bit-identical for every thread count.
///
/// Selected automatically for those shapes (from ``minimumInputChannels`` input channels and
/// ``minimumTiles`` output tiles a batch); `NORMLAB_CONV=im2col` (``environmentVariable``)
/// keeps every convolution on the im2col engine, to compare the two in one session.
final class WinogradConvolution {
    /// The environment variable that, set to `im2col`, turns this engine off.
    static let environmentVariable = "NORMLAB_CONV"
    /// Whether new convolutions use this engine where it applies (the environment's choice).
    static let enabledByEnvironment = ProcessInfo.processInfo.environment[environmentVariable] != "im2col"

    /// Transformed floats (input and output side, 16 per tile and channel) per chunk; a chunk
    /// holds at least one image. Tests lower it to get many chunks from small inputs.
    var chunkFloats = 1 << 17
    /// Floats between consecutive ξ matrices beyond `C·T` (64 bytes): keeps the 16 streams a
    /// transform reads or writes in different cache sets (`C·T` alone is often a multiple of
    /// 4 KiB), and holds the up to 7 floats the transforms' last 8-tile vector writes past a matrix.
    static let matrixPadding = 16

    /// The distance between consecutive ξ matrices of `channels` rows and `T` columns.
    static func matrixStride(_ channels: Int, _ T: Int) -> Int { channels * T + matrixPadding }

    /// Scratch floats per chunk: the input-side and the output-side domain of `per` images.
    func chunkScratch(_ g: ConvGeometry, outChannels: Int, per: Int) -> Int {
        let T = per * Self.tiles(g)
        return 16 * (Self.matrixStride(g.channels, T) + Self.matrixStride(outChannels, T))
    }

    private var cachedInput: Tensor?
    private var geometry: ConvGeometry?
    private var standardized: WeightStandardization.Standardized?
    /// `U`, 16 `(C_out, C_in)` matrices of the last forward's (standardized) weight.
    private let filter = Scratch()
    private var slots: [Scratch] = []
    private let partials = Scratch()
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    /// Whether the engine computes `conv` for an input of `shape`: 2-D, kernel 3×3, stride 1,
    /// padding 1, at least ``minimumInputChannels`` input channels and ``minimumTiles`` tiles.
    func applies(to conv: Convolution, shape: [Int]) -> Bool {
        guard conv.spatialRank == 2, conv.kernel == (3, 3), conv.stride == (1, 1), conv.padding == (1, 1),
              conv.inChannels >= Self.minimumInputChannels, shape.count == 4 else { return false }
        return shape[0] * ((shape[2] + 1) / 2) * ((shape[3] + 1) / 2) >= minimumTiles
    }
    /// Smaller batches (`N · ceil(H/2) · ceil(W/2)` tiles) stay on im2col: 16 products this
    /// thin cost more in call overhead than they save (measured: ResNet-20 at B = 2 takes 10 %
    /// less CPU per step when its 7×7 stage, 32 tiles, stays on im2col; plain-2d at B = 2, 8×8
    /// maps, 32 tiles, 12 % less). Tests lower it.
    var minimumTiles = 64
    /// Fewer input channels stay on im2col (a network's first convolution, 1 or 3 channels):
    /// its 16 products of depth `C_in` are too shallow to pay for the transforms (measured on
    /// plain-2d, 1 → 32 channels on 8×8: the whole step took 4–8 % more CPU time on Winograd).
    static let minimumInputChannels = 4

    /// Tiles per image: `ceil(H/2) · ceil(W/2)`.
    static func tiles(_ g: ConvGeometry) -> Int { ((g.h + 1) / 2) * ((g.w + 1) / 2) }

    /// Images per chunk: as many as fit in ``chunkFloats``, but at most a quarter of the batch
    /// (rounded up), so even small batches split into up to four chunks for the thread pool.
    func imagesPerChunk(_ g: ConvGeometry, outChannels: Int) -> Int {
        let fitting = chunkFloats / max(1, 16 * Self.tiles(g) * (g.channels + outChannels))
        return max(1, min((g.n + 3) / 4, fitting))
    }

    private func ensureSlots(_ count: Int) {
        while slots.count < count { slots.append(Scratch()) }
    }

    func forward(_ conv: Convolution, _ x: Tensor) throws -> Tensor {
        let g = try conv.geometry(for: x)
        let cin = g.channels, cout = conv.outChannels, plane = g.inPlane
        let per = imagesPerChunk(g, outChannels: cout), chunks = (g.n + per - 1) / per
        let tiles = Self.tiles(g), scratchSize = chunkScratch(g, outChannels: cout, per: per)
        standardized = conv.weightStandardization?.standardize(conv.weight.value)
        let u = filter.reserve(16 * cout * cin)
        (standardized?.weight ?? conv.weight.value).withUnsafeBufferPointer { nk_wino_filter($0.baseAddress!, cout, cin, u) }
        ensureSlots(chunks)
        let slots = self.slots
        let y = output.tensor(shape: conv.outputShape(g))
        let bias = conv.bias?.value.scalars ?? []
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in bias.withUnsafeBufferPointer { bb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!, bp = bias.isEmpty ? nil : bb.baseAddress
            Parallel.forEach(chunks, work: 16 * g.n * tiles * cin * cout) { range in
                let scratch = slots[range.lowerBound]
                for chunk in range {
                    let n0 = chunk * per, count = min(per, g.n - n0), T = count * tiles
                    let ldIn = Self.matrixStride(cin, T), ldOut = Self.matrixStride(cout, T)
                    let v = scratch.reserve(scratchSize), m = v + 16 * ldIn
                    nk_wino_input(xp + n0 * cin * plane, count, cin, g.h, g.w, v, ldIn)
                    for xi in 0..<16 {
                        Gemm.multiplySerial(m: cout, n: T, k: cin, a: u + xi * cout * cin, b: v + xi * ldIn, c: m + xi * ldOut)
                    }
                    nk_wino_output(m, ldOut, count, cout, g.h, g.w, bp, yp + n0 * cout * plane)
                }
            }
        }}}
        cachedInput = x
        geometry = g
        return y
    }

    func backward(_ conv: Convolution, _ gradOutput: Tensor) throws -> Tensor {
        guard let x = cachedInput, let g = geometry else { throw NetError("conv\(conv.spatialRank)d: backward before forward") }
        guard gradOutput.shape == conv.outputShape(g) else {
            throw NetError("conv\(conv.spatialRank)d: gradient of shape \(gradOutput.shape.shapeText), expected \(conv.outputShape(g).shapeText)")
        }
        defer { cachedInput = nil }
        let cin = g.channels, cout = conv.outChannels, plane = g.inPlane, tiles = Self.tiles(g)
        let per = imagesPerChunk(g, outChannels: cout), chunks = (g.n + per - 1) / per
        let scratchSize = chunkScratch(g, outChannels: cout, per: per)
        let wantsWeight = conv.weight.requiresGrad
        let wantsBias = conv.bias?.requiresGrad ?? false
        let wantsInput = conv.computesInputGradient
        ensureSlots(chunks)
        let slots = self.slots
        let filterSize = 16 * cout * cin
        let weightPartials = partials.reserve(max(1, wantsWeight ? chunks * filterSize : 1))
        var biasPartials = [Double](repeating: 0, count: wantsBias ? chunks * cout : 0)
        let gx: Tensor? = wantsInput ? gradInput.tensor(shape: x.shape) : nil
        let u = UnsafePointer(filter.pointer)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in biasPartials.withUnsafeMutableBufferPointer { bp in
            let xp = xb.baseAddress!, gp = gb.baseAddress!
            let dxp: UnsafeMutablePointer<Float>? = gx?.withUnsafeOutputBuffer { $0.baseAddress! }
            Parallel.forEach(chunks, work: 32 * g.n * tiles * cin * cout) { range in
                let scratch = slots[range.lowerBound]
                for chunk in range {
                    let n0 = chunk * per, count = min(per, g.n - n0), T = count * tiles
                    let ldIn = Self.matrixStride(cin, T), ldOut = Self.matrixStride(cout, T)
                    let yhat = scratch.reserve(scratchSize), v = yhat + 16 * ldOut
                    let dy = gp + n0 * cout * plane
                    if wantsBias {
                        for c in 0..<cout {
                            var s = 0.0
                            for i in 0..<count { s += VectorKernels.sum(dy + (i * cout + c) * plane, length: plane) }
                            bp[chunk * cout + c] = s
                        }
                    }
                    guard wantsWeight || dxp != nil else { continue }
                    nk_wino_output_adjoint(dy, count, cout, g.h, g.w, yhat, ldOut)
                    if wantsWeight {
                        nk_wino_input(xp + n0 * cin * plane, count, cin, g.h, g.w, v, ldIn)
                        for xi in 0..<16 {
                            Gemm.multiplySerial(transB: true, m: cout, n: cin, k: T, a: yhat + xi * ldOut, b: v + xi * ldIn,
                                                c: weightPartials + chunk * filterSize + xi * cout * cin)
                        }
                    }
                    if let dxp {
                        // dV overwrites V (no longer needed).
                        for xi in 0..<16 {
                            Gemm.multiplySerial(transA: true, m: cin, n: T, k: cout, a: u + xi * cout * cin, b: yhat + xi * ldOut,
                                                c: v + xi * ldIn)
                        }
                        nk_wino_input_adjoint(v, ldIn, count, cin, g.h, g.w, dxp + n0 * cin * plane)
                    }
                }
            }
        }}}
        conv.setBiasGradient(chunkPartials: biasPartials, chunks: chunks)
        if wantsWeight {
            for chunk in 1..<max(1, chunks) {
                let s = weightPartials + chunk * filterSize
                for e in 0..<filterSize { weightPartials[e] += s[e] }
            }
            let gw = Tensor(shape: conv.weight.value.shape) { nk_wino_filter_adjoint(weightPartials, cout, cin, $0.baseAddress!) }
            conv.weight.gradient = standardized?.weightGradient(gw) ?? gw
        } else {
            conv.weight.gradient = nil
        }
        return gx ?? .skippedGradient
    }
}
