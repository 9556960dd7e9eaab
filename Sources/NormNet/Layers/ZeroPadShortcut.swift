import NormCore

/// The parameter-free option-A shortcut of He et al. 2016 (§3.3, §4.2): the identity,
/// subsampled by `stride` on every spatial axis (`x[:, :, ::s, ::s]`) and zero-padded from
/// `inChannels` to `outChannels` (the input channels first, zeros after). Inputs `(N, C, L)`
/// or `(N, C, H, W)`; the output extent `⌈H/s⌉` matches a stride-`s` convolution with
/// "same" padding.
public final class ZeroPadShortcut: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let stride: Int
    public var computesInputGradient = true
    private var cachedShape: [Int]?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init(inChannels: Int, outChannels: Int, stride: Int) throws {
        guard inChannels > 0, outChannels >= inChannels, stride >= 1 else {
            throw NetError("zero-pad shortcut: need 0 < in channels <= out channels and stride >= 1, got \(inChannels) -> \(outChannels), stride \(stride)")
        }
        self.inChannels = inChannels; self.outChannels = outChannels; self.stride = stride
    }

    public var parameters: [Parameter] { [] }

    /// `(h, w, outH, outW)` of one plane; 1-D inputs are `h = 1` (not subsampled vertically).
    private func planes(_ shape: [Int]) throws -> (h: Int, w: Int, oh: Int, ow: Int) {
        guard shape.count == 3 || shape.count == 4, shape[1] == inChannels, shape.allSatisfy({ $0 > 0 }) else {
            throw NetError("zero-pad shortcut: input of shape \(shape.shapeText), expected (N, \(inChannels), spatial...)")
        }
        let h = shape.count == 4 ? shape[2] : 1, w = shape.last!
        let oh = shape.count == 4 ? (h + stride - 1) / stride : 1
        return (h, w, oh, (w + stride - 1) / stride)
    }

    private func outputShape(_ shape: [Int], _ p: (h: Int, w: Int, oh: Int, ow: Int)) -> [Int] {
        shape.count == 4 ? [shape[0], outChannels, p.oh, p.ow] : [shape[0], outChannels, p.ow]
    }

    /// The per-sample output shape for a per-sample input `(C, spatial...)`.
    public func outputShape(forSample shape: [Int]) throws -> [Int] {
        Array(outputShape([1] + shape, try planes([1] + shape)).dropFirst())
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let p = try planes(x.shape), n = x.shape[0], s = stride
        let inPlane = p.h * p.w, outPlane = p.oh * p.ow, rowStride = x.rank == 4 ? s : 1
        let y = output.tensor(shape: outputShape(x.shape, p))
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!
            for i in 0..<n {
                for c in 0..<outChannels {
                    let dst = yp + (i * outChannels + c) * outPlane
                    guard c < inChannels else { dst.initialize(repeating: 0, count: outPlane); continue }
                    let src = xp + (i * inChannels + c) * inPlane
                    for oy in 0..<p.oh {
                        let row = src + oy * rowStride * p.w, out = dst + oy * p.ow
                        for ox in 0..<p.ow { out[ox] = row[ox * s] }
                    }
                }
            }
        }}
        cachedShape = x.shape
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let shape = cachedShape else { throw NetError("zero-pad shortcut: backward before forward") }
        let p = try planes(shape), n = shape[0], s = stride
        guard gradOutput.shape == outputShape(shape, p) else {
            throw NetError("zero-pad shortcut: gradient of shape \(gradOutput.shape.shapeText), expected \(outputShape(shape, p).shapeText)")
        }
        guard computesInputGradient else { return .skippedGradient }
        let inPlane = p.h * p.w, outPlane = p.oh * p.ow, rowStride = shape.count == 4 ? s : 1
        let gx = gradInput.zeros(shape: shape)
        gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { xb in
            let gp = gb.baseAddress!, xp = xb.baseAddress!
            for i in 0..<n {
                for c in 0..<inChannels {
                    let src = gp + (i * outChannels + c) * outPlane, dst = xp + (i * inChannels + c) * inPlane
                    for oy in 0..<p.oh {
                        let row = dst + oy * rowStride * p.w, g = src + oy * p.ow
                        for ox in 0..<p.ow { row[ox * s] = g[ox] }
                    }
                }
            }
        }}
        return gx
    }
}
