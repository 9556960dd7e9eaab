import Foundation
import NormCore
import NormNet

/// The `train` runner: trains a cell with the NormNet engine.
///
/// A cell is either one phase —
/// `{model, dataset, batch_size, steps | epochs, optimizer, schedule, freeze, inference_stats}`
/// — or two: `pretrain` (same keys, no freeze) then `finetune` (same keys plus `freeze`), where
/// fine-tuning starts from the pretrained weights and running statistics with a fresh
/// classifier. A `dataset` is `{name, seed, scale, offset, noise, train_examples, as_channels}`:
/// inputs become `scale·x + offset + noise·N(0, 1)` (seeded by `seed`) — a shifted target task
/// whose statistics differ from the pretraining data — `train_examples` keeps a seeded subset
/// of the training split, and `as_channels: true` turns every input value into a channel of a
/// 1-wide (1×1) map, so every norm sees 1×1 feature maps. `optimizer.lr_reference_batch_size`
/// scales the learning rate linearly with the batch size (Goyal et al. 2017): the effective
/// rate is `lr · batch_size / lr_reference_batch_size`. Pretraining results are
/// cached in memory across cells (they depend only on `model`, `pretrain` and the seed).
/// ``TrainingRunner/keyDocumentation`` lists every key (shown by `normlab describe --spec`).
public struct TrainingRunner: CellRunner {
    public let registry: NormRegistry
    private let cache = PretrainCache()
    private let shapes = DatasetShapes()

    public init(registry: NormRegistry) { self.registry = registry }

    public var name: String { "train" }
    public var metricNames: [String]? {
        ["test_accuracy", "test_error", "test_loss", "train_loss", "test_accuracy_train_mode", "train_eval_gap", "train_steps",
         "weight_norm_growth", "conv_bias_grad_rms"] + TrainingCurveKeys.metricNames
    }
    public var curveNames: [String]? { ["test_accuracy", "train_loss", "weight_norm", "steps"] + TrainingCurveKeys.curveNames }

    static let phaseKeys = ["dataset", "batch_size", "steps", "epochs", "optimizer", "schedule", "freeze", "inference_stats", "precise_bn", "renorm_schedule"]
        + RecipeFeatureKeys.phaseKeys + TrainingCurveKeys.phaseKeys
    static let modelKeys = ["depth", "width", "kernel", "norm", "norm_position", "conv_bias", "activation", "downsample",
                            "head", "width_growth", "name", "shortcut", "preact", "zero_init_residual"] + RecipeFeatureKeys.modelKeys + MLPKeys.modelKeys

