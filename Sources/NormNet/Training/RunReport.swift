import NormCore

/// The one JSON object `normlab train --json` prints: the configuration that produced the
/// run, the results, and the norm telemetry. Everything but `seconds` is a deterministic
/// function of the inputs (same seed and thread count ⇒ identical text).
public struct RunReport {
    public var dataset: Dataset
    public var model: Model
    public var config: TrainingConfig
    /// The run seed (initialization and shuffling derive from it).
    public var seed: UInt64
    public var threads: Int
    public var result: TrainingResult

    public init(dataset: Dataset, model: Model, config: TrainingConfig, seed: UInt64, threads: Int, result: TrainingResult) {
        self.dataset = dataset; self.model = model; self.config = config; self.seed = seed
        self.threads = threads; self.result = result
    }

    public var json: JSONValue {
        let spec = model.spec
        let r = result
        var norm: JSONValue = .string("none")
        var normOptions: JSONValue = .object([])
        if let slot = model.normSlots.first {
            norm = .string(slot.method)
            normOptions = .object(slot.options.values.keys.sorted().map { ($0, slot.options.values[$0]!.json) })
        }
        let schedule: String
        switch config.schedule.kind {
        case .constant: schedule = "constant"
        case .step: schedule = "step"
        case .cosine: schedule = "cosine"
        }
        let telemetry: [JSONValue] = r.normTelemetry.map { t in
            .object([("layer", .string(t.name)), ("method", .string(t.method)),
                     ("tracks_running_stats", .bool(t.tracksRunningStatistics)),
                     ("norm_eval", .bool(t.freeze.freezesStatistics)), ("requires_grad", .bool(!t.freeze.freezesAffine)),
                     ("recorded_steps", .int(t.recordedSteps)),
                     ("mean_gap", .optional(t.meanGap)), ("std_log_ratio", .optional(t.stdLogRatio)),
                     ("final_mean_gap", .optional(t.finalMeanGap)), ("final_std_log_ratio", .optional(t.finalStdLogRatio)),
                     ("brn_r_clip_rate", .optional(t.rClipRate)), ("brn_d_clip_rate", .optional(t.dClipRate)),
                     ("brn_final_r_clip_rate", .optional(t.finalRClipRate)), ("brn_final_d_clip_rate", .optional(t.finalDClipRate)),
                     ("note", .optional(t.note))])
        }
        let history: [JSONValue] = r.history.map { e in
            .object([("epoch", .int(e.epoch)), ("steps", .int(e.steps)), ("train_loss", .number(e.trainLoss)),
                     ("train_accuracy", .number(e.trainAccuracy)), ("test_accuracy", .optional(e.testAccuracy)),
                     ("weight_norm", .number(e.weightNorm))])
        }
        var fields: [(String, JSONValue)] = [
            ("dataset", .string(dataset.name)),
            ("dataset_hash", .string(dataset.contentHash)),
            ("norm", norm),
            ("norm_options", normOptions),
            ("test_accuracy", .optional(r.testAccuracy)),
            ("test_accuracy_train_mode", .optional(r.testAccuracyTrainMode)),
            ("train_eval_accuracy_gap", .optional(r.trainEvalAccuracyGap)),
            ("train_loss", .optional(r.trainLoss)),
            ("train_accuracy", .optional(r.trainAccuracy)),
            ("steps", .int(r.steps)),
            ("epochs", .number(r.epochs)),
            ("diverged", .bool(r.diverged)),
            ("diverged_at_step", .optional(r.divergedAtStep)),
            ("divergence_loss", .optional(r.divergenceLoss)),
            ("seconds", .number((r.seconds * 1000).rounded() / 1000)),
            ("seed", .uint(seed)),
            ("threads", .int(threads)),
            ("batch_size", .int(config.batchSize)),
            ("lr", .number(config.optimizer.learningRate)),
            ("final_lr", .number(r.finalLearningRate)),
            ("momentum", .number(config.optimizer.momentum)),
            ("weight_decay", .number(config.optimizer.weightDecay)),
            ("nesterov", .bool(config.optimizer.nesterov)),
            ("schedule", .string(schedule)),
            ("warmup_steps", .int(config.schedule.warmupSteps)),
            ("model", .object([
                ("input_shape", .array(spec.inputShape.map(JSONValue.int))), ("classes", .int(spec.classes)),
                ("depth", .int(spec.depth)), ("width", .int(spec.width)), ("kernel", .int(spec.kernel)),
                ("norm_position", .string(spec.normPosition.rawValue)), ("conv_bias", .bool(spec.convBias)),
                ("activation", .string(spec.activation.rawValue)), ("downsample", .string(spec.downsample.rawValue)),
                ("downsample_every", .int(spec.downsampleEvery)), ("width_growth", .int(spec.widthGrowth)),
                ("head", .string(spec.head.rawValue)),
                ("norm_eval", .bool(spec.freeze.normEval)), ("norm_requires_grad", .bool(spec.freeze.normRequiresGrad)),
                ("frozen_stages", .int(spec.freeze.frozenStages)),
                ("parameters", .int(model.parameterCount)),
            ])),
            ("norm_telemetry", .array(telemetry)),
            ("history", .array(history)),
        ]
        fields.append(("weight_norm_initial", .number(r.initialWeightNorm)))
        fields.append(("weight_norm_final", .number(r.finalWeightNorm)))
        fields.append(("conv_bias_grad_rms", .optional(r.convBiasGradientRMS)))
        var inference: [(String, JSONValue)] = [("estimator", .string(config.inferenceStatistics.name)),
                                                ("batches", .int(config.inferenceStatistics.batches))]
        if let p = r.inferenceStatistics {
            inference += [("batches_used", .int(p.batches)), ("updated", .array(p.updated.map(JSONValue.string)))]
        }
        fields.append(("inference_statistics", .object(inference)))
        return .object(fields)
    }
}
