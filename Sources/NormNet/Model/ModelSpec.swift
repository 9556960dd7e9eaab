import NormCore

/// Where a block's norm sits relative to its activation.
public enum NormPosition: String, Sendable, CaseIterable {
    /// conv → norm → activation (ResNet, the BN paper).
    case before
    /// conv → activation → norm.
    case after

    /// A block's norm and activation in execution order, named `norm` and `act` (either may
    /// be absent).
    func ordered(norm: Layer?, activation: Layer?) -> [(String, Layer)] {
        let named: [(String, Layer)?] = [norm.map { ("norm", $0) }, activation.map { ("act", $0) }]
        return (self == .before ? named : named.reversed()).compactMap { $0 }
    }
}

/// The block activation. A norm whose plugin is FRN with its TLU (`tlu=true`) placed
/// before the activation replaces the activation (the TLU *is* the activation, as in the
/// FRN paper).
public enum ActivationKind: String, Sendable, CaseIterable {
    case relu
    case sigmoid
}

extension ActivationKind {
    /// A fresh layer computing this activation.
    public func makeLayer() -> Layer {
        switch self {
        case .relu: ReLU()
        case .sigmoid: Sigmoid()
        }
    }
}

/// How resolution is reduced between stages.
public enum DownsampleKind: String, Sendable, CaseIterable {
    /// Max pooling, window 2, stride 2, after the block.
    case maxPool = "max"
    /// Average pooling, window 2, stride 2, after the block.
    case avgPool = "avg"
    /// The next block's convolution has stride 2.
    case strided
    /// No downsampling.
    case none
}

/// How the features reach the classifier.
public enum HeadKind: String, Sendable, CaseIterable {
    /// Global average pooling then one linear layer.
    case globalAvgPool = "gap"
    /// Flatten (C·S features) then one linear layer.
    case flatten
}

/// Freezing inside a model, as MMDetection configures it.
///
/// - `normEval` (`norm_eval=True`) and `normRequiresGrad` (`norm_cfg.requires_grad`) apply to
///   every norm layer; `perLayer` overrides them for single blocks (by block index).
/// - `frozenStages` (`frozen_stages`): −1 freezes nothing; `k ≥ 0` freezes the stem (stage 0)
///   and stages 1…k: their convolutions' weights and biases take no gradients, their norm
///   layers' affine is frozen, and their statistics too where the layer tracks running
///   statistics (MMDetection puts those modules in eval mode; a layer without running
///   statistics has nothing to freeze there).
///
/// A statistics freeze on a layer that tracks no running statistics (e.g. `normEval` with
/// GN) is refused when the model is built.
public struct FreezeSpec: Sendable, Equatable {
    public var normEval: Bool
    public var normRequiresGrad: Bool
    public var frozenStages: Int
    public var perLayer: [Int: FreezePolicy]

    public init(normEval: Bool = false, normRequiresGrad: Bool = true, frozenStages: Int = -1, perLayer: [Int: FreezePolicy] = [:]) {
        self.normEval = normEval
        self.normRequiresGrad = normRequiresGrad
        self.frozenStages = frozenStages
        self.perLayer = perLayer
    }

    /// The policy for every norm layer unless overridden.
    public var global: FreezePolicy { FreezePolicy(freezesStatistics: normEval, freezesAffine: !normRequiresGrad) }
}

