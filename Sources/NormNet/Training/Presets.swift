import NormCore

/// The default model and schedule `normlab train` uses for each data set (the measured
/// accuracies in the README are for these).
public enum TrainPresets {
    /// The model for a data set's sample shape and class count, with `norm` in every slot.
    public static func model(for dataset: Dataset, norm: NormSpec?) -> ModelSpec {
        model(sampleShape: dataset.sampleShape, classes: dataset.classes, norm: norm)
    }

    /// The model for samples of `sampleShape` in `classes` classes.
    public static func model(sampleShape: [Int], classes: Int, norm: NormSpec?) -> ModelSpec {
        let twoD = sampleShape.count == 3
        if twoD {
            // digits: 8x8 -> 4x4 -> 2x2, then global average pooling.
            return ModelSpec(inputShape: sampleShape, classes: classes, depth: 3, width: 32, kernel: 3,
                             norm: norm, downsample: .maxPool, downsampleEvery: 1, widthGrowth: 2, head: .globalAvgPool)
        }
        // mnist1d (and other 1-D data): length 40 -> 20 -> 10 -> 5, then flatten. Flatten keeps
        // position, which per-sample norms (IN without affine) otherwise wipe out before a
        // global average (measured: IN 66 % with GAP, 96 % with flatten; BN 98.6 % / 98.4 %).
        return ModelSpec(inputShape: sampleShape, classes: classes, depth: 4, width: 32, kernel: 5,
                         norm: norm, downsample: .maxPool, downsampleEvery: 1, widthGrowth: 1, head: .flatten)
    }

    /// Batch size, duration, optimizer and schedule for a data set (the same for every data set:
    /// ``defaults``), with what the data set declares (``Dataset/recipeDefaults``): its
    /// augmentation and, when it names one, its training length.
    public static func config(for dataset: Dataset) -> TrainingConfig {
        var config = defaults
        config.features.augmentation = dataset.recipeDefaults.augmentation
        if let duration = dataset.recipeDefaults.duration { config.duration = duration }
        return config
    }

    /// The one set of training defaults of `normlab train` and of every ablation cell: batch 64,
    /// 30 epochs (20 for Fashion-MNIST: ``DatasetName/recipeDefaults``), SGD lr 0.1, momentum 0.9 (Nesterov), weight decay 5e-4 on conv/linear weights,
    /// cosine decay with 100 warm-up steps.
    public static let defaults = TrainingConfig(
        batchSize: defaultBatchSize, duration: .epochs(30), seed: 0,
        optimizer: SGDConfig(learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true),
        schedule: LRSchedule(.cosine(minimumFactor: 0), warmupSteps: 100))

    /// ``defaults`` as text for key documentation.
    public static var defaultsText: (batch: String, duration: String, optimizer: String, schedule: String) {
        let d = defaults, o = d.optimizer
        return ("\(d.batchSize)", text(d.duration),
                "\(o.learningRate), \(o.momentum), \(o.weightDecay), \(o.nesterov)",
                "cosine, \(d.schedule.warmupSteps)")
    }

    /// `duration` as text: "30 epochs", "500 steps".
    public static func text(_ duration: TrainingDuration) -> String {
        switch duration { case let .epochs(e): return "\(e) epochs"; case let .steps(s): return "\(s) steps" }
    }

    /// The training batch size when a recipe names none.
    public static let defaultBatchSize = 64

    /// Two independent seeds (model initialization, shuffling) from one run seed.
    public static func seeds(from seed: UInt64) -> (model: UInt64, shuffle: UInt64) {
        var g = SeededGenerator(seed: seed)
        return (g.next(), g.next())
    }
}
