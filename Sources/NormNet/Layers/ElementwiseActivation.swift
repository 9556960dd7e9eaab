import NormCore

/// The shared base of parameter-free element-wise activations (``ReLU``, ``Sigmoid``): it keeps
/// the one tensor `backward` reads (the forward's input or its output, as the subclass declares)
/// and reuses the output and input-gradient buffers; a subclass supplies the two kernels.
public class ElementwiseActivation: Layer {
    /// Which forward tensor `backward`'s kernel reads.
    enum Saved { case input, output }

    public var computesInputGradient = true
    private let name: String
    private let saves: Saved
    private var saved: Tensor?
    private var output = ReusableStorage(slots: 2)
    private var gradInput = ReusableStorage(slots: 2)

    init(name: String, saves: Saved) {
        self.name = name
        self.saves = saves
    }

    public var parameters: [Parameter] { [] }

    /// `y = f(x)` over `count` elements.
    func activate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        fatalError("\(type(of: self)) must override activate")
    }

    /// dL/dx from the saved tensor (input or output) and dL/dy, over `count` elements.
    func differentiate(saved: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                       gradInput: UnsafeMutablePointer<Float>, count: Int) {
        fatalError("\(type(of: self)) must override differentiate")
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let y = output.tensor(shape: x.shape)
        x.withUnsafeBufferPointer { xb in y.withUnsafeOutputBuffer { yb in
            activate(xb.baseAddress!, yb.baseAddress!, count: x.count)
        }}
        saved = saves == .input ? x : y
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let s = saved, s.shape == gradOutput.shape else { throw NetError("\(name): backward without a matching forward") }
        defer { saved = nil }
        let gx = gradInput.tensor(shape: s.shape)
        s.withUnsafeBufferPointer { sb in gradOutput.withUnsafeBufferPointer { gb in gx.withUnsafeOutputBuffer { ob in
            differentiate(saved: sb.baseAddress!, gradOutput: gb.baseAddress!, gradInput: ob.baseAddress!, count: s.count)
        }}}
        return gx
    }
}
