import NormCore

/// The training-side recipe features of issue 14 beside the SGD settings: the update rule
/// (SGD, Adam or AdamW), label smoothing and data augmentation. Defaults change nothing.
/// The model-side ones, dropout before the classifier and Weight Standardization, live in
/// ``ModelSpec`` (``ModelSpec/dropout``, ``ModelSpec/weightStandardization``).
public struct RecipeFeatures: Sendable, Equatable {
    /// `sgd` (``SGD``, with ``TrainingConfig/optimizer``), `adam` or `adamw` (``Adam``).
    public var optimizer: OptimizerName
    /// β1, β2, ε of Adam/AdamW; their learning rate and weight decay are those of
    /// ``TrainingConfig/optimizer`` (the recipe's `lr` and `weight_decay`).
    public var adam: AdamConfig
    /// ε of the label-smoothed cross-entropy (PyTorch's `label_smoothing`), 0 = off.
    public var labelSmoothing: Double
    /// Random crops and flips of the training batches (off by default; 2-D data only).
    public var augmentation: AugmentationConfig

    public init(optimizer: OptimizerName = .sgd, adam: AdamConfig = AdamConfig(), labelSmoothing: Double = 0,
                augmentation: AugmentationConfig = .none) {
        self.optimizer = optimizer
        self.adam = adam
        self.labelSmoothing = labelSmoothing
        self.augmentation = augmentation
    }

    public func validate() throws {
        guard labelSmoothing.isFinite, (0...1).contains(labelSmoothing) else {
            throw NetError("label smoothing must be in [0, 1], got \(labelSmoothing)")
        }
        guard augmentation.cropPadding >= 0 else { throw NetError("augment: crop padding must be >= 0, got \(augmentation.cropPadding)") }
        try adam.validate()
    }

    /// The optimizer configuration: `sgd` as given; Adam/AdamW with its learning rate and
    /// weight decay.
    public func optimizerConfig(sgd: SGDConfig) -> OptimizerConfig {
        switch optimizer {
        case .sgd: return .sgd(sgd)
        case .adam, .adamw:
            var c = adam
            c.learningRate = sgd.learningRate
            c.weightDecay = sgd.weightDecay
            c.decoupledWeightDecay = optimizer == .adamw
            return .adam(c)
        }
    }

    /// The optimizer for `model`.
    public func makeOptimizer(sgd: SGDConfig, model: Model) throws -> Optimizer {
        try optimizerConfig(sgd: sgd).makeOptimizer(for: model)
    }

    /// The augmentation stream's seed, derived from the shuffling seed (its own stream: turning
    /// augmentation on does not change the batch order).
    public func augmentationSeed(from shuffleSeed: UInt64) -> UInt64 {
        var g = SeededGenerator(seed: shuffleSeed ^ 0x4155_474D_454E_5421)
        return g.next()
    }
}
