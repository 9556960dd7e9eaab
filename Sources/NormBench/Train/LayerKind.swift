import NormNet

/// What a slice of a training step's time is spent on, for the per-kind breakdown.
public enum LayerKind: String, Sendable, Codable, CaseIterable {
    case conv, norm, activation
    /// Max/average pooling, global average pooling, flatten.
    case pooling
    /// A residual block's addition and parameter-free shortcut (option A).
    case residual
    /// The classifier's linear layer.
    case linear
    /// Softmax cross-entropy (loss and its gradient).
    case loss
    /// The SGD update over every parameter.
    case optimizer
    /// Anything else the model contains.
    case other

    /// The kind of a model layer.
    public init(_ layer: Layer) {
        switch layer {
        case is Convolution: self = .conv
        case is NormSlot: self = .norm
        case is ElementwiseActivation: self = .activation
        case is MaxPool, is AvgPool, is GlobalAvgPool, is Flatten: self = .pooling
        case is ZeroPadShortcut: self = .residual
        case is Linear: self = .linear
        default: self = .other
        }
    }
}
