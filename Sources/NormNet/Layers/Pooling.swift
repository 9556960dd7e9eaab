import NormCore

/// The window of a 1-D or 2-D pooling layer (`kernel`, `stride`, `padding` per spatial axis).
public struct PoolWindow: Sendable, Equatable {
    public let kernel: [Int]
    public let stride: [Int]
    public let padding: [Int]

    /// `stride` defaults to the kernel (PyTorch); one entry per spatial axis (1 or 2 of them).
    public init(kernel: [Int], stride: [Int]? = nil, padding: [Int]? = nil) throws {
        let s = stride ?? kernel, p = padding ?? kernel.map { _ in 0 }
        guard (1...2).contains(kernel.count), s.count == kernel.count, p.count == kernel.count,
              kernel.allSatisfy({ $0 > 0 }), s.allSatisfy({ $0 > 0 }), p.allSatisfy({ $0 >= 0 }),
              zip(kernel, p).allSatisfy({ $1 * 2 <= $0 }) else {
            throw NetError("pool: kernel/stride/padding need 1 or 2 positive entries each, padding at most half the kernel")
        }
        self.kernel = kernel; self.stride = s; self.padding = p
    }

    var spatialRank: Int { kernel.count }

    func geometry(_ shape: [Int], _ name: String) throws -> ConvGeometry {
        guard shape.count == spatialRank + 2, shape.allSatisfy({ $0 > 0 }) else {
            throw NetError("\(name): input of shape \(shape.shapeText), expected rank \(spatialRank + 2)")
        }
        let two = spatialRank == 2
        let g = ConvGeometry(n: shape[0], channels: shape[1], h: two ? shape[2] : 1, w: shape.last!,
                             kh: two ? kernel[0] : 1, kw: kernel.last!, sh: two ? stride[0] : 1, sw: stride.last!,
                             ph: two ? padding[0] : 0, pw: padding.last!)
        guard g.isValid else { throw NetError("\(name): window larger than the input of shape \(shape.shapeText)") }
        return g
    }

    func outputShape(_ g: ConvGeometry) -> [Int] {
        spatialRank == 1 ? [g.n, g.channels, g.outW] : [g.n, g.channels, g.outH, g.outW]
    }

    /// The per-sample output shape for a per-sample input `(C, spatial...)`.
    public func outputShape(forSample shape: [Int]) throws -> [Int] {
        Array(outputShape(try geometry([1] + shape, "pool")).dropFirst())
    }
}

/// Max pooling (`nn.MaxPool1d/2d`, padding counts as −∞). The gradient goes to the first
/// maximum of each window.
public final class MaxPool: Layer {
    public let window: PoolWindow
    public var computesInputGradient = true
    private var argmax: [Int32] = []
    private var cached: (shape: [Int], g: ConvGeometry)?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init(_ window: PoolWindow) { self.window = window }
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let g = try window.geometry(x.shape, "max_pool")
        let planes = g.n * g.channels, P = g.outPlane
        if argmax.count != planes * P { argmax = [Int32](repeating: 0, count: planes * P) }
        let y = output.tensor(shape: window.outputShape(g))
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in argmax.withUnsafeMutableBufferPointer { ab in
            let xp = xb.baseAddress!, yp = yb.baseAddress!, ap = ab.baseAddress!
            VectorKernels.parallel(planes, work: planes * g.inPlane) { range in
                for p in range {
                    let src = xp + p * g.inPlane
                    if g.kh == 1 && g.kw == 2 && g.sw == 2 && g.pw == 0 && g.sh == 1 {
                        // The common 1-D window of 2: branch-free pairs (NaN propagates).
                        let out = yp + p * P, arg = ap + p * P
                        for oy in 0..<g.outH {
                            let row = src + oy * g.w, base = oy * g.w
                            for ox in 0..<g.outW {
                                let a = row[2 * ox], b = row[2 * ox + 1]
                                let takeB = b > a || b != b
                                out[oy * g.outW + ox] = takeB ? b : a
                                arg[oy * g.outW + ox] = Int32(base + 2 * ox + (takeB ? 1 : 0))
                            }
                        }
                        continue
                    }
                    if g.ph == 0 && g.pw == 0 {
                        // Every window lies inside the input: no bounds checks.
                        for oy in 0..<g.outH {
                            let row = oy * g.sh * g.w
                            for ox in 0..<g.outW {
                                let first = row + ox * g.sw
                                var best = src[first], at = first
                                for i in 0..<g.kh {
                                    let base = first + i * g.w
                                    for j in 0..<g.kw {
                                        let v = src[base + j]
                                        if v > best || (v.isNaN && !best.isNaN) { best = v; at = base + j }
                                    }
                                }
                                let o = p * P + oy * g.outW + ox
                                yp[o] = best; ap[o] = Int32(at)
                            }
                        }
                        continue
                    }
                    for oy in 0..<g.outH {
                        for ox in 0..<g.outW {
                            var best = -Float.infinity, at = -1
                            for i in 0..<g.kh {
                                let iy = oy * g.sh - g.ph + i
                                if iy < 0 || iy >= g.h { continue }
                                for j in 0..<g.kw {
                                    let ix = ox * g.sw - g.pw + j
                                    if ix < 0 || ix >= g.w { continue }
                                    let v = src[iy * g.w + ix]
                                    if at < 0 || v > best || (v.isNaN && !best.isNaN) { best = v; at = iy * g.w + ix }
                                }
                            }
                            let o = p * P + oy * g.outW + ox
                            yp[o] = best; ap[o] = Int32(at)
                        }
                    }
                }
            }
        }}}
        cached = (x.shape, g)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let (shape, g) = cached, gradOutput.shape == window.outputShape(g) else {
            throw NetError("max_pool: backward without a matching forward")
        }
        let planes = g.n * g.channels, P = g.outPlane
        let gx = gradInput.tensor(shape: shape)
        gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in argmax.withUnsafeBufferPointer { ab in
            let gp = gb.baseAddress!, op = ob.baseAddress!, ap = ab.baseAddress!
            VectorKernels.parallel(planes, work: planes * g.inPlane) { range in
                for p in range {
                    let dst = op + p * g.inPlane
                    dst.initialize(repeating: 0, count: g.inPlane)
                    for o in 0..<P { dst[Int(ap[p * P + o])] += gp[p * P + o] }
                }
            }
        }}}
        return gx
    }
}