    /// Every key a `train` cell accepts, with what it means (printed by `normlab describe --spec`).
    /// Norm options (`model.norm.options.*`) are the method's own: `normlab describe METHOD`.
    public static let keyDocumentation: [(key: String, meaning: String)] = [
        ("model.name", "plain (default) | mlp (fully connected, model.hidden) | resnet | resnetN (N = 6n+2, e.g. resnet20, resnet56) | preact-resnetN: the CIFAR ResNet of He et al. 2016 (width 16, depth 20 unless given)"),
        ("model.shortcut / preact / zero_init_residual", "resnet only: A (zero-padded identity) | B (1x1 conv + norm) shortcuts; the pre-activation block (He et al. 2016b); each block's last norm scale starts at 0 (Goyal et al. 2017)"),
        ("model.norm", "a method name (or none), or {name, options: {...}}; options are the plugin's (normlab describe METHOD)"),
        ("model.depth / width / kernel", "conv blocks, channels of the first block, kernel size"),
        ("model.width_growth", "channel multiplier at each downsampling (default: the dataset preset's)"),
        ("model.norm_position", "before | after: the norm before the activation (conv-norm-act) or after it (conv-act-norm; in a resnet the norms that precede an activation move behind it)"),
        ("model.conv_bias", "true | false: a bias in each convolution (redundant before a train-mode BN)"),
        ("model.activation", "relu | sigmoid (FRN with tlu=true replaces it by its TLU)"),
        ("model.downsample", "max | avg | strided | none, after every block while maps stay >= 2 wide"),
        ("model.head", "gap | flatten: global average pooling or flattening before the classifier"),
        ("dataset", "a name (mnist1d, digits, fashion-mnist, synthetic), a path to an .npz file (x_train, y_train, x_test, y_test), or {name, seed, scale, offset, noise, train_examples, as_channels}"),
        ("dataset.scale / offset / noise", "inputs become scale*x + offset + noise*N(0,1) (seeded by dataset.seed): a shifted task"),
        ("dataset.train_examples", "keep a seeded subset of this many training examples"),
        ("dataset.as_channels", "true: every input value becomes a channel of a 1x1 map, so every norm sees 1x1 feature maps"),
        ("batch_size", "training batch size (default \(TrainPresets.defaultsText.batch), as normlab train)"),
        ("steps | epochs", "training length (default \(TrainPresets.defaultsText.duration); fashion-mnist: \(DatasetName.fashionMNIST.recipeDefaults.duration.map(TrainPresets.text) ?? TrainPresets.defaultsText.duration), as normlab train)"),
        ("optimizer.lr / momentum / weight_decay / nesterov", "SGD (defaults \(TrainPresets.defaultsText.optimizer), as normlab train); weight decay on conv and linear weights"),
        ("optimizer.lr_reference_batch_size", "scale lr linearly with the batch size: effective lr = lr * batch_size / this (Goyal et al. 2017)"),
    ] + RecipeFeatureKeys.documentation + MLPKeys.documentation + TrainingCurveKeys.documentation + [
        ("schedule.name / warmup_steps", "\(LRSchedule.kindNames.joined(separator: " | ")), with linear warm-up (default \(TrainPresets.defaultsText.schedule), as normlab train)"),
        ("freeze.norm_eval / requires_grad / frozen_stages", "MMDetection's BN freezing: statistics frozen, affine frozen, stem + stages 1..k frozen"),
        ("inference_stats.estimator", "ema | precise | last_batches: what the norms evaluate with — the running averages, PreciseBN over K fresh batches, or the mean of the last K training batches' statistics (Wu & Johnson 2021)"),
        ("inference_stats.batches", "K for precise / last_batches (default 100)"),
        ("precise_bn", "shorthand: K > 0 is inference_stats {estimator: precise, batches: K}"),
        ("renorm_schedule.hold_steps / ramp_steps", "BRN warm-up (Ioffe 2017): r_max=1, d_max=0 (BN) for hold_steps, then linear to the layer's r_max/d_max over ramp_steps"),
        ("pretrain / finetune", "a two-phase cell: each holds the phase keys above; finetune starts from pretrain's weights with a fresh classifier"),
        ("metrics", "test_accuracy, test_error (1 - accuracy), test_loss, train_loss, test_accuracy_train_mode, train_eval_gap, train_steps, weight_norm_growth (final/initial conv+linear weight norm), conv_bias_grad_rms (mean over steps of the conv biases' gradient RMS)"),
        ("curves (per epoch)", "test_accuracy, train_loss, weight_norm, steps (optimizer steps at each point)"),
    ]

    // MARK: - Validation

    public func validate(_ config: CellConfig) -> [ConfigProblem] {
        var problems = config.unknownKeys(at: "", allowed: ["model", "pretrain", "finetune"] + Self.phaseKeys)
        let twoPhase = config.contains("pretrain") || config.contains("finetune")
        if twoPhase {
            for p in ["pretrain", "finetune"] where !config.contains(p) {
                problems.append(ConfigProblem(path: p, message: "a two-phase cell needs both pretrain and finetune"))
            }
            for k in Self.phaseKeys where config.contains(k) {
                problems.append(ConfigProblem(path: k, message: "belongs under pretrain/finetune in a two-phase cell"))
            }
        }
        problems += config.unknownKeys(at: "model", allowed: Self.modelKeys)
        let phases = twoPhase ? ["pretrain.", "finetune."] : [""]
        for prefix in phases where !twoPhase || config.contains(String(prefix.dropLast())) {
            if !prefix.isEmpty { problems += config.unknownKeys(at: String(prefix.dropLast()), allowed: Self.phaseKeys) }
            do {
                let phase = try Phase(config, prefix: prefix)
                if prefix == "pretrain.", phase.freeze != FreezeSpec() {
                    problems.append(ConfigProblem(path: "pretrain.freeze", message: "freezing applies to finetune only"))
                }
                let shape = try shapes.shape(of: phase, key: config[prefix + "dataset"]?.canonicalJSON ?? "")
                do { try phase.features.augmentation.validate(sampleShape: shape.sampleShape) } catch {
                    throw ConfigProblem(path: prefix + "augment", message: "\(error)")
                }
                let spec = try modelSpec(config, dataset: shape, freeze: phase.freeze)
                // Build every layer: norm options against every layer's width, freezing against the layers.
                do {
                    let model = try Model(spec: spec, registry: registry, seed: 0)
                    do { try TrainingCurveKeys.check(phase, model: model, prefix: prefix) } catch let p as ConfigProblem { problems.append(p) }
                    let batch = phase.recipe.batchSize ?? TrainPresets.defaultBatchSize
                    if batch % model.batchMultiple != 0 {
                        problems.append(ConfigProblem(path: prefix + "batch_size", message:
                            "\(batch) is not a multiple of \(model.batchMultiple), which a norm layer's batch split needs (e.g. virtual_batch_size)"))
                    }
                } catch {
                    problems.append(ConfigProblem(path: "model", message: "\(error)"))
                }
            } catch let p as ConfigProblem { problems.append(p) } catch { problems.append(ConfigProblem(path: prefix + "dataset", message: "\(error)")) }
        }
        return problems
    }

