import NormCore

/// Per-layer batch-vs-running statistics telemetry (``NormTelemetry``), recorded on every
/// train-mode forward when the configuration asks for it.
public final class NormTelemetryObserver: TrainingObserver {
    private var telemetry: [NormTelemetry] = []

    public init() {}

    public func runWillStart(_ context: TrainingContext) throws {
        for slot in context.model.normSlots { slot.telemetry.reset() }
        context.model.recordTelemetry(context.config.recordTelemetry)
    }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        context.model.recordTelemetry(false)
        telemetry = context.model.normSlots.map(NormTelemetry.init(slot:))
    }

    public func contribute(to result: inout TrainingResult) { result.normTelemetry = telemetry }
}

/// The L2 norm of the convolution and linear weights before the first and after the last step
/// (its growth signals a blow-up under normalization: Ioffe 2017, §2).
public final class WeightNormObserver: TrainingObserver {
    private var initial = 0.0, final = 0.0

    public init() {}

    public func runWillStart(_ context: TrainingContext) throws { initial = context.model.weightNorm }
    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws { final = context.model.weightNorm }

    public func contribute(to result: inout TrainingResult) {
        result.initialWeightNorm = initial
        result.finalWeightNorm = final
    }
}

/// The mean over steps of the RMS of the convolution biases' gradients (zero in exact
/// arithmetic when every biased convolution feeds a train-mode BN).
public final class ConvBiasGradientObserver: TrainingObserver {
    private var sum = 0.0, steps = 0

    public init() {}

    public func backwardDidFinish(_ step: Int, _ context: TrainingContext) throws {
        if let rms = context.model.convBiasGradientRMS { sum += rms; steps += 1 }
    }

    public func contribute(to result: inout TrainingResult) { result.convBiasGradientRMS = steps > 0 ? sum / Double(steps) : nil }
}

/// Batch Renormalization's warm-up (Ioffe 2017, §4): before every step, every layer with r/d
/// corrections (``RenormalizationControl``) gets the schedule's limits towards the limits it
/// had when the run started, which are restored after the run.
public final class RenormWarmupObserver: TrainingObserver {
    private let schedule: RenormSchedule
    private var layers: [(layer: any RenormalizationControl, target: RenormLimits)] = []

    public init(_ schedule: RenormSchedule) { self.schedule = schedule }

    public func runWillStart(_ context: TrainingContext) throws {
        layers = context.model.normSlots.compactMap { $0.layer.plugin as? any RenormalizationControl }.map { ($0, $0.limits) }
    }

    public func stepWillStart(_ step: Int, _ context: TrainingContext) throws {
        for (layer, target) in layers { layer.limits = schedule.limits(at: step, target: target) }
    }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        for (layer, target) in layers { layer.limits = target }
    }
}

/// The last-K estimator (Wu & Johnson 2021): the batch statistics of the final K train steps,
/// averaged into the running statistics after the run (not after a divergence).
public final class LastBatchesObserver: TrainingObserver {
    private var average: LastBatchesAverage?
    private var report: StatisticsReplacementReport?

    public init() {}

    public func runWillStart(_ context: TrainingContext) throws { average = LastBatchesAverage(context.model) }

    public func forwardDidFinish(_ step: Int, _ context: TrainingContext) throws {
        if step >= context.totalSteps - context.config.inferenceStatistics.batches { try average?.record() }
    }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        guard !diverged, let average else { return }
        average.apply()
        report = average.report
    }

    public func contribute(to result: inout TrainingResult) { result.inferenceStatistics = report }
}

/// PreciseBN after the run (not after a divergence): running statistics recomputed over K
/// fresh training batches drawn by their own seeded sampler.
public final class PreciseBNObserver: TrainingObserver {
    private let batches: Int
    private var report: StatisticsReplacementReport?

    public init(batches: Int) { self.batches = batches }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        guard !diverged else { return }
        let data = context.dataset, config = context.config
        var sampler = BatchSampler(count: data.trainLabels.count, batchSize: config.batchSize, seed: config.seed ^ 0x5052_4543_4953_45)
        var g = BatchGatherer()
        let inputs = (0..<batches).map { _ in
            let t = g.gather(data.trainInputs, sampler.next())
            return Tensor(shape: t.shape, scalars: t.scalars)   // own copy: the gatherer reuses its blocks
        }
        report = try PreciseBN.recompute(context.model, batches: inputs)
    }

    public func contribute(to result: inout TrainingResult) { result.inferenceStatistics = report }
}