/// Average pooling (`nn.AvgPool1d/2d` with `count_include_pad=True`: every window divides by
/// the kernel size).
public final class AvgPool: Layer {
    public let window: PoolWindow
    public var computesInputGradient = true
    private var cached: (shape: [Int], g: ConvGeometry)?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init(_ window: PoolWindow) { self.window = window }
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let g = try window.geometry(x.shape, "avg_pool")
        let planes = g.n * g.channels, P = g.outPlane, inv = 1 / Float(g.kh * g.kw)
        let y = output.tensor(shape: window.outputShape(g))
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!
            VectorKernels.parallel(planes, work: planes * g.inPlane) { range in
                for p in range {
                    let src = xp + p * g.inPlane
                    for oy in 0..<g.outH {
                        for ox in 0..<g.outW {
                            var s: Float = 0
                            for i in 0..<g.kh {
                                let iy = oy * g.sh - g.ph + i
                                if iy < 0 || iy >= g.h { continue }
                                for j in 0..<g.kw {
                                    let ix = ox * g.sw - g.pw + j
                                    if ix >= 0 && ix < g.w { s += src[iy * g.w + ix] }
                                }
                            }
                            yp[p * P + oy * g.outW + ox] = s * inv
                        }
                    }
                }
            }
        }}
        cached = (x.shape, g)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let (shape, g) = cached, gradOutput.shape == window.outputShape(g) else {
            throw NetError("avg_pool: backward without a matching forward")
        }
        let planes = g.n * g.channels, P = g.outPlane, inv = 1 / Float(g.kh * g.kw)
        let gx = gradInput.tensor(shape: shape)
        gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in
            let gp = gb.baseAddress!, op = ob.baseAddress!
            VectorKernels.parallel(planes, work: planes * g.inPlane) { range in
                for p in range {
                    let dst = op + p * g.inPlane
                    dst.initialize(repeating: 0, count: g.inPlane)
                    for oy in 0..<g.outH {
                        for ox in 0..<g.outW {
                            let v = gp[p * P + oy * g.outW + ox] * inv
                            for i in 0..<g.kh {
                                let iy = oy * g.sh - g.ph + i
                                if iy < 0 || iy >= g.h { continue }
                                for j in 0..<g.kw {
                                    let ix = ox * g.sw - g.pw + j
                                    if ix >= 0 && ix < g.w { dst[iy * g.w + ix] += v }
                                }
                            }
                        }
                    }
                }
            }
        }}
        return gx
    }
}

/// Mean over every spatial axis: `(N, C, *)` → `(N, C)`.
public final class GlobalAvgPool: Layer {
    public var computesInputGradient = true
    private var cachedShape: [Int]?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard x.rank >= 3, x.count > 0 else { throw NetError("global_avg_pool: input of shape \(x.shape.shapeText), expected (N, C, spatial...)") }
        let planes = x.shape[0] * x.shape[1], s = x.spatialCount
        let y = output.tensor(shape: [x.shape[0], x.shape[1]])
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            for p in 0..<planes { yb[p] = Float(VectorKernels.sum(xb.baseAddress! + p * s, length: s) / Double(s)) }
        }}
        cachedShape = x.shape
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let shape = cachedShape, gradOutput.shape == [shape[0], shape[1]] else {
            throw NetError("global_avg_pool: backward without a matching forward")
        }
        let planes = shape[0] * shape[1], s = Array(shape.dropFirst(2)).product, inv = 1 / Float(s)
        let gx = gradInput.tensor(shape: shape)
        gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in
            for p in 0..<planes { (ob.baseAddress! + p * s).initialize(repeating: gb[p] * inv, count: s) }
        }}
        return gx
    }
}

/// `(N, C, *)` → `(N, C·S)` (a view; no copy).
public final class Flatten: Layer {
    public var computesInputGradient = true
    private var cachedShape: [Int]?

    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard x.rank >= 2 else { throw NetError("flatten: input of shape \(x.shape.shapeText) has no feature axes") }
        cachedShape = x.shape
        return x.reshaped([x.shape[0], x.count / max(x.shape[0], 1)])
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        // First in a network (an MLP's reshape): nothing upstream needs a gradient.
        if !computesInputGradient { return .skippedGradient }
        guard let shape = cachedShape, gradOutput.count == shape.product else { throw NetError("flatten: backward without a matching forward") }
        return gradOutput.reshaped(shape)
    }
}
