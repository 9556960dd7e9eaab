import Foundation
import NormCore

/// One line of training progress (reported after every step).
public struct TrainingProgress: Sendable {
    public let step: Int
    public let totalSteps: Int
    public let epoch: Int
    public let loss: Double
    public let learningRate: Double
    public let seconds: Double
    /// Set after the last step of an epoch.
    public let epochSummary: EpochRecord?
    /// Training images (samples) processed so far.
    public var images: Int = 0

    /// Training throughput so far (samples per second of wall time, evaluation included).
    public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }
    /// Estimated seconds to the last step at the rate so far.
    public var secondsRemaining: Double { step > 0 ? seconds / Double(step) * Double(totalSteps - step) : .nan }
}

/// Per-epoch history.
public struct EpochRecord: Sendable, Equatable {
    public let epoch: Int
    public let steps: Int
    public let trainLoss: Double
    public let trainAccuracy: Double
    /// Eval-mode test accuracy when `evaluateEachEpoch` is on.
    public let testAccuracy: Double?
    /// L2 norm of the convolution and linear weights at the end of the epoch (``Model/weightNorm``).
    public let weightNorm: Double
}

/// What a run produced.
public struct TrainingResult: Sendable {
    /// Eval-mode test accuracy at the end (nil only if a diverged model could not be evaluated).
    public var testAccuracy: Double?
    /// Test accuracy with the model in train mode (batch statistics, batches of the training
    /// batch size; buffers restored afterwards).
    public var testAccuracyTrainMode: Double?
    /// Mean training loss over the last epoch's worth of steps (finite steps only).
    public var trainLoss: Double?
    /// Training-batch accuracy over the same steps.
    public var trainAccuracy: Double?
    public var steps: Int
    public var epochs: Double
    public var seconds: Double
    public var diverged: Bool
    public var divergedAtStep: Int?
    /// `nan`, `inf`, `-inf` or the loss value that broke the ``DivergenceRule``, when diverged.
    public var divergenceLoss: String?
    public var finalLearningRate: Double
    public var history: [EpochRecord]
    public var losses: [Double]
    public var normTelemetry: [NormTelemetry]
    /// What the inference-statistics estimator changed (nil for the running average, or
    /// when the run diverged).
    public var inferenceStatistics: StatisticsReplacementReport?
    /// ``Model/weightNorm`` before the first step and after the last.
    public var initialWeightNorm: Double
    public var finalWeightNorm: Double
    /// Mean over steps of the RMS of the convolution biases' gradients (nil without conv biases).
    /// Zero in exact arithmetic when every biased convolution feeds a train-mode BN: the mean
    /// subtraction cancels a per-channel constant.
    public var convBiasGradientRMS: Double?
    /// Test accuracy against steps (``StepEvaluation/every``), empty unless configured.
    public var stepEvaluations: [(step: Int, testAccuracy: Double)] = []
    /// Test accuracy after ``StepEvaluation/earlyStep`` steps (nil unless configured and reached).
    public var earlyTestAccuracy: Double?
    /// The ``ActivationProbe``'s percentiles over training (nil unless configured).
    public var activationPercentiles: ActivationPercentileCurve?

    /// Final over initial weight norm.
    public var weightNormGrowth: Double { finalWeightNorm / initialWeightNorm }

    /// Train-mode minus eval-mode test accuracy.
    public var trainEvalAccuracyGap: Double? {
        guard let a = testAccuracyTrainMode, let b = testAccuracy else { return nil }
        return a - b
    }
}

/// Trains a ``Model`` on a ``Dataset`` with SGD, deterministically: the same model seed,
/// config seed and thread count give bit-identical losses, parameters and results.
///
/// A loss that is non-finite or beyond 1000x the initial one stops the run and is reported
/// (`diverged`, ``DivergenceRule``), never thrown.
public final class Trainer {
    public let model: Model
    public let dataset: Dataset
    public let config: TrainingConfig
    public let optimizer: Optimizer

    public init(model: Model, dataset: Dataset, config: TrainingConfig) throws {
        try config.validate()
        guard Array(dataset.trainInputs.shape.dropFirst()) == model.spec.inputShape else {
            throw NetError("the model expects samples of shape \(model.spec.inputShape.shapeText), the data set has \(dataset.sampleShape.shapeText)")
        }
        guard dataset.classes <= model.spec.classes else {
            throw NetError("the data set has \(dataset.classes) classes, the model \(model.spec.classes)")
        }
        guard dataset.trainLabels.count >= 2 else { throw NetError("need at least 2 training samples") }
        guard config.batchSize % model.batchMultiple == 0 else {
            throw NetError("batch size \(config.batchSize) is not a multiple of \(model.batchMultiple), which a norm layer's batch split needs (e.g. virtual_batch_size)")
        }
        self.model = model
        self.dataset = dataset
        try config.features.augmentation.validate(sampleShape: dataset.sampleShape)
        self.config = config
        optimizer = try config.features.makeOptimizer(sgd: config.optimizer, model: model)
    }

    /// Steps the configured duration amounts to.
    public var totalSteps: Int {
        switch config.duration {
        case let .steps(s): return s
        case let .epochs(e): return e * BatchSampler(count: dataset.trainLabels.count, batchSize: config.batchSize, seed: 0).batchesPerEpoch
        }
    }

