import NormCore

/// The one JSON object `normlab train --json` prints: the configuration that produced the
/// run, the results, and the norm telemetry. Everything but `seconds` is a deterministic
/// function of the inputs (same seed and thread count ⇒ identical text). The object is a
/// ``ConfigValue`` map in print order; `json.rendered()` is the printed line.
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

    public var json: ConfigValue {
        let spec = model.spec
        let r = result
        var norm: ConfigValue = .string("none")
        var normOptions: ConfigValue = .map([])
        if let slot = model.normSlots.first {
            norm = .string(slot.method)
            normOptions = .map(slot.options.values.keys.sorted().map { (key: $0, value: ConfigValue(slot.options.values[$0]!)) })
        }
        let schedule: String
        switch config.schedule.kind {
        case .constant: schedule = "constant"
        case .step: schedule = "step"
        case .cosine: schedule = "cosine"
        }
        let telemetry: [ConfigValue] = r.normTelemetry.map { t in
            .map([("layer", .string(t.name)), ("method", .string(t.method)),
                  ("tracks_running_stats", .bool(t.tracksRunningStatistics)),
                  ("norm_eval", .bool(t.freeze.freezesStatistics)), ("requires_grad", .bool(!t.freeze.freezesAffine)),
                  ("recorded_steps", .integer(t.recordedSteps)),
                  ("mean_gap", .optional(t.meanGap)), ("std_log_ratio", .optional(t.stdLogRatio)),
                  ("final_mean_gap", .optional(t.finalMeanGap)), ("final_std_log_ratio", .optional(t.finalStdLogRatio)),
                  ("brn_r_clip_rate", .optional(t.rClipRate)), ("brn_d_clip_rate", .optional(t.dClipRate)),
                  ("brn_final_r_clip_rate", .optional(t.finalRClipRate)), ("brn_final_d_clip_rate", .optional(t.finalDClipRate)),
                  ("note", .optional(t.note))])
        }
        let history: [ConfigValue] = r.history.map { e in
            .map([("epoch", .integer(e.epoch)), ("steps", .integer(e.steps)), ("train_loss", .real(e.trainLoss)),
                  ("train_accuracy", .real(e.trainAccuracy)), ("test_accuracy", .optional(e.testAccuracy)),
                  ("weight_norm", .real(e.weightNorm))])
        }
        var fields: [(key: String, value: ConfigValue)] = [
            ("dataset", .string(dataset.name)),
            ("dataset_hash", .string(dataset.contentHash)),
            ("norm", norm),
            ("norm_options", normOptions),
            ("test_accuracy", .optional(r.testAccuracy)),
            ("test_accuracy_train_mode", .optional(r.testAccuracyTrainMode)),
            ("train_eval_accuracy_gap", .optional(r.trainEvalAccuracyGap)),
            ("train_loss", .optional(r.trainLoss)),
            ("train_accuracy", .optional(r.trainAccuracy)),
            ("steps", .integer(r.steps)),
            ("epochs", .real(r.epochs)),
            ("diverged", .bool(r.diverged)),
            ("diverged_at_step", .optional(r.divergedAtStep)),
            ("divergence_loss", .optional(r.divergenceLoss)),
            ("seconds", .real((r.seconds * 1000).rounded() / 1000)),
            ("seed", .unsigned(seed)),
            ("threads", .integer(threads)),
            ("dataset_file_sha256", .optional(dataset.sourceFile?.sha256)),
            ("optimizer", .string(config.features.optimizer.rawValue)),
            ("label_smoothing", .real(config.features.labelSmoothing)),
            ("augment", config.features.augmentation.isIdentity ? .null
                : .map([("crop_padding", .integer(config.features.augmentation.cropPadding)),
                        ("flip", .bool(config.features.augmentation.flip))])),
            ("dropout", .real(model.spec.dropout)),
            ("weight_standardization", .optional(model.spec.weightStandardization?.epsilon)),
            ("batch_size", .integer(config.batchSize)),
            ("lr", .real(config.optimizer.learningRate)),
            ("final_lr", .real(r.finalLearningRate)),
            ("momentum", .real(config.optimizer.momentum)),
            ("weight_decay", .real(config.optimizer.weightDecay)),
            ("nesterov", .bool(config.optimizer.nesterov)),
            ("schedule", .string(schedule)),
            ("warmup_steps", .integer(config.schedule.warmupSteps)),
            ("model", .map([
                ("input_shape", .list(spec.inputShape.map(ConfigValue.integer))), ("classes", .integer(spec.classes)),
                ("depth", .integer(spec.depth)), ("width", .integer(spec.width)), ("kernel", .integer(spec.kernel)),
                ("norm_position", .string(spec.normPosition.rawValue)), ("conv_bias", .bool(spec.convBias)),
                ("activation", .string(spec.activation.rawValue)), ("downsample", .string(spec.downsample.rawValue)),
                ("downsample_every", .integer(spec.downsampleEvery)), ("width_growth", .integer(spec.widthGrowth)),
                ("head", .string(spec.head.rawValue)),
                ("norm_eval", .bool(spec.freeze.normEval)), ("norm_requires_grad", .bool(spec.freeze.normRequiresGrad)),
                ("frozen_stages", .integer(spec.freeze.frozenStages)),
                ("parameters", .integer(model.parameterCount)),
            ])),
            ("norm_telemetry", .list(telemetry)),
            ("history", .list(history)),
        ]
        if spec.family == .resnet, let i = fields.firstIndex(where: { $0.key == "model" }), case let .map(m) = fields[i].value {
            // A ResNet's report names it first; plain-net reports stay as they were.
            fields[i].value = .map([("name", .string(spec.family.rawValue)), ("shortcut", .string(spec.resnet.shortcut.rawValue)),
                                    ("preact", .bool(spec.resnet.preActivation)),
                                    ("zero_init_residual", .bool(spec.resnet.zeroInitResidual))] + m)
        }
        if spec.family == .mlp, let i = fields.firstIndex(where: { $0.key == "model" }), case let .map(m) = fields[i].value {
            fields[i].value = .map([("name", .string(spec.family.rawValue)), ("hidden", .list(spec.hidden.map(ConfigValue.integer)))]
                                   + m.filter { ["input_shape", "classes", "norm_position", "activation", "parameters"].contains($0.key) })
        }
        fields.append(("weight_norm_initial", .real(r.initialWeightNorm)))
        fields.append(("weight_norm_final", .real(r.finalWeightNorm)))
        fields.append(("conv_bias_grad_rms", .optional(r.convBiasGradientRMS)))
        var inference: [(key: String, value: ConfigValue)] = [("estimator", .string(config.inferenceStatistics.name)),
                                                              ("batches", .integer(config.inferenceStatistics.batches))]
        if let p = r.inferenceStatistics {
            inference += [("batches_used", .integer(p.batches)), ("updated", .list(p.updated.map(ConfigValue.string)))]
        }
        fields.append(("inference_statistics", .map(inference)))
        // the step-interval diagnostics, only when configured (reports without them are unchanged)
        if !r.stepEvaluations.isEmpty || r.earlyTestAccuracy != nil {
            fields.append(("step_evaluations", .list(r.stepEvaluations.map { .map([("step", .integer($0.step)), ("test_accuracy", .real($0.testAccuracy))]) })))
            fields.append(("early_test_accuracy", .optional(r.earlyTestAccuracy)))
        }
        if let p = r.activationPercentiles {
            fields.append(("activation_probe", .map([
                ("layer", .string(p.layer)), ("unit", .integer(p.unit)), ("examples", .integer(p.examples)), ("mode", .string(p.mode.rawValue)),
                ("steps", .list(p.steps.map(ConfigValue.integer))),
                ("p15", .list(p.p15.map(ConfigValue.real))), ("p50", .list(p.p50.map(ConfigValue.real))), ("p85", .list(p.p85.map(ConfigValue.real))),
                ("spread_drift", .optional(p.spreadDrift)), ("median_drift", .optional(p.medianDrift)),
            ])))
        }
        return .map(fields)
    }
}
