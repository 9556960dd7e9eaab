import NormCore

/// `max(x, 0)`; the gradient at exactly 0 is 0 (PyTorch).
public final class ReLU: ElementwiseActivation {
    public init() { super.init(name: "relu", saves: .input) }

    override func activate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        VectorKernels.relu(x, y, count: count)
    }

    override func differentiate(saved x: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                gradInput: UnsafeMutablePointer<Float>, count: Int) {
        VectorKernels.reluBackward(x, gradOutput, gradInput, count: count)
    }
}
