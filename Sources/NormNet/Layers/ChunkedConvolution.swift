import NormCore

/// The im2col convolution engine for a ``Convolution`` (every shape the Winograd engine,
/// ``WinogradConvolution``, does not take): im2col + sgemm over fixed chunks of whole
/// images, each chunk's column matrix small enough to stay in the core's cache.
///
/// The plain engine builds one `(C_in·kh·kw, N·P)` column matrix for the whole batch
/// (megabytes at B = 32 on an 8×8 map with 32 channels) and streams it through memory
/// four times per step (im2col, `W·cols`, `dY·colsᵀ`, col2im). Here a chunk of
/// `imagesPerChunk` images (about 128k column floats, half a megabyte: inside one core's L2
/// cache, and deep enough that the weight-gradient product `dY·colsᵀ` runs on the AVX-512
/// kernel, see ``Gemm``) is expanded, multiplied and — in the
/// backward pass — re-expanded from the cached input, multiplied into its own weight-gradient
/// partial and folded back into `dx` while still in cache; the output permute
/// `(C, n·P) → (n, C, P)` is done per chunk as well.
///
/// Determinism: the chunks depend only on the geometry (never on the thread count), every
/// chunk is computed by one thread with single-threaded sgemm calls, and the weight and bias
/// gradients are the chunk partials summed in chunk order — so results are bit-identical
/// for every thread count.
final class ChunkedConvolution {
    /// Column floats per chunk (a chunk holds at least one image; measured on ResNet-20 at
    /// B = 128: 2^17 takes 8 % less CPU per step than 2^16); tests lower it to get
    /// many chunks from small inputs.
    var chunkFloats = 1 << 17

    private var cachedInput: Tensor?
    private var geometry: ConvGeometry?
    /// The standardized weight of the last forward when the convolution has
    /// ``Convolution/weightStandardization`` (used by its backward, as in the plain path).
    private var standardized: WeightStandardization.Standardized?
    /// Scratch per chunk index; a thread's range of chunks reuses its first chunk's slot.
    private var slots: [Scratch] = []
    private let partials = Scratch()
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    /// Images per chunk: as many as fit in ``chunkFloats``, but at most a quarter of the batch
    /// (rounded up), so even small batches split into up to four chunks for the thread pool
    /// (as ``WinogradConvolution/imagesPerChunk(_:outChannels:)``; measured: ResNet-20 at B = 2,
    /// whose 7×7 stage and strided convolutions took one chunk on one thread, 5 % faster a step).
    func imagesPerChunk(_ g: ConvGeometry) -> Int {
        max(1, min((g.n + 3) / 4, chunkFloats / max(1, g.patch * g.outPlane)))
    }

    /// The first image, the image count and the geometry of chunk `chunk` (`per` images a
    /// chunk, the last one possibly short).
    private static func images(of chunk: Int, per: Int, in g: ConvGeometry) -> (first: Int, count: Int, geometry: ConvGeometry) {
        let first = chunk * per
        var cg = g
        cg.n = min(per, g.n - first)
        return (first, cg.n, cg)
    }

    private func ensureSlots(_ count: Int) {
        while slots.count < count { slots.append(Scratch()) }
    }