    // MARK: - Running

    public func run(_ config: CellConfig, seed: UInt64, threads: Int) throws -> CellResult {
        Parallel.threadCount = threads
        let seeds = TrainPresets.seeds(from: seed)
        if config.contains("pretrain") {
            let pre = try Phase(config, prefix: "pretrain.")
            let fine = try Phase(config, prefix: "finetune.")
            let key = (config["model"]?.canonicalJSON ?? "") + "|" + (config["pretrain"]?.canonicalJSON ?? "") + "|\(seed)|\(threads)"
            let pretrained = try cache.value(for: key) { () -> [(name: String, tensor: Tensor)] in
                let data = try pre.loadDataset()
                let model = try Model(spec: try modelSpec(config, dataset: data, freeze: FreezeSpec()), registry: registry, seed: seeds.model)
                let result = try Trainer(model: model, dataset: data, config: pre.training(for: data, seed: seeds.shuffle)).run()
                if result.diverged { throw AblationError("pretraining diverged at step \(result.divergedAtStep ?? -1)") }
                return Checkpoint.arrays(of: model)
            }
            let data = try fine.loadDataset()
            let model = try Model(spec: try modelSpec(config, dataset: data, freeze: fine.freeze), registry: registry, seed: seeds.model &+ 1)
            _ = try Checkpoint.load(model, arrays: pretrained.filter { !$0.name.hasPrefix("classifier") }, strict: false)
            return try finish(model: model, data: data, training: fine.training(for: data, seed: seeds.shuffle &+ 1))
        }
        let phase = try Phase(config, prefix: "")
        let data = try phase.loadDataset()
        let model = try Model(spec: try modelSpec(config, dataset: data, freeze: phase.freeze), registry: registry, seed: seeds.model)
        return try finish(model: model, data: data, training: phase.training(for: data, seed: seeds.shuffle))
    }

    private func finish(model: Model, data: Dataset, training: TrainingConfig) throws -> CellResult {
        let r = try Trainer(model: model, dataset: data, config: training).run()
        var metrics: [String: Double] = ["train_steps": Double(r.steps)]
        metrics["test_accuracy"] = r.diverged ? .nan : (r.testAccuracy ?? .nan)
        metrics["test_error"] = 1 - metrics["test_accuracy"]!
        metrics["train_loss"] = r.trainLoss ?? .nan
        metrics["test_accuracy_train_mode"] = r.testAccuracyTrainMode ?? .nan
        metrics["train_eval_gap"] = r.trainEvalAccuracyGap ?? .nan
        metrics["test_loss"] = r.diverged ? .nan : try testLoss(model, data)
        metrics["weight_norm_growth"] = r.weightNormGrowth
        if let g = r.convBiasGradientRMS { metrics["conv_bias_grad_rms"] = g }
        var curves: [String: [Double]] = [:]
        TrainingCurveKeys.record(r, metrics: &metrics, curves: &curves)
        let acc = r.history.compactMap(\.testAccuracy)
        if !acc.isEmpty { curves["test_accuracy"] = acc }
        curves["train_loss"] = r.history.map(\.trainLoss)
        curves["weight_norm"] = r.history.map(\.weightNorm)
        // the x of every per-epoch point: optimizer steps taken (for "steps to reach")
        curves["steps"] = r.history.map { Double($0.steps) }
        return CellResult(metrics: metrics, curves: curves, telemetry: telemetry(r), diverged: r.diverged,
                          datasetHash: data.contentHash)
    }

