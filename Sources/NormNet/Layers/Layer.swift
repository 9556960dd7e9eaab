import NormCore

/// One differentiable stage of a network: `forward` caches what `backward` needs,
/// `backward` takes dL/dy of the last forward, sets every trainable parameter's `gradient`
/// and returns dL/dx.
///
/// Parameters and buffers are NormCore's ``Parameter`` and ``Buffer`` (named, with
/// `requiresGrad`), so norm plugins, layers, optimizers and checkpoints share one notion
/// of state. A parameter with `requiresGrad == false` gets no gradient.
public protocol Layer: AnyObject {
    /// Learnable tensors by their local names (`weight`, `bias`).
    var parameters: [Parameter] { get }
    /// Non-learnable state (running statistics), possibly none.
    var buffers: [Buffer] { get }
    /// When false, `backward` may skip dL/dx (the first layer of a network) and return an
    /// empty tensor; parameter gradients are still produced.
    var computesInputGradient: Bool { get set }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor
    func backward(_ gradOutput: Tensor) throws -> Tensor
}

extension Layer {
    public var buffers: [Buffer] { [] }
}

/// A placeholder returned by `backward` when the input gradient was not asked for.
extension Tensor {
    public static let skippedGradient = Tensor.zeros([0])
}

/// Errors of the training engine: bad shapes, bad specs, bad files. One line each.
public struct NetError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}
extension NetError: UserFacingError {}
