import NormCore

/// `nn.Linear`: `y = x · Wᵀ + b` for `x` of shape `(N, in)`, weight `(out, in)`, bias `(out,)`.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    public var computesInputGradient = true
    private var cachedInput: Tensor?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) throws {
        guard inFeatures > 0, outFeatures > 0 else { throw NetError("linear: features must be positive") }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(name: "weight", value: .zeros([outFeatures, inFeatures]))
        self.bias = bias ? Parameter(name: "bias", value: .zeros([outFeatures])) : nil
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw NetError("linear: input of shape \(x.shape.shapeText), expected (N, \(inFeatures))")
        }
        let n = x.shape[0]
        let y = output.tensor(shape: [n, outFeatures])
        x.withUnsafeBufferPointer { xb in weight.value.withUnsafeBufferPointer { wb in y.withUnsafeOutputBuffer { yb in
            let yp = yb.baseAddress!
            if let bias {
                bias.value.withUnsafeBufferPointer { bb in
                    for r in 0..<n { (yp + r * outFeatures).update(from: bb.baseAddress!, count: outFeatures) }
                }
            }
            Gemm.multiply(transB: true, m: n, n: outFeatures, k: inFeatures, a: xb.baseAddress!, b: wb.baseAddress!,
                          beta: bias == nil ? 0 : 1, c: yp)
        }}}
        cachedInput = x
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let x = cachedInput else { throw NetError("linear: backward before forward") }
        let n = x.shape[0]
        guard gradOutput.shape == [n, outFeatures] else {
            throw NetError("linear: gradient of shape \(gradOutput.shape.shapeText), expected \([n, outFeatures].shapeText)")
        }
        defer { cachedInput = nil }
        if let bias {
            if bias.requiresGrad {
                var gb = [Double](repeating: 0, count: outFeatures)
                gradOutput.withUnsafeBufferPointer { g in
                    for r in 0..<n { for o in 0..<outFeatures { gb[o] += Double(g[r * outFeatures + o]) } }
                }
                bias.gradient = Tensor(shape: [outFeatures], doubles: gb)
            } else {
                bias.gradient = nil
            }
        }
        if weight.requiresGrad {
            let gw = Tensor(shape: [outFeatures, inFeatures]) { gwb in
                gradOutput.withUnsafeBufferPointer { g in x.withUnsafeBufferPointer { xb in
                    Gemm.multiply(transA: true, m: outFeatures, n: inFeatures, k: n, a: g.baseAddress!, b: xb.baseAddress!, c: gwb.baseAddress!)
                }}
            }
            weight.gradient = gw
        } else {
            weight.gradient = nil
        }
        guard computesInputGradient else { return .skippedGradient }
        let gx = gradInput.tensor(shape: x.shape)
        gradOutput.withUnsafeBufferPointer { g in weight.value.withUnsafeBufferPointer { wb in gx.withUnsafeOutputBuffer { gxb in
            Gemm.multiply(m: n, n: inFeatures, k: outFeatures, a: g.baseAddress!, b: wb.baseAddress!, c: gxb.baseAddress!)
        }}}
        return gx
    }
}