    private func testLoss(_ model: Model, _ data: Dataset) throws -> Double {
        model.setMode(.eval)
        let n = data.testLabels.count, per = data.testInputs.count / max(n, 1)
        var total = 0.0, start = 0
        while start < n {
            let end = min(start + 500, n)
            let x = data.testInputs.withUnsafeBufferPointer { b in
                Tensor(shape: [end - start] + data.sampleShape, scalars: Array(b[(start * per)..<(end * per)]))
            }
            total += try SoftmaxCrossEntropy.loss(logits: model.forward(x), labels: Array(data.testLabels[start..<end])) * Double(end - start)
            start = end
        }
        model.setMode(.train)
        return total / Double(n)
    }

    private func telemetry(_ r: TrainingResult) -> ConfigValue {
        .list(r.normTelemetry.map { t in
            var m: [(key: String, value: ConfigValue)] = [("layer", .string(t.name)), ("method", .string(t.method)),
                                                          ("norm_eval", .bool(t.freeze.freezesStatistics)),
                                                          ("requires_grad", .bool(!t.freeze.freezesAffine))]
            func add(_ k: String, _ v: Double?) { if let v, v.isFinite { m.append((k, .real(v))) } }
            add("mean_gap", t.meanGap); add("std_log_ratio", t.stdLogRatio)
            add("final_mean_gap", t.finalMeanGap); add("final_std_log_ratio", t.finalStdLogRatio)
            add("r_clip_rate", t.rClipRate); add("d_clip_rate", t.dClipRate)
            return .map(m)
        })
    }

    // MARK: - Decoding

    func modelSpec(_ c: CellConfig, dataset: Dataset, freeze: FreezeSpec) throws -> ModelSpec {
        try modelSpec(c, dataset: (dataset.sampleShape, dataset.classes), freeze: freeze)
    }

    func modelSpec(_ c: CellConfig, dataset: (sampleShape: [Int], classes: Int), freeze: FreezeSpec) throws -> ModelSpec {
        let shape = dataset.sampleShape, classes = dataset.classes
        let name: ModelName
        do { name = try ModelName(parsing: try c.string("model.name", default: "plain")) } catch let e as NetError {
            throw ConfigProblem(path: "model.name", message: e.description)
        }
        if name.family == .mlp { return try MLPKeys.modelSpec(c, sampleShape: shape, classes: classes, norm: try normSpec(c), freeze: freeze) }
        var spec = name.family == .resnet
            ? TrainPresets.resNet(sampleShape: shape, classes: classes, norm: nil)
            : TrainPresets.model(sampleShape: shape, classes: classes, norm: nil)
        if c.contains("model.hidden") { throw ConfigProblem(path: "model.hidden", message: "applies to mlp models only (model.name: mlp)") }
        if let d = name.depth, c.contains("model.depth"), try c.int("model.depth") != d {
            throw ConfigProblem(path: "model.depth", message: "the model name '\(try c.string("model.name"))' gives depth \(d)")
        }
        spec.depth = try c.int("model.depth", default: name.depth ?? spec.depth)
        spec.resnet.preActivation = try c.bool("model.preact", default: name.preActivation)
        if name.preActivation && !spec.resnet.preActivation {
            throw ConfigProblem(path: "model.preact", message: "false contradicts the model name '\(try c.string("model.name"))'")
        }
        spec.resnet.zeroInitResidual = try c.bool("model.zero_init_residual", default: false)
        if c.contains("model.shortcut") {
            let text = try c.string("model.shortcut")
            guard let kind = ShortcutKind(parsing: text) else { throw ConfigProblem(path: "model.shortcut", message: "must be A or B, got '\(text)'") }
            spec.resnet.shortcut = kind
        }
        spec.width = try c.int("model.width", default: spec.width)
        spec.kernel = try c.int("model.kernel", default: spec.kernel)
        spec.widthGrowth = try c.int("model.width_growth", default: spec.widthGrowth)
        spec.convBias = try c.bool("model.conv_bias", default: spec.convBias)
        spec.normPosition = try Self.choice(c, "model.norm_position", spec.normPosition)
        spec.activation = try Self.choice(c, "model.activation", spec.activation)
        spec.downsample = try Self.choice(c, "model.downsample", spec.downsample)
        spec.head = try Self.choice(c, "model.head", spec.head)
        spec.norm = try normSpec(c)
        try RecipeFeatureKeys.apply(c, to: &spec)
        spec.freeze = freeze
        return spec
    }