/// A small CNN family: `depth` blocks of `conv(kernel, same padding) + norm slot + activation`,
/// downsampling every `downsampleEvery` blocks while every spatial axis stays ≥ `minSpatial`,
/// widths multiplied by `widthGrowth` at each downsampling, then a head and a linear
/// classifier. 1-D inputs `(C, L)` get Conv1d, 2-D inputs `(C, H, W)` Conv2d.
///
/// Stages (for `frozenStages`): stage 0 is the stem (block 0); the blocks after it are
/// grouped by resolution, each group a stage numbered from 1.
public struct ModelSpec: Sendable, Equatable {
    /// Per-sample input shape `(C, L)` or `(C, H, W)`.
    public var inputShape: [Int]
    public var classes: Int
    public var depth: Int
    /// Channels of the first block.
    public var width: Int
    public var kernel: Int
    /// The norm for every block's slot; `nil` = no normalization.
    public var norm: NormSpec?
    public var normPosition: NormPosition
    public var convBias: Bool
    public var activation: ActivationKind
    public var downsample: DownsampleKind
    public var downsampleEvery: Int
    public var widthGrowth: Int
    public var minSpatial: Int
    public var head: HeadKind
    public var freeze: FreezeSpec
    /// Weight decay on norm parameters and biases too (default: conv/linear weights only).
    public var decayAllParameters: Bool
    /// Inverted-dropout probability before the classifier (``Dropout``); 0 = none.
    public var dropout: Double = 0
    /// Weight Standardization of every convolution (``WeightStandardization``); nil = off.
    public var weightStandardization: WeightStandardization?
    /// The plain conv stack (default) or a ResNet (``ModelSpec/resNet(inputShape:classes:depth:width:norm:options:)``).
    public var family: ModelFamily = .plain
    /// Shortcut, pre-activation and zero-init choices when `family == .resnet`.
    public var resnet = ResNetOptions()
    /// The hidden layers' widths when `family == .mlp` (``DenseBlock``s); unused otherwise.
    public var hidden: [Int] = []

    public init(inputShape: [Int], classes: Int, depth: Int = 4, width: Int = 32, kernel: Int = 3,
                norm: NormSpec? = .registryDefault, normPosition: NormPosition = .before, convBias: Bool = false,
                activation: ActivationKind = .relu, downsample: DownsampleKind = .maxPool, downsampleEvery: Int = 1,
                widthGrowth: Int = 1, minSpatial: Int = 2, head: HeadKind = .globalAvgPool,
                freeze: FreezeSpec = FreezeSpec(), decayAllParameters: Bool = false) {
        self.inputShape = inputShape
        self.classes = classes
        self.depth = depth
        self.width = width
        self.kernel = kernel
        self.norm = norm
        self.normPosition = normPosition
        self.convBias = convBias
        self.activation = activation
        self.downsample = downsample
        self.downsampleEvery = downsampleEvery
        self.widthGrowth = widthGrowth
        self.minSpatial = minSpatial
        self.head = head
        self.freeze = freeze
        self.decayAllParameters = decayAllParameters
    }

    /// Checks the numbers (the norm is checked when the model is built).
    public func validate() throws {
        guard inputShape.count == 2 || inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw NetError("model: input shape \(inputShape.shapeText) must be (C, L) or (C, H, W)")
        }
        guard classes >= 2 else { throw NetError("model: need at least 2 classes, got \(classes)") }
        guard depth >= 1 else { throw NetError("model: depth must be at least 1, got \(depth)") }
        guard width >= 1 else { throw NetError("model: width must be at least 1, got \(width)") }
        guard kernel >= 1, kernel % 2 == 1 else { throw NetError("model: kernel must be odd and positive (same padding), got \(kernel)") }
        guard downsampleEvery >= 1 else { throw NetError("model: downsample-every must be at least 1") }
        guard widthGrowth >= 1 else { throw NetError("model: width growth must be at least 1") }
        guard minSpatial >= 1 else { throw NetError("model: min spatial must be at least 1") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw NetError("model: dropout must be in [0, 1), got \(dropout)") }
        guard freeze.frozenStages >= -1 else { throw NetError("model: frozen_stages must be >= -1, got \(freeze.frozenStages)") }
        for k in freeze.perLayer.keys where !(0..<depth).contains(k) {
            throw NetError("model: per-layer freeze for block \(k), but the model has blocks 0..<\(depth)")
        }
        try validateResNet()
        try validateMLP()
    }
}
