import Foundation
import NormCore

/// `1 / (1 + e^(−x))`, backward `g · y · (1 − y)`.
public final class Sigmoid: Layer {
    public var computesInputGradient = true
    private var cachedOutput: Tensor?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let y = output.tensor(shape: x.shape)
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!
            VectorKernels.chunked(x.count) { lo, hi in
                for i in lo..<hi {
                    let v = xp[i]
                    // Stable on both sides.
                    if v >= 0 { yp[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); yp[i] = e / (1 + e) }
                }
            }
        }}
        cachedOutput = y
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let y = cachedOutput, y.shape == gradOutput.shape else { throw NetError("sigmoid: backward without a matching forward") }
        defer { cachedOutput = nil }
        let gx = gradInput.tensor(shape: y.shape)
        y.withUnsafeBufferPointer { yb in gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in
            let yp = yb.baseAddress!, gp = gb.baseAddress!, op = ob.baseAddress!
            VectorKernels.chunked(y.count) { lo, hi in
                for i in lo..<hi { op[i] = gp[i] * yp[i] * (1 - yp[i]) }
            }
        }}}
        return gx
    }
}
