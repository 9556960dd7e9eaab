import NormCore

/// How long to train.
public enum TrainingDuration: Sendable, Equatable {
    case epochs(Int)
    case steps(Int)
}

/// Everything about a run except the data and the model.
public struct TrainingConfig: Sendable, Equatable {
    public var batchSize: Int
    public var duration: TrainingDuration
    /// Drives the shuffling (the model's initialization takes its own seed).
    public var seed: UInt64
    public var optimizer: SGDConfig
    public var schedule: LRSchedule
    /// Batch size of evaluation passes (eval mode does not depend on it; the train-mode
    /// diagnostic accuracy does). 250: a ResNet-20 activation at 28×28 is then 12 MB, not
    /// 50 MB, and evaluation stays out of main memory (measured: a Fashion-MNIST evaluation
    /// took 2.6 × less memory and ~25 % less time than with batches of 1000).
    public var evalBatchSize: Int
    /// Record per-layer batch-vs-running statistics gaps every train step.
    public var recordTelemetry: Bool
    /// Evaluate test accuracy (eval mode) after every epoch, for the history.
    public var evaluateEachEpoch: Bool
    /// The statistics the norm layers evaluate with (EMA, PreciseBN, mean of the last K batches).
    public var inferenceStatistics: InferenceStatistics
    /// Warm-up of Batch Renormalization's r_max / d_max (nil: the configured limits throughout).
    public var renormSchedule: RenormSchedule?
    /// The update rule, label smoothing and augmentation (``RecipeFeatures``; SGD, none, none by default).
    public var features = RecipeFeatures()
    /// Test accuracy at step intervals and at an early step (``StepEvaluation``; off by default).
    public var stepEvaluation = StepEvaluation()
    /// Percentiles of one unit's input over training (``ActivationProbe``; nil = off).
    public var activationProbe: ActivationProbe?

    public init(batchSize: Int = 128, duration: TrainingDuration = .epochs(30), seed: UInt64 = 0,
                optimizer: SGDConfig = SGDConfig(), schedule: LRSchedule = LRSchedule(),
                evalBatchSize: Int = 250, recordTelemetry: Bool = true, evaluateEachEpoch: Bool = false,
                inferenceStatistics: InferenceStatistics = .runningAverage, renormSchedule: RenormSchedule? = nil) {
        self.batchSize = batchSize
        self.duration = duration
        self.seed = seed
        self.optimizer = optimizer
        self.schedule = schedule
        self.evalBatchSize = evalBatchSize
        self.recordTelemetry = recordTelemetry
        self.evaluateEachEpoch = evaluateEachEpoch
        self.inferenceStatistics = inferenceStatistics
        self.renormSchedule = renormSchedule
    }

    public func validate() throws {
        guard batchSize >= 1 else { throw NetError("batch size must be at least 1, got \(batchSize)") }
        guard evalBatchSize >= 1 else { throw NetError("eval batch size must be at least 1") }
        switch duration {
        case let .epochs(e): guard e >= 1 else { throw NetError("epochs must be at least 1, got \(e)") }
        case let .steps(s): guard s >= 1 else { throw NetError("steps must be at least 1, got \(s)") }
        }
        try inferenceStatistics.validate()
        try renormSchedule?.validate()
        try optimizer.validate()
        try schedule.validate()
        try features.validate()
        try stepEvaluation.validate()
        try activationProbe?.validate()
    }
}
