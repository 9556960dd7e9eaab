/// A learnable tensor of a layer (PyTorch's `nn.Parameter`): its value, the gradient
/// the last `backward` produced, and whether it takes gradients at all.
public final class Parameter: @unchecked Sendable {
    /// The name used in files and on the CLI (`weight`, `bias`, `tau`, `eps`).
    public let name: String
    /// The current value.
    public var value: Tensor
    /// The gradient from the last backward pass, `nil` before one or when frozen.
    public var gradient: Tensor?
    /// When false, `backward` computes no gradient for it and optimizers leave it alone
    /// (MMDetection's `requires_grad: False`).
    public var requiresGrad: Bool

    public init(name: String, value: Tensor, requiresGrad: Bool = true) {
        self.name = name
        self.value = value
        self.requiresGrad = requiresGrad
    }
}

/// A non-learnable state tensor of a layer (PyTorch's registered buffer): running
/// statistics and the batch counter.
public final class Buffer: @unchecked Sendable {
    /// The name used in files (`running_mean`, `running_var`, `num_batches_tracked`).
    public let name: String
    /// The current value.
    public var value: Tensor

    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
    }
}
