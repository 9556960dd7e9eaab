import NormCore

/// `max(x, 0)`; the gradient at exactly 0 is 0 (PyTorch).
public final class ReLU: Layer {
    public var computesInputGradient = true
    private var cachedInput: Tensor?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let y = output.tensor(shape: x.shape)
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            VectorKernels.relu(xb.baseAddress!, yb.baseAddress!, count: x.count)
        }}
        cachedInput = x
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let x = cachedInput, x.shape == gradOutput.shape else { throw NetError("relu: backward without a matching forward") }
        defer { cachedInput = nil }
        let gx = gradInput.tensor(shape: x.shape)
        x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in
            VectorKernels.reluBackward(xb.baseAddress!, gb.baseAddress!, ob.baseAddress!, count: x.count)
        }}}
        return gx
    }
}
