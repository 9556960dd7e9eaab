/// A normalization layer instance: the protocol every method, built-in or custom,
/// implements.
///
/// Layout is PyTorch's: channel axis 1, inputs `(N, C, *)`. A layer validates its
/// configuration when it is built, exposes its learnable ``Parameter``s and its
/// ``Buffer``s by name, runs `forward` in a ``Mode`` and `backward` with analytic
/// gradients, and updates its buffers only in train mode and only when it tracks
/// running statistics. Freezing is applied from outside by ``NormLayer``.
public protocol Normalization: AnyObject {
    /// The method's descriptor (names, options, reference).
    var descriptor: NormDescriptor { get }
    /// Learnable tensors, in a stable order (`weight`, `bias`, then method-specific).
    var parameters: [Parameter] { get }
    /// State tensors (`running_mean`, `running_var`, `num_batches_tracked`), possibly none.
    var buffers: [Buffer] { get }
    /// Whether this layer keeps running statistics that eval mode uses.
    var tracksRunningStatistics: Bool { get }
    /// Whether the output already includes the nonlinearity (FRN's TLU, EvoNorm-S0): a model
    /// then adds no activation after the layer. Default `false`.
    var includesActivation: Bool { get }
    /// Normalizes `x`; in train mode may update buffers. Caches what `backward` needs.
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor
    /// Given dL/dy for the last forward, returns dL/dx and sets each parameter's
    /// `gradient` (only for parameters with `requiresGrad`).
    func backward(_ gradOutput: Tensor) throws -> Tensor
}

/// A Swift type that can be registered as a method with one call
/// (`registry.register(MyNorm.self)`).
public protocol NormalizationPlugin: Normalization {
    /// The descriptor shared by every instance.
    static var descriptor: NormDescriptor { get }
    /// Builds a layer; validates every option and the shape here, not at first forward.
    init(shape: FeatureShape, options: NormOptions) throws
}

extension NormalizationPlugin {
    public var descriptor: NormDescriptor { Self.descriptor }
}

extension Normalization {
    public var includesActivation: Bool { false }

    /// The parameter named `name`, if any.
    public func parameter(named name: String) -> Parameter? { parameters.first { $0.name == name } }
    /// The buffer named `name`, if any.
    public func buffer(named name: String) -> Buffer? { buffers.first { $0.name == name } }
}

/// A layer whose running statistics are a ``RunningStatistics`` (BN, BRN, tracked IN):
/// lets generic code (apply, PreciseBN, telemetry) reach them without knowing the type.
public protocol RunningStatisticsProviding: Normalization {
    /// The running statistics, `nil` when the layer does not track them.
    var runningStatistics: RunningStatistics? { get }
}
