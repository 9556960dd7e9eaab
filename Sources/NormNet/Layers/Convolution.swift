import NormCore

/// A 1-D or 2-D convolution (cross-correlation, as PyTorch) computed as im2col + one
/// `cblas_sgemm` over the whole batch, with stride and zero padding. Weight shape
/// `(C_out, C_in, k)` (1-D) or `(C_out, C_in, kh, kw)` (2-D), optional bias `(C_out,)`.
///
/// Forward: `cols = im2col(x)` `(C_in·K, N·P)`, `Y = W · cols` `(C_out, N·P)`, permuted to
/// `(N, C_out, P)` with the bias added. Backward: `dW = dY · colsᵀ`, `dcols = Wᵀ · dY`,
/// `dx = col2im(dcols)`, `db = Σ dY`. Buffers are reused across steps.
///
/// That whole-batch path is the reference; training runs on one of two engines chosen per
/// shape (``engine(forShape:)``): ``WinogradConvolution`` (F(2×2, 3×3), 2.25× fewer multiplies) for 2-D
/// 3×3 convolutions with stride 1, padding 1, at least 4 input channels and a batch of at
/// least 64 output tiles, and
/// ``ChunkedConvolution`` (im2col over cache-sized chunks of images) for every other shape —
/// or for all of them with `NORMLAB_CONV=im2col`.
public class Convolution: Layer {
    public let inChannels: Int
    public let outChannels: Int
    /// Kernel extents `(kh, kw)`; `kh = 1` for 1-D.
    public let kernel: (h: Int, w: Int)
    public let stride: (h: Int, w: Int)
    public let padding: (h: Int, w: Int)
    /// 1 or 2 spatial axes.
    public let spatialRank: Int
    public let weight: Parameter
    public let bias: Parameter?
    public var computesInputGradient = true
    /// When set, the convolution computes with the standardized weight Ŵ (``WeightStandardization``);
    /// the parameter stays `W` and receives the gradient through the standardization.
    public var weightStandardization: WeightStandardization?