    func normSpec(_ c: CellConfig) throws -> NormSpec? {
        guard let v = c["model.norm"] else { return .registryDefault }
        if v.isNull || v.stringValue?.lowercased() == "none" { return nil }
        if let name = v.stringValue { return try checked(NormSpec(name), path: "model.norm") }
        let name = try c.string("model.norm.name")
        if name.lowercased() == "none" { return nil }
        var options: [String: OptionValue] = [:]
        for (k, value) in c["model.norm.options"]?.mapValue ?? [] {
            switch value {
            case let .bool(b): options[k] = .bool(b)
            case let .integer(i): options[k] = .integer(i)
            case let .real(d): options[k] = .real(d)
            case let .string(s): options[k] = s.lowercased() == "none" ? OptionValue.none : .text(s)
            case .null: options[k] = OptionValue.none
            default: throw ConfigProblem(path: "model.norm.options.\(k)", message: "must be a scalar")
            }
        }
        return try checked(NormSpec(name, options: options), path: "model.norm")
    }

    private func checked(_ spec: NormSpec, path: String) throws -> NormSpec {
        do { _ = try registry.options(for: spec) } catch { throw ConfigProblem(path: path, message: "\(error)") }
        return spec
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ c: CellConfig, _ path: String, _ fallback: T) throws -> T where T.RawValue == String {
        guard c.contains(path) else { return fallback }
        let s = try c.string(path)
        guard let v = T(rawValue: s.lowercased()) else {
            throw ConfigProblem(path: path, message: "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
        }
        return v
    }
}

/// One training phase of a cell, decoded.
struct Phase {
    var dataset: DatasetSource
    var datasetSeed: UInt64
    var noise: Double
    var scale: Double
    var offset: Double
    var trainExamples: Int?
    /// The phase's training keys, decoded into the one recipe `normlab train` uses too (its
    /// defaults are the recipe's; model keys and freezing are filled in by the runner).
    var recipe: TrainingRecipe
    var freeze: FreezeSpec
    var inferenceStatistics: InferenceStatistics
    var renormSchedule: RenormSchedule?
    var asChannels: Bool
    var features: RecipeFeatures
    /// Whether the phase states `augment`; otherwise the data set's default augmentation
    /// applies (``Dataset/recipeDefaults``), as in `normlab train`.
    var statesAugmentation: Bool
    var stepEvaluation: StepEvaluation
    var activationProbe: ActivationProbe?

