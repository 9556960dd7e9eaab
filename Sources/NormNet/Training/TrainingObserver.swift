import NormCore

/// What an observer sees of a run: the model, the data, the configuration and its length.
public struct TrainingContext {
    public let model: Model
    public let dataset: Dataset
    public let config: TrainingConfig
    public let totalSteps: Int
}

/// A diagnostic or schedule attached to the training loop (``Trainer``): it is called at fixed
/// points of every run and adds what it measured to the result. A new diagnostic is a new
/// observer type, never an edit of `Trainer.run`. Every hook has an empty default.
///
/// Order of calls: `runWillStart`, then per step `stepWillStart` → forward → `forwardDidFinish`
/// (the norm layers' batch statistics are this step's) → backward → `backwardDidFinish` (the
/// gradients are this step's) → optimizer step; after the loop (also when the run diverged)
/// `runDidFinish`, then `contribute(to:)`. Observers run in the order given.
public protocol TrainingObserver: AnyObject {
    func runWillStart(_ context: TrainingContext) throws
    func stepWillStart(_ step: Int, _ context: TrainingContext) throws
    func forwardDidFinish(_ step: Int, _ context: TrainingContext) throws
    func backwardDidFinish(_ step: Int, _ context: TrainingContext) throws
    func runDidFinish(_ context: TrainingContext, diverged: Bool) throws
    func contribute(to result: inout TrainingResult)
}

extension TrainingObserver {
    public func runWillStart(_ context: TrainingContext) throws {}
    public func stepWillStart(_ step: Int, _ context: TrainingContext) throws {}
    public func forwardDidFinish(_ step: Int, _ context: TrainingContext) throws {}
    public func backwardDidFinish(_ step: Int, _ context: TrainingContext) throws {}
    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {}
    public func contribute(to result: inout TrainingResult) {}
}

/// The observers a configuration asks for, in their fixed order: norm telemetry, weight
/// norms, conv-bias gradient RMS, BRN warm-up, the inference-statistics estimator, then the
/// step-interval evaluation and the activation probe.
public enum StandardObservers {
    public static func make(for config: TrainingConfig) -> [any TrainingObserver] {
        var list: [any TrainingObserver] = [NormTelemetryObserver(), WeightNormObserver(), ConvBiasGradientObserver()]
        if let schedule = config.renormSchedule { list.append(RenormWarmupObserver(schedule)) }
        switch config.inferenceStatistics {
        case .runningAverage: break
        case .lastBatches: list.append(LastBatchesObserver())
        case let .precise(count): list.append(PreciseBNObserver(batches: count))
        }
        if config.stepEvaluation != StepEvaluation() { list.append(StepEvaluationObserver(config.stepEvaluation)) }
        if let probe = config.activationProbe { list.append(ActivationProbeObserver(probe)) }
        return list
    }
}