    private var standardized: WeightStandardization.Standardized?
    private var cachedInput: Tensor?
    private var geometry: ConvGeometry?
    private let cols = Scratch()
    private let product = Scratch()
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)
    /// The chunked engine (see ``ChunkedConvolution``); false selects the whole-batch
    /// im2col path above (kept as the reference the chunked one is tested against).
    var usesChunks = true
    let chunked = ChunkedConvolution()
    /// The Winograd engine (see ``WinogradConvolution``) for the 3×3, stride-1, padding-1
    /// 2-D shapes; false (or `NORMLAB_CONV=im2col`) keeps them on the im2col engines.
    var usesWinograd = WinogradConvolution.enabledByEnvironment
    let winograd = WinogradConvolution()
    /// The engines a ``Convolution`` can run on.
    enum Engine { case winograd, chunkedIm2col, im2col }
    /// The engine that computes an input of this shape.
    func engine(forShape shape: [Int]) -> Engine {
        if usesWinograd && winograd.applies(to: self, shape: shape) { return .winograd }
        return usesChunks ? .chunkedIm2col : .im2col
    }
    /// The engine of the last forward pass (its backward runs on the same one).
    private(set) var forwardEngine = Engine.im2col

    init(spatialRank: Int, inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
         bias: Bool, weightShape: [Int]) throws {
        guard inChannels > 0, outChannels > 0, kernel.0 > 0, kernel.1 > 0, stride.0 > 0, stride.1 > 0,
              padding.0 >= 0, padding.1 >= 0 else {
            throw NetError("conv: channels, kernel and stride must be positive and padding non-negative")
        }
        self.spatialRank = spatialRank
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        weight = Parameter(name: "weight", value: .zeros(weightShape))
        self.bias = bias ? Parameter(name: "bias", value: .zeros([outChannels])) : nil
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// Fan-in of one output unit: `C_in · kh · kw`.
    public var fanIn: Int { inChannels * kernel.h * kernel.w }

    func geometry(forShape shape: [Int]) throws -> ConvGeometry {
        guard shape.count == spatialRank + 2, shape[1] == inChannels, shape[0] > 0 else {
            let expected = spatialRank == 1 ? "(N, \(inChannels), L)" : "(N, \(inChannels), H, W)"
            throw NetError("conv\(spatialRank)d: input of shape \(shape.shapeText), expected \(expected)")
        }
        let h = spatialRank == 1 ? 1 : shape[2], w = shape[spatialRank + 1]
        let g = ConvGeometry(n: shape[0], channels: inChannels, h: h, w: w, kh: kernel.h, kw: kernel.w,
                             sh: stride.h, sw: stride.w, ph: padding.h, pw: padding.w)
        guard g.isValid else {
            throw NetError("conv\(spatialRank)d: kernel \(kernel.h)x\(kernel.w) larger than the padded input of shape \(shape.shapeText)")
        }
        return g
    }

    func geometry(for x: Tensor) throws -> ConvGeometry { try geometry(forShape: x.shape) }

    func outputShape(_ g: ConvGeometry) -> [Int] {
        spatialRank == 1 ? [g.n, outChannels, g.outW] : [g.n, outChannels, g.outH, g.outW]
    }

    /// The per-sample output shape for a per-sample input shape `(C_in, spatial...)`.
    public func outputShape(forSample shape: [Int]) throws -> [Int] {
        Array(outputShape(try geometry(forShape: [1] + shape)).dropFirst())
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        forwardEngine = engine(forShape: x.shape)
        switch forwardEngine {
        case .winograd: return try winograd.forward(self, x)
        case .chunkedIm2col: return try chunked.forward(self, x)
        case .im2col: break
        }
        let g = try geometry(for: x)
        let P = g.outPlane, columns = g.n * P
        let colsPtr = cols.reserve(g.patch * columns)
        x.withUnsafeBufferPointer { Im2Col.forward($0.baseAddress!, g, cols: colsPtr) }
        let prod = product.reserve(outChannels * columns)
        standardized = weightStandardization?.standardize(weight.value)
        (standardized?.weight ?? weight.value).withUnsafeBufferPointer { w in
            Gemm.multiply(m: outChannels, n: columns, k: g.patch, a: w.baseAddress!, b: colsPtr, c: prod)
        }
        let y = output.tensor(shape: outputShape(g))
        y.withUnsafeOutputBuffer { yb in
            if let bias {
                bias.value.withUnsafeBufferPointer { b in
                    Im2Col.channelMajorToBatchMajor(prod, n: g.n, c: outChannels, p: P, bias: b.baseAddress!, into: yb.baseAddress!)
                }
            } else {
                Im2Col.channelMajorToBatchMajor(prod, n: g.n, c: outChannels, p: P, bias: nil, into: yb.baseAddress!)
            }
        }
        cachedInput = x
        geometry = g
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        switch forwardEngine {
        case .winograd: return try winograd.backward(self, gradOutput)
        case .chunkedIm2col: return try chunked.backward(self, gradOutput)
        case .im2col: break
        }
        guard let x = cachedInput, let g = geometry else { throw NetError("conv\(spatialRank)d: backward before forward") }
        guard gradOutput.shape == outputShape(g) else {
            throw NetError("conv\(spatialRank)d: gradient of shape \(gradOutput.shape.shapeText), expected \(outputShape(g).shapeText)")
        }
        let P = g.outPlane, columns = g.n * P
        let gy = product.reserve(outChannels * columns)
        gradOutput.withUnsafeBufferPointer {
            Im2Col.batchMajorToChannelMajor($0.baseAddress!, n: g.n, c: outChannels, p: P, into: gy)
        }
        if let bias {
            if bias.requiresGrad {
                var gb = [Double](repeating: 0, count: outChannels)
                gb.withUnsafeMutableBufferPointer { gbb in
                    VectorKernels.parallel(outChannels, work: columns * outChannels) { range in
                        for c in range { gbb[c] = VectorKernels.sum(gy + c * columns, length: columns) }
                    }
                }
                bias.gradient = Tensor(shape: [outChannels], doubles: gb)
            } else {
                bias.gradient = nil
            }
        }
        let colsPtr = cols.pointer
        if weight.requiresGrad {
            let gw = Tensor(shape: weight.value.shape) { gwb in
                Gemm.multiply(transB: true, m: outChannels, n: g.patch, k: columns, a: gy, b: colsPtr, c: gwb.baseAddress!)
            }
            weight.gradient = standardized?.weightGradient(gw) ?? gw
        } else {
            weight.gradient = nil
        }
        defer { cachedInput = nil }
        guard computesInputGradient else { return .skippedGradient }
        // dcols = Wᵀ · dY overwrites the forward columns (no longer needed).
        let dcols = colsPtr
        (standardized?.weight ?? weight.value).withUnsafeBufferPointer { w in
            Gemm.multiply(transA: true, m: g.patch, n: columns, k: outChannels, a: w.baseAddress!, b: gy, c: dcols)
        }
        let gx = gradInput.tensor(shape: x.shape)
        gx.withUnsafeOutputBuffer { Im2Col.backward(dcols, g, dx: $0.baseAddress!) }
        return gx
    }
}