    /// Trains for the configured duration. The configuration's diagnostics and schedules
    /// (``StandardObservers``) and any `observers` given here watch the run
    /// (``TrainingObserver``); a non-finite or exploding loss (``DivergenceRule``) ends it.
    public func run(observers extra: [any TrainingObserver] = [],
                    progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainingResult {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        var sampler = BatchSampler(count: dataset.trainLabels.count, batchSize: config.batchSize, seed: config.seed)
        var gatherer = BatchGatherer()
        var augmenter = BatchAugmenter(config.features.augmentation, seed: config.features.augmentationSeed(from: config.seed))
        let total = totalSteps, perEpoch = sampler.batchesPerEpoch
        let observers = StandardObservers.make(for: config) + extra
        let context = TrainingContext(model: model, dataset: dataset, config: config, totalSteps: total)
        for o in observers { try o.runWillStart(context) }
        model.setMode(.train)

        var losses: [Double] = [], corrects: [Int] = [], sizes: [Int] = []
        losses.reserveCapacity(total)
        var history: [EpochRecord] = []
        var diverged = false, divergedAt: Int?, divergenceLoss: String?
        var divergence = DivergenceRule()
        var lr = config.optimizer.learningRate
        var step = 0, images = 0
        while step < total {
            for o in observers { try o.stepWillStart(step, context) }
            lr = config.schedule.rate(at: step, totalSteps: total, base: config.optimizer.learningRate)
            let indices = sampler.next()
            let x = augmenter.augment(gatherer.gather(dataset.trainInputs, indices))
            let labels = indices.map { dataset.trainLabels[$0] }
            let logits = try model.forward(x)
            let ce = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, labelSmoothing: config.features.labelSmoothing)
            if let loss = divergence.check(loss: ce.loss) {
                diverged = true
                divergedAt = step
                divergenceLoss = loss
                break
            }
            for o in observers { try o.forwardDidFinish(step, context) }
            try model.backward(ce.gradient)
            for o in observers { try o.backwardDidFinish(step, context) }
            optimizer.step(learningRate: lr)
            losses.append(ce.loss); corrects.append(ce.correct); sizes.append(labels.count)
            step += 1

            var summary: EpochRecord?
            if step % perEpoch == 0 || step == total {
                summary = try epochRecord(step: step, perEpoch: perEpoch, losses: losses, corrects: corrects, sizes: sizes)
                history.append(summary!)
            }
            images += labels.count
            progress?(TrainingProgress(step: step, totalSteps: total, epoch: sampler.epoch, loss: ce.loss,
                                       learningRate: lr, seconds: elapsed(), epochSummary: summary, images: images))
        }
        for o in observers { try o.runDidFinish(context, diverged: diverged) }

        var testAccuracy: Double?, trainModeAccuracy: Double?
        do {
            testAccuracy = try Evaluation.accuracy(model, inputs: dataset.testInputs, labels: dataset.testLabels,
                                                   mode: .eval, batchSize: config.evalBatchSize)
            trainModeAccuracy = try Evaluation.accuracy(model, inputs: dataset.testInputs, labels: dataset.testLabels,
                                                        mode: .train, batchSize: config.batchSize)
        } catch where diverged {
            // A diverged model may not even evaluate; the divergence is the result.
        }
        model.setMode(.train)

        let window = min(perEpoch, losses.count)
        let l = losses.suffix(window), c = corrects.suffix(window), s = sizes.suffix(window)
        var result = TrainingResult(
            testAccuracy: testAccuracy, testAccuracyTrainMode: trainModeAccuracy,
            trainLoss: l.isEmpty ? nil : l.reduce(0, +) / Double(l.count),
            trainAccuracy: s.isEmpty ? nil : Double(c.reduce(0, +)) / Double(s.reduce(0, +)),
            steps: step, epochs: Double(step) / Double(perEpoch), seconds: 0,
            diverged: diverged, divergedAtStep: divergedAt, divergenceLoss: divergenceLoss,
            finalLearningRate: lr, history: history, losses: losses, normTelemetry: [], inferenceStatistics: nil,
            initialWeightNorm: 0, finalWeightNorm: 0, convBiasGradientRMS: nil)
        for o in observers { o.contribute(to: &result) }
        result.seconds = elapsed()
        return result
    }

    /// The summary of the epoch ending at `step` (test accuracy when evaluated every epoch).
    private func epochRecord(step: Int, perEpoch: Int, losses: [Double], corrects: [Int], sizes: [Int]) throws -> EpochRecord {
        let window = step % perEpoch == 0 ? perEpoch : step % perEpoch
        let l = losses.suffix(window), c = corrects.suffix(window), s = sizes.suffix(window)
        var test: Double?
        if config.evaluateEachEpoch {
            test = try Evaluation.accuracy(model, inputs: dataset.testInputs, labels: dataset.testLabels,
                                           mode: .eval, batchSize: config.evalBatchSize)
        }
        return EpochRecord(epoch: (step + perEpoch - 1) / perEpoch, steps: step,
                           trainLoss: l.reduce(0, +) / Double(l.count),
                           trainAccuracy: Double(c.reduce(0, +)) / Double(s.reduce(0, +)), testAccuracy: test,
                           weightNorm: model.weightNorm)
    }
}
