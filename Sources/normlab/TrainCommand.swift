import ArgumentParser
import Foundation
import NormCore
import NormNet

extension DatasetName: ExpressibleByArgument {}
extension OptimizerName: ExpressibleByArgument {}
extension NormPosition: ExpressibleByArgument {}
extension ActivationKind: ExpressibleByArgument {}
extension DownsampleKind: ExpressibleByArgument {}
extension HeadKind: ExpressibleByArgument {}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a small CNN with a chosen normalization and report accuracy and norm telemetry.",
        discussion: """
            Model, optimizer and schedule default to the data set's preset; every option below overrides it.
            Presets: mnist1d: 4 Conv1d blocks (width 32, kernel 5, max-pool 2 between blocks), flatten + linear;
            digits and other 2-D data (fashion-mnist too): 3 Conv2d blocks (width 32, doubling at each 2x2 max-pool),
            global average pool + linear.
            --model resnet20 (any data set): the CIFAR ResNet-20 of He et al. 2016 (3x3 stem at width 16, three stages
            of basic blocks at widths 16/32/64, stride 2 entering stages 2 and 3, option-A shortcuts), a norm after every conv.
            Both: batch 64, 30 epochs (fashion-mnist: 20), SGD lr 0.1, momentum 0.9 (Nesterov), weight decay 5e-4 on conv/linear
            weights, cosine schedule with 100 warm-up steps; training images augmented as the data set declares
            (fashion-mnist: pad-4 random crops and horizontal flips; the others: none). With --json, stdout is one JSON object (one line);
            every field but "seconds" is identical for the same options and seed.
            """)

    enum Schedule: String, ExpressibleByArgument { case step, cosine, constant }

    @Option(help: "digits, mnist1d, fashion-mnist, synthetic, or a path to an .npz file (x_train, y_train, x_test, y_test; see the README).") var dataset: String = "mnist1d"
    @Option(name: .customLong("data-seed"), help: "Seed of the data split/generator (digits split, synthetic).") var dataSeed: UInt64 = 0
    @Option(help: "Normalization method name or alias, 'none', or 'default' (the registry's default method; see `normlab list`).") var norm: String = NormSpec.defaultMethodName
    @Option(name: .customLong("norm-set"), help: "A norm hyper-parameter KEY=VALUE (repeatable).") var normSettings: [String] = []
    @OptionGroup var plugins: PluginOptions

    @Option(help: "plain (default), resnet, resnetN (N = 6n+2, e.g. resnet20, resnet56) or preact-resnetN: CIFAR-style ResNet of He et al. 2016 (width 16, option-A shortcuts).") var model: String?
    @Option(help: "ResNet shortcut where the shape changes: A (zero-padded identity) or B (1x1 conv + norm).") var shortcut: String?
    @Flag(name: .customLong("zero-init-residual"), help: "ResNet: zero-initialize each block's last norm scale (Goyal et al. 2017).") var zeroInitResidual = false
    @Option(help: "Conv blocks (plain net) or total depth 6n+2 (ResNet).") var depth: Int?
    @Option(help: "Channels of the first block.") var width: Int?
    @Option(help: "Conv kernel size (odd).") var kernel: Int?
    @Option(name: .customLong("norm-position"), help: "Norm before or after the activation (default before).") var normPosition: NormPosition?
    @Flag(name: .customLong("conv-bias"), inversion: .prefixedNo, help: "Give convolutions a bias (default off).") var convBias: Bool?
    @Option(help: "relu or sigmoid (default relu).") var activation: ActivationKind?
    @Option(help: "Downsampling between stages: max, avg, strided or none.") var downsample: DownsampleKind?
    @Option(name: .customLong("width-growth"), help: "Width multiplier at each downsampling.") var widthGrowth: Int?
    @Option(help: "Classifier head: gap or flatten.") var head: HeadKind?
    @Flag(name: .customLong("norm-eval"), help: "Freeze every norm layer's statistics (MMDetection norm_eval).") var normEval = false
    @Flag(name: .customLong("freeze-norm-affine"), help: "No gradients for norm weights (MMDetection requires_grad=False).") var freezeNormAffine = false
    @Option(name: .customLong("frozen-stages"), help: "MMDetection frozen_stages: -1 none, k freezes the stem and stages 1..k.") var frozenStages: Int = -1

    @Option(help: "sgd (default), adam or adamw (PyTorch's rules; Adam/AdamW default to lr 1e-3 and weight decay 0 / 1e-2).") var optimizer: OptimizerName?
    @Flag(inversion: .prefixedNo, help: "Augment training images: random crops with zero padding and horizontal flips (2-D data only; default: the data set's, on for fashion-mnist, off otherwise).") var augment: Bool?
    @Option(name: .customLong("crop-padding"), help: "With --augment: zero padding of the random crop (default 4; 0 = flips only).") var cropPadding: Int?
    @Flag(name: .customLong("no-flip"), help: "With --augment: no horizontal flips.") var noFlip = false
    @Option(help: "Dropout probability before the classifier (default 0).") var dropout: Double?
    @Option(name: .customLong("label-smoothing"), help: "Label smoothing epsilon of the cross-entropy, in [0, 1] (default 0).") var labelSmoothing: Double?
    @Flag(name: .customLong("weight-standardization"), help: "Weight Standardization of every convolution (Qiao et al. 2019; eps 1e-6 inside the square root, as timm's StdConv2d).") var weightStandardization = false
    @Option(help: "Base learning rate.") var lr: Double?
    @Option(help: "SGD momentum.") var momentum: Double?
    @Option(name: .customLong("weight-decay"), help: "L2 weight decay (conv and linear weights).") var weightDecay: Double?
    @Flag(inversion: .prefixedNo, help: "Nesterov momentum.") var nesterov: Bool?
    @Option(help: "step (x0.1 at 50% and 75%), cosine or constant.") var schedule: Schedule?
    @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps.") var warmupSteps: Int?
    @Option(name: .customLong("batch-size"), help: "Training batch size.") var batchSize: Int?
    @Option(help: "Epochs to train.") var epochs: Int?
    @Option(help: "Steps to train (instead of --epochs).") var steps: Int?
    @Option(help: "Run seed (initialization and shuffling).") var seed: UInt64 = 0
    @Option(help: "Threads for the kernels and the split of matrix products; OpenBLAS runs one thread per call (default: all cores).") var threads: Int?
    @Option(name: .customLong("inference-stats"), help: "Statistics the norm layers evaluate with: ema (the running averages, default), precise (PreciseBN over K fresh batches after training) or last_batches (mean of the last K training batches' statistics).") var inferenceStats: String = "ema"
    @Option(name: .customLong("inference-batches"), help: "K for --inference-stats precise|last_batches.") var inferenceBatches: Int = 100
    @Option(name: .customLong("precise-bn"), help: "Shorthand for --inference-stats precise --inference-batches K.") var preciseBN: Int?
    @Option(name: .customLong("renorm-hold"), help: "BRN warm-up: steps at r_max=1, d_max=0 (BN) before the ramp.") var renormHold: Int?
    @Option(name: .customLong("renorm-ramp"), help: "BRN warm-up: steps of the linear ramp to the layer's r_max/d_max.") var renormRamp: Int?
    @Option(help: "Load parameters and buffers from this .npz before training.") var initFrom: String?
    @Flag(name: .customLong("init-nonstrict"), help: "With --init-from, load matching tensors only and report the rest.") var initNonstrict = false
    @Option(help: "Save parameters and buffers to this .npz after training.") var save: String?
    @Flag(name: .customLong("epoch-eval"), inversion: .prefixedNo, help: "Evaluate the test set after every epoch (history).") var epochEval = true
    @Flag(help: "Print one JSON object on stdout instead of the summary.") var json = false
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        if epochs != nil && steps != nil { throw ValidationError("give --epochs or --steps, not both") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if augment != true && (cropPadding != nil || noFlip) { throw ValidationError("--crop-padding and --no-flip need --augment") }
        if preciseBN != nil && inferenceStats != "ema" { throw ValidationError("give --precise-bn or --inference-stats, not both") }
    }

    func run() throws {
        // Engine errors are one-line messages too.
        do { try train() } catch let error as NetError { throw CLIError(error.description) }
    }

    private func train() throws {
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        ComputeThreads.set(threadCount)
        // Model options are checked before any data is loaded.
        let modelName = try model.map(ModelName.init(parsing:))
        let shortcutKind = try shortcut.map { text in
            guard let kind = ShortcutKind(parsing: text) else { throw CLIError("--shortcut must be A or B, got '\(text)'") }
            return kind
        }
        let registry = try plugins.registry()
        let data = try DatasetSource(argument: dataset).load(seed: dataSeed)

        var recipe = TrainingRecipe(norm: try TrainingRecipe.normSpec(name: norm, settings: normSettings, registry: registry))
        recipe.depth = depth; recipe.width = width; recipe.kernel = kernel
        if let modelName { try recipe.setModel(modelName) }
        recipe.shortcut = shortcutKind
        if zeroInitResidual { recipe.zeroInitResidual = true }
        recipe.normPosition = normPosition; recipe.convBias = convBias; recipe.activation = activation
        recipe.downsample = downsample; recipe.widthGrowth = widthGrowth; recipe.head = head
        recipe.freeze = FreezeSpec(normEval: normEval, normRequiresGrad: !freezeNormAffine, frozenStages: frozenStages)
        recipe.learningRate = lr; recipe.momentum = momentum; recipe.weightDecay = weightDecay; recipe.nesterov = nesterov
        switch schedule {
        case .step?: recipe.schedule = LRSchedule.standardStep
        case .cosine?: recipe.schedule = .cosine(minimumFactor: 0)
        case .constant?: recipe.schedule = .constant
        case nil: break
        }
        recipe.warmupSteps = warmupSteps
        recipe.batchSize = batchSize
        if let epochs { recipe.duration = .epochs(epochs) }
        if let steps { recipe.duration = .steps(steps) }
        recipe.seed = seed
        recipe.inferenceStatistics = try preciseBN.map { .precise(batches: $0) }
            ?? InferenceStatistics(name: inferenceStats, batches: inferenceBatches)
        try recipe.inferenceStatistics.validate()
        if renormHold != nil || renormRamp != nil {
            recipe.renormSchedule = RenormSchedule(holdSteps: renormHold ?? 0, rampSteps: renormRamp ?? 0)
            try recipe.renormSchedule?.validate()
        }
        recipe.evaluateEachEpoch = epochEval
        recipe.optimizer = optimizer
        if let augment {
            recipe.augmentation = augment
                ? AugmentationConfig(cropPadding: cropPadding ?? AugmentationConfig.standard.cropPadding, flip: !noFlip) : AugmentationConfig.none
        }
        recipe.dropout = dropout
        recipe.labelSmoothing = labelSmoothing
        if weightStandardization { recipe.weightStandardization = try WeightStandardization() }

        let model: Model
        do { model = try recipe.makeModel(for: data, registry: registry) } catch let NormError.missingOption(method, option) {
            throw CLIError("\(method): option '\(option)' is required (e.g. --norm-set \(option)=VALUE)")
        }
        if let initFrom {
            let report = try Checkpoint.load(model, from: URL(fileURLWithPath: initFrom), strict: !initNonstrict)
            if !quiet && (!report.missing.isEmpty || !report.unexpected.isEmpty || !report.mismatched.isEmpty) {
                note("--init-from: loaded \(report.loaded.count); kept \(report.missing.count) missing, ignored \(report.unexpected.count) unexpected and \(report.mismatched.count) mismatched")
            }
        }
        let progress = quiet ? nil : TrainProgressPrinter(interactive: isatty(STDERR_FILENO) == 1, plain: !json)
        let run = try recipe.run(on: data, registry: registry, model: model, progress: progress.map { p in { p.report($0) } })
        progress?.finish()
        if let save { try Checkpoint.save(model, to: URL(fileURLWithPath: save)) }
        if json {
            print(run.report.json.rendered())
        } else {
            printSummary(run.result, data: data, model: model)
        }
    }

    private func printSummary(_ r: TrainingResult, data: Dataset, model: Model) {
        func pct(_ d: Double?) -> String { d.map { String(format: "%.2f %%", $0 * 100) } ?? "n/a" }
        if r.diverged {
            print("DIVERGED at step \(r.divergedAtStep ?? r.steps): loss became \(r.divergenceLoss ?? "non-finite")")
        }
        print("dataset \(data.name), norm \(model.normSlots.first?.method ?? "none"), \(model.parameterCount) parameters, \(r.steps) steps in \(String(format: "%.1f", r.seconds)) s")
        print("test accuracy \(pct(r.testAccuracy)) (train mode \(pct(r.testAccuracyTrainMode))), train loss \(r.trainLoss.map { String(format: "%.4f", $0) } ?? "n/a")")
        for t in r.normTelemetry where t.recordedSteps > 0 || t.rClipRate != nil {
            var line = "  \(t.name) \(t.method): mean gap \(fmt(t.finalMeanGap)), std log-ratio \(fmt(t.finalStdLogRatio)) (last 10 %)"
            if let rr = t.rClipRate, let dr = t.dClipRate { line += ", r/d clip rates \(fmt(rr))/\(fmt(dr))" }
            print(line)
        }
    }

    private func fmt(_ d: Double?) -> String { d.map { String(format: "%.4f", $0) } ?? "n/a" }
}