    func forward(_ conv: Convolution, _ x: Tensor) throws -> Tensor {
        let g = try conv.geometry(for: x)
        let per = imagesPerChunk(g), chunks = (g.n + per - 1) / per
        let cout = conv.outChannels, P = g.outPlane, inImage = g.channels * g.inPlane, patch = g.patch
        ensureSlots(chunks)
        let bias = conv.bias?.value.scalars
        let y = output.tensor(shape: conv.outputShape(g))
        let slots = self.slots
        standardized = conv.weightStandardization?.standardize(conv.weight.value)
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in (standardized?.weight ?? conv.weight.value).withUnsafeBufferPointer { wb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!, w = wb.baseAddress!
            Parallel.forEach(chunks, work: patch * g.n * P * cout) { range in
                let scratch = slots[range.lowerBound]
                for chunk in range {
                    let (n0, count, cg) = Self.images(of: chunk, per: per, in: g)
                    let columns = count * P
                    let cols = scratch.reserve((patch + cout) * per * P)
                    Im2Col.forward(xp + n0 * inImage, cg, cols: cols, serial: true)
                    // One image without bias: its (C_out, P) product is already the output's layout.
                    if count == 1 && bias == nil {
                        Gemm.multiplySerial(m: cout, n: columns, k: patch, a: w, b: cols, c: yp + n0 * cout * P)
                        continue
                    }
                    let prod = cols + patch * columns
                    Gemm.multiplySerial(m: cout, n: columns, k: patch, a: w, b: cols, c: prod)
                    for i in 0..<count {
                        for c in 0..<cout {
                            let s = prod + c * columns + i * P, d = yp + ((n0 + i) * cout + c) * P
                            if let bias {
                                let v = bias[c]
                                for p in 0..<P { d[p] = s[p] + v }
                            } else {
                                d.update(from: s, count: P)
                            }
                        }
                    }
                }
            }
        }}}
        cachedInput = x
        geometry = g
        return y
    }

    /// `(count, C, P)` → `(C, count·P)` into `dst`; returns `dst`.
    private func gatherChannelMajor(_ src: UnsafePointer<Float>, count: Int, channels: Int, plane: Int,
                                    into dst: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let columns = count * plane
        for i in 0..<count {
            for c in 0..<channels { (dst + c * columns + i * plane).update(from: src + (i * channels + c) * plane, count: plane) }
        }
        return UnsafePointer(dst)
    }

    func backward(_ conv: Convolution, _ gradOutput: Tensor) throws -> Tensor {
        guard let x = cachedInput, let g = geometry else { throw NetError("conv\(conv.spatialRank)d: backward before forward") }
        guard gradOutput.shape == conv.outputShape(g) else {
            throw NetError("conv\(conv.spatialRank)d: gradient of shape \(gradOutput.shape.shapeText), expected \(conv.outputShape(g).shapeText)")
        }
        defer { cachedInput = nil }
        let per = imagesPerChunk(g), chunks = (g.n + per - 1) / per
        let cout = conv.outChannels, P = g.outPlane, inImage = g.channels * g.inPlane, patch = g.patch
        let wantsWeight = conv.weight.requiresGrad
        let wantsBias = conv.bias?.requiresGrad ?? false
        let wantsInput = conv.computesInputGradient
        ensureSlots(chunks)
        let slots = self.slots
        let weightPartials = partials.reserve(max(1, chunks * cout * patch))
        var biasPartials = [Double](repeating: 0, count: wantsBias ? chunks * cout : 0)
        let gx: Tensor? = wantsInput ? gradInput.tensor(shape: x.shape) : nil
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in
        (standardized?.weight ?? conv.weight.value).withUnsafeBufferPointer { wb in
        biasPartials.withUnsafeMutableBufferPointer { bp in
            let xp = xb.baseAddress!, gp = gb.baseAddress!, w = wb.baseAddress!
            let dxp: UnsafeMutablePointer<Float>? = gx?.withUnsafeOutputBuffer { $0.baseAddress! }
            Parallel.forEach(chunks, work: 2 * patch * g.n * P * cout) { range in
                let scratch = slots[range.lowerBound]
                for chunk in range {
                    let (n0, count, cg) = Self.images(of: chunk, per: per, in: g)
                    let columns = count * P
                    let cols = scratch.reserve((patch + cout) * per * P)
                    // One image's (C_out, P) gradient is already the chunk's layout; more are gathered.
                    let gy = count == 1 ? gp + n0 * cout * P : gatherChannelMajor(gp + n0 * cout * P, count: count, channels: cout,
                                                                                  plane: P, into: cols + patch * columns)
                    if wantsBias {
                        for c in 0..<cout { bp[chunk * cout + c] = VectorKernels.sum(gy + c * columns, length: columns) }
                    }
                    if wantsWeight {
                        Im2Col.forward(xp + n0 * inImage, cg, cols: cols, serial: true)
                        Gemm.multiplySerial(transB: true, m: cout, n: patch, k: columns, a: gy, b: cols,
                                            c: weightPartials + chunk * cout * patch)
                    }
                    if let dxp {
                        // dcols = Wᵀ · dY overwrites this chunk's columns (no longer needed).
                        Gemm.multiplySerial(transA: true, m: patch, n: columns, k: cout, a: w, b: gy, c: cols)
                        Im2Col.backward(cols, cg, dx: dxp + n0 * inImage, serial: true)
                    }
                }
            }
        }}}}
        conv.setBiasGradient(chunkPartials: biasPartials, chunks: chunks)
        if wantsWeight {
            let size = cout * patch
            let gw = Tensor(shape: conv.weight.value.shape) { gw in
                let d = gw.baseAddress!
                d.update(from: weightPartials, count: size)
                for chunk in 1..<max(1, chunks) {
                    let s = weightPartials + chunk * size
                    for e in 0..<size { d[e] += s[e] }
                }
            }
            conv.weight.gradient = standardized?.weightGradient(gw) ?? gw
        } else {
            conv.weight.gradient = nil
        }
        return gx ?? .skippedGradient
    }
}