    init(_ c: CellConfig, prefix p: String) throws {
        let dpath = p + "dataset"
        let name: String
        if let plain = c[dpath]?.stringValue { name = plain } else { name = try c.string(dpath + ".name", default: "mnist1d") }
        do { dataset = try DatasetSource(argument: name) } catch { throw ConfigProblem(path: dpath, message: "\(error)") }
        let isMap = c[dpath]?.mapValue != nil
        datasetSeed = UInt64(max(0, isMap ? try c.int(dpath + ".seed", default: 0) : 0))
        noise = isMap ? try c.double(dpath + ".noise", default: 0) : 0
        scale = isMap ? try c.double(dpath + ".scale", default: 1) : 1
        offset = isMap ? try c.double(dpath + ".offset", default: 0) : 0
        if isMap { for problem in c.unknownKeys(at: dpath, allowed: ["name", "seed", "noise", "scale", "offset", "train_examples", "as_channels"]) { throw problem } }
        asChannels = isMap ? try c.bool(dpath + ".as_channels", default: false) : false
        trainExamples = isMap && c.contains(dpath + ".train_examples") ? try c.int(dpath + ".train_examples") : nil
        guard noise >= 0 else { throw ConfigProblem(path: dpath + ".noise", message: "must be >= 0") }
        if let t = trainExamples, t < 2 { throw ConfigProblem(path: dpath + ".train_examples", message: "must be at least 2") }
        features = try RecipeFeatureKeys.features(c, prefix: p)
        statesAugmentation = c.contains(p + "augment")
        stepEvaluation = try TrainingCurveKeys.stepEvaluation(c, prefix: p)
        activationProbe = try TrainingCurveKeys.activationProbe(c, prefix: p)
        recipe = try Self.trainingRecipe(c, prefix: p, optimizer: features.optimizer)
        freeze = FreezeSpec(normEval: try c.bool(p + "freeze.norm_eval", default: false),
                            normRequiresGrad: try c.bool(p + "freeze.requires_grad", default: true),
                            frozenStages: try c.int(p + "freeze.frozen_stages", default: -1))
        if c.contains(p + "precise_bn") && c.contains(p + "inference_stats") {
            throw ConfigProblem(path: p + "precise_bn", message: "give precise_bn or inference_stats, not both")
        }
        if c.contains(p + "precise_bn") {
            let k = try c.int(p + "precise_bn")
            guard k >= 0 else { throw ConfigProblem(path: p + "precise_bn", message: "must be >= 0, got \(k)") }
            inferenceStatistics = k > 0 ? .precise(batches: k) : .runningAverage
        } else {
            let ipath = p + "inference_stats"
            for problem in c.unknownKeys(at: ipath, allowed: ["estimator", "batches"]) { throw problem }
            let name = try c.string(ipath + ".estimator", default: "ema")
            let k = try c.int(ipath + ".batches", default: 100)
            do {
                inferenceStatistics = try InferenceStatistics(name: name, batches: k)
                try inferenceStatistics.validate()
            } catch { throw ConfigProblem(path: ipath, message: "\(error)") }
        }
        let rpath = p + "renorm_schedule"
        if c.contains(rpath) {
            for problem in c.unknownKeys(at: rpath, allowed: ["hold_steps", "ramp_steps"]) { throw problem }
            let schedule = RenormSchedule(holdSteps: try c.int(rpath + ".hold_steps", default: 0),
                                          rampSteps: try c.int(rpath + ".ramp_steps", default: 0))
            do { try schedule.validate() } catch { throw ConfigProblem(path: rpath, message: "\(error)") }
            renormSchedule = schedule
        } else {
            renormSchedule = nil
        }
    }

    /// The training configuration for `data`, shuffled by `seed` (the recipe's, with the
    /// phase's inference statistics and BRN warm-up).
    func training(for data: Dataset, seed: UInt64) -> TrainingConfig {
        var r = recipe
        r.inferenceStatistics = inferenceStatistics
        r.renormSchedule = renormSchedule
        var config = r.config(for: data)
        config.seed = seed
        let datasetAugmentation = config.features.augmentation
        config.features = features
        if !statesAugmentation { config.features.augmentation = datasetAugmentation }
        config.stepEvaluation = stepEvaluation
        config.activationProbe = activationProbe
        return config
    }

    /// Batch size, duration, optimizer and schedule keys (under `prefix`) as recipe overrides.
    static func trainingRecipe(_ c: CellConfig, prefix p: String, optimizer: OptimizerName) throws -> TrainingRecipe {
        var r = TrainingRecipe(norm: nil)
        r.optimizer = optimizer
        if c.contains(p + "batch_size") {
            let b = try c.int(p + "batch_size")
            guard b >= 1 else { throw ConfigProblem(path: p + "batch_size", message: "must be a positive integer, got \(b)") }
            r.batchSize = b
        }
        if c.contains(p + "steps") && c.contains(p + "epochs") {
            throw ConfigProblem(path: p + "steps", message: "give steps or epochs, not both")
        }
        for key in ["steps", "epochs"] where c.contains(p + key) {
            let n = try c.int(p + key)
            guard n >= 1 else { throw ConfigProblem(path: p + key, message: "must be >= 1") }
            r.duration = key == "steps" ? .steps(n) : .epochs(n)
        }
        for problem in c.unknownKeys(at: p + "optimizer", allowed: ["lr", "momentum", "weight_decay", "nesterov", "lr_reference_batch_size"]
                                     + RecipeFeatureKeys.optimizerKeys) { throw problem }
        if c.contains(p + "optimizer.lr") { r.learningRate = try c.double(p + "optimizer.lr") }
        if c.contains(p + "optimizer.momentum") { r.momentum = try c.double(p + "optimizer.momentum") }
        if c.contains(p + "optimizer.weight_decay") { r.weightDecay = try c.double(p + "optimizer.weight_decay") }
        if c.contains(p + "optimizer.nesterov") { r.nesterov = try c.bool(p + "optimizer.nesterov") }
        if c.contains(p + "optimizer.lr_reference_batch_size") {
            let reference = try c.int(p + "optimizer.lr_reference_batch_size")
            guard reference >= 1 else { throw ConfigProblem(path: p + "optimizer.lr_reference_batch_size", message: "must be a positive integer, got \(reference)") }
            r.learningRateReferenceBatchSize = reference
        }
        if c.contains(p + "schedule.warmup_steps") { r.warmupSteps = try c.int(p + "schedule.warmup_steps") }
        if c.contains(p + "schedule.name") {
            let name = try c.string(p + "schedule.name")
            guard let kind = LRSchedule.kind(named: name) else {
                throw ConfigProblem(path: p + "schedule.name", message: "must be \(LRSchedule.kindNames.joined(separator: ", ")), got '\(name)'")
            }
            r.schedule = kind
        }
        do { try r.validateTraining() } catch { throw ConfigProblem(path: p + "optimizer", message: "\(error)") }
        return r
    }

