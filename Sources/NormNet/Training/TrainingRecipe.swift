import NormCore

/// A run described as "the data set's preset, with these overrides": what `normlab train`
/// parses its options into, and what an ablation cell can build. `nil` fields keep the
/// preset's value (``TrainPresets``).
public struct TrainingRecipe: Sendable, Equatable {
    /// The norm for every slot; `nil` = no normalization.
    public var norm: NormSpec?
    /// `nil` = the plain net; `.resnet` starts from ``TrainPresets/resNet(for:norm:)``.
    public var family: ModelFamily?
    public var shortcut: ShortcutKind?
    public var preActivation: Bool?
    public var zeroInitResidual: Bool?
    public var depth: Int?
    public var width: Int?
    public var kernel: Int?
    public var normPosition: NormPosition?
    public var convBias: Bool?
    public var activation: ActivationKind?
    public var downsample: DownsampleKind?
    public var widthGrowth: Int?
    public var head: HeadKind?
    public var freeze = FreezeSpec()
    public var learningRate: Double?
    public var momentum: Double?
    public var weightDecay: Double?
    public var nesterov: Bool?
    public var schedule: LRSchedule.Kind?
    public var warmupSteps: Int?
    /// Scale the learning rate linearly with the batch size (Goyal et al. 2017):
    /// effective lr = lr · batch_size / this.
    public var learningRateReferenceBatchSize: Int?
    public var batchSize: Int?
    public var duration: TrainingDuration?
    /// The run seed: model initialization and shuffling are derived from it.
    public var seed: UInt64 = 0
    public var inferenceStatistics = InferenceStatistics.runningAverage
    public var renormSchedule: RenormSchedule?
    public var evaluateEachEpoch = true
    public var recordTelemetry = true
    /// `sgd` (default), `adam` or `adamw`. Adam/AdamW without an explicit learning rate or
    /// weight decay use PyTorch's defaults (lr 1e-3; weight decay 0 for Adam, 1e-2 for AdamW).
    public var optimizer: OptimizerName?
    /// Random crops/flips of training batches (nil: none).
    public var augmentation: AugmentationConfig?
    /// Dropout probability before the classifier (nil: none).
    public var dropout: Double?
    /// Label smoothing ε (nil: none).
    public var labelSmoothing: Double?
    /// Weight Standardization of every convolution (nil: off).
    public var weightStandardization: WeightStandardization?

    public init(norm: NormSpec? = .registryDefault) { self.norm = norm }

    /// `name` (`none` → nil) with `KEY=VALUE` settings checked against the method's schema.
    public static func normSpec(name: String, settings: [String], registry: NormRegistry) throws -> NormSpec? {
        if name.lowercased() == "none" {
            guard settings.isEmpty else { throw NetError("norm settings given with norm 'none'") }
            return nil
        }
        let entry = try registry.entry(named: name)
        let options = try NormOptions.parse(method: entry.descriptor.name, schema: entry.descriptor.options, settings: settings)
        return NormSpec(entry.descriptor.name, options: options)
    }

    public var seeds: (model: UInt64, shuffle: UInt64) { TrainPresets.seeds(from: seed) }

    public func modelSpec(for dataset: Dataset) -> ModelSpec {
        var spec = family == .resnet ? TrainPresets.resNet(for: dataset, norm: norm) : TrainPresets.model(for: dataset, norm: norm)
        if family == .mlp { spec = .mlp(inputShape: dataset.sampleShape, classes: dataset.classes, norm: norm) }
        if let shortcut { spec.resnet.shortcut = shortcut }
        if let preActivation { spec.resnet.preActivation = preActivation }
        if let zeroInitResidual { spec.resnet.zeroInitResidual = zeroInitResidual }
        if let depth { spec.depth = depth }
        if let width { spec.width = width }
        if let kernel { spec.kernel = kernel }
        if let normPosition { spec.normPosition = normPosition }
        if let convBias { spec.convBias = convBias }
        if let activation { spec.activation = activation }
        if let downsample { spec.downsample = downsample }
        if let widthGrowth { spec.widthGrowth = widthGrowth }
        if let head { spec.head = head }
        if let dropout { spec.dropout = dropout }
        if let weightStandardization { spec.weightStandardization = weightStandardization }
        spec.freeze = freeze
        return spec
    }

    public func config(for dataset: Dataset) -> TrainingConfig {
        var config = TrainPresets.config(for: dataset)
        config.seed = seeds.shuffle
        if let batchSize { config.batchSize = batchSize }
        if let duration { config.duration = duration }
        if let optimizer, optimizer != .sgd {
            config.features.optimizer = optimizer
            config.optimizer.learningRate = AdamConfig().learningRate
            config.optimizer.weightDecay = optimizer == .adamw ? 1e-2 : 0
        }
        if let augmentation { config.features.augmentation = augmentation }
        if let labelSmoothing { config.features.labelSmoothing = labelSmoothing }
        if let learningRate { config.optimizer.learningRate = learningRate }
        if let reference = learningRateReferenceBatchSize {
            config.optimizer.learningRate *= Double(config.batchSize) / Double(reference)
        }
        if let momentum { config.optimizer.momentum = momentum }
        if let weightDecay { config.optimizer.weightDecay = weightDecay }
        if let nesterov { config.optimizer.nesterov = nesterov }
        // Nesterov needs momentum: a preset's Nesterov is dropped when momentum is set to 0.
        if config.optimizer.momentum == 0 && nesterov == nil { config.optimizer.nesterov = false }
        if let schedule { config.schedule.kind = schedule }
        if let warmupSteps { config.schedule.warmupSteps = warmupSteps }
        config.inferenceStatistics = inferenceStatistics
        config.renormSchedule = renormSchedule
        config.evaluateEachEpoch = evaluateEachEpoch
        config.recordTelemetry = recordTelemetry
        return config
    }

    /// Checks the optimizer and schedule settings that do not depend on the data set.
    public func validateTraining() throws {
        if let learningRateReferenceBatchSize, learningRateReferenceBatchSize < 1 {
            throw NetError("lr_reference_batch_size must be a positive integer, got \(learningRateReferenceBatchSize)")
        }
        if let warmupSteps, warmupSteps < 0 { throw NetError("warmup steps must be >= 0, got \(warmupSteps)") }
        var probe = TrainingConfig()
        if let learningRate { probe.optimizer.learningRate = learningRate }
        if let momentum { probe.optimizer.momentum = momentum }
        if let weightDecay { probe.optimizer.weightDecay = weightDecay }
        if let nesterov { probe.optimizer.nesterov = nesterov }
        if probe.optimizer.momentum == 0 && nesterov == nil { probe.optimizer.nesterov = false }
        try probe.optimizer.validate()
    }

    /// The initialized model for `dataset`.
    public func makeModel(for dataset: Dataset, registry: NormRegistry) throws -> Model {
        try Model(spec: modelSpec(for: dataset), registry: registry, seed: seeds.model)
    }

    /// Builds, trains and reports (the model is returned for checkpoints and further use).
    public func run(on dataset: Dataset, registry: NormRegistry, model: Model? = nil,
                    progress: ((TrainingProgress) -> Void)? = nil) throws -> (model: Model, result: TrainingResult, report: RunReport) {
        let model = try model ?? makeModel(for: dataset, registry: registry)
        let config = config(for: dataset)
        let result = try Trainer(model: model, dataset: dataset, config: config).run(progress: progress)
        let report = RunReport(dataset: dataset, model: model, config: config, seed: seed, threads: ComputeThreads.count, result: result)
        return (model, result, report)
    }
}