private func note(_ s: String) { FileHandle.standardError.write(("normlab: " + s + "\n").data(using: .utf8)!) }

/// Progress on stderr: a redrawn bar on a terminal, one line per epoch otherwise (or
/// nothing when `plain` is off and stderr is not a terminal).
final class TrainProgressPrinter {
    let interactive: Bool
    let plain: Bool
    private var lastDraw = -1.0

    init(interactive: Bool, plain: Bool) { self.interactive = interactive; self.plain = plain }

    func report(_ p: TrainingProgress) {
        if interactive {
            guard p.seconds - lastDraw >= 0.1 || p.step == p.totalSteps else { return }
            lastDraw = p.seconds
            let width = 30, filled = p.totalSteps > 0 ? width * p.step / p.totalSteps : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            write("\r[\(bar)] \(p.step)/\(p.totalSteps) epoch \(p.epoch) loss \(String(format: "%.4f", p.loss)) lr \(String(format: "%.4g", p.learningRate)) \(rate(p))\u{1B}[K")
        } else if plain, let e = p.epochSummary {
            var line = "epoch \(e.epoch) step \(e.steps)/\(p.totalSteps) loss \(String(format: "%.4f", e.trainLoss)) train_acc \(String(format: "%.4f", e.trainAccuracy))"
            if let t = e.testAccuracy { line += " test_acc \(String(format: "%.4f", t))" }
            line += " lr \(String(format: "%.4g", p.learningRate)) \(rate(p))"
            write(line + "\n")
        }
    }

    func finish() { if interactive { write("\n") } }

    /// Elapsed time, throughput and the estimated time left.
    private func rate(_ p: TrainingProgress) -> String {
        let eta = p.secondsRemaining
        return String(format: "%.1fs %.0f img/s eta %@", p.seconds, p.imagesPerSecond, eta.isFinite ? Self.clock(eta) : "?")
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    private func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}