    /// The named data set, shifted by seeded noise and subsampled as configured.
    func loadDataset() throws -> Dataset {
        var base = try dataset.load(seed: dataset == .builtin(.mnist1d) ? 0 : datasetSeed)
        if asChannels {
            // every value becomes a channel of a 1-wide map: (C, L) -> (C·L, 1), (C, H, W) -> (C·H·W, 1, 1)
            let shape = [base.sampleShape.product] + Array(repeating: 1, count: base.sampleShape.count - 1)
            base = Dataset(name: base.name + "+as_channels", trainInputs: base.trainInputs.reshaped([base.trainLabels.count] + shape),
                           trainLabels: base.trainLabels, testInputs: base.testInputs.reshaped([base.testLabels.count] + shape),
                           testLabels: base.testLabels, classes: base.classes, contentHash: base.contentHash + "+as_channels")
        }
        guard noise > 0 || scale != 1 || offset != 0 || trainExamples != nil else { return base }
        var rng = SeededGenerator(seed: 0x5EED ^ datasetSeed)
        func noisy(_ t: Tensor) -> Tensor {
            guard noise > 0 || scale != 1 || offset != 0 else { return t }
            var out = t
            out.withUnsafeMutableBufferPointer { b in
                for i in 0..<b.count { b[i] = Float(scale * Double(b[i]) + offset + (noise > 0 ? noise * rng.nextNormal() : 0)) }
            }
            return out
        }
        var trainX = noisy(base.trainInputs), trainY = base.trainLabels
        if let k = trainExamples, k < trainY.count {
            var order = Array(0..<trainY.count)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(in: 0...i)) }
            let keep = order.prefix(k).sorted(), per = trainX.count / trainY.count
            let src = trainX
            trainX = Tensor(shape: [k] + base.sampleShape, initializingWith: { b in
                src.withUnsafeBufferPointer { s in
                    for (j, i) in keep.enumerated() { for e in 0..<per { b[j * per + e] = s[i * per + e] } }
                }
            })
            trainY = keep.map { trainY[$0] }
        }
        let testX = noisy(base.testInputs)
        let shift = "seed=\(datasetSeed),scale=\(scale),offset=\(offset),noise=\(noise),n=\(trainY.count)"
        return Dataset(name: "\(base.name)+shift(\(shift))",
                       trainInputs: trainX, trainLabels: trainY, testInputs: testX, testLabels: base.testLabels,
                       classes: base.classes, contentHash: base.contentHash + "+shift(" + shift + ")")
    }
}

/// The sample shape and class count of each data set a study's cells name, loaded once per
/// distinct `dataset` value (validation builds every cell's model before anything runs).
final class DatasetShapes: @unchecked Sendable {
    private let lock = NSLock()
    private var shapes: [String: (sampleShape: [Int], classes: Int)] = [:]

    func shape(of phase: Phase, key: String) throws -> (sampleShape: [Int], classes: Int) {
        lock.lock(); defer { lock.unlock() }
        if let s = shapes[key] { return s }
        let data = try phase.loadDataset()
        shapes[key] = (data.sampleShape, data.classes)
        return shapes[key]!
    }
}

/// Pretrained weights shared by the cells of a study that pretrain identically.
final class PretrainCache: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: [(name: String, tensor: Tensor)]] = [:]

    func value(for key: String, make: () throws -> [(name: String, tensor: Tensor)]) throws -> [(name: String, tensor: Tensor)] {
        lock.lock()
        if let v = values[key] { lock.unlock(); return v }
        lock.unlock()
        let v = try make()
        lock.lock(); values[key] = v; lock.unlock()
        return v
    }
}
