import NormCore

/// Eval-mode test accuracy at fixed step intervals, and at one chosen early step: test
/// accuracy against training steps, the BN paper's Figure 1(a) (Ioffe & Szegedy 2015, §4.1),
/// at a finer grain than the per-epoch history.
public struct StepEvaluation: Sendable, Equatable {
    /// Evaluate after every `every` steps (step 0, every, 2·every, …, and the last step when it
    /// is a multiple); nil = no curve.
    public var every: Int?
    /// Evaluate after exactly this many steps (``TrainingResult/earlyTestAccuracy``); nil = none.
    public var earlyStep: Int?

    public init(every: Int? = nil, earlyStep: Int? = nil) { self.every = every; self.earlyStep = earlyStep }

    public func validate() throws {
        if let every, every < 1 { throw NetError("eval_every must be >= 1, got \(every)") }
        if let earlyStep, earlyStep < 1 { throw NetError("early_step must be >= 1, got \(earlyStep)") }
    }
}

/// Records a ``StepEvaluation`` during training (``TrainingObserver``): the whole test set,
/// in eval mode, in batches of ``TrainingConfig/evalBatchSize`` (``Evaluation``; the model,
/// its buffers and its telemetry are left as they were).
public final class StepEvaluationObserver: TrainingObserver {
    private let schedule: StepEvaluation
    private var points: [(step: Int, testAccuracy: Double)] = []
    private var early: Double?

    public init(_ schedule: StepEvaluation) { self.schedule = schedule }

    public func runWillStart(_ context: TrainingContext) throws {
        if let s = schedule.earlyStep, s > context.totalSteps {
            throw NetError("early_step \(s) is beyond the run's \(context.totalSteps) steps")
        }
    }

    public func stepWillStart(_ step: Int, _ context: TrainingContext) throws { try evaluate(step, context) }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        if !diverged { try evaluate(context.totalSteps, context) }
    }

    public func contribute(to result: inout TrainingResult) {
        result.stepEvaluations = points
        result.earlyTestAccuracy = early
    }

    private func evaluate(_ step: Int, _ context: TrainingContext) throws {
        let onCurve = schedule.every.map { step % $0 == 0 } ?? false
        guard onCurve || step == schedule.earlyStep else { return }
        let data = context.dataset
        let accuracy = try Evaluation.accuracy(context.model, inputs: data.testInputs, labels: data.testLabels,
                                               mode: .eval, batchSize: context.config.evalBatchSize)
        if onCurve { points.append((step, accuracy)) }
        if step == schedule.earlyStep { early = accuracy }
    }
}
