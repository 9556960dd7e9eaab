import NormCore

/// Batch Normalization (Ioffe & Szegedy, 2015) with PyTorch's `nn.BatchNorm{1,2,3}d`
/// semantics.
///
/// Train mode normalizes with the batch mean and the **biased** batch variance over every
/// axis but the channel axis 1, and (when tracking) updates
/// `running = (1 − momentum)·running + momentum·batch` with the **unbiased** batch variance;
/// `momentum: none` is the cumulative average over `num_batches_tracked`. Eval mode uses the
/// running statistics, or batch statistics when `track_running_stats=false`. Inputs of rank
/// 2 to 5, `(N, C)` through `(N, C, D, H, W)`.
///
/// `train_statistics=running` (default `batch`) makes train mode normalize with the running
/// mean/var as they are before this step's update — exactly what eval mode would do with the
/// current buffers — held constant in the backward pass (`dx = dy·γ/√(running_var + eps)`,
/// `dγ = Σ dy·x̂`, `dβ = Σ dy`). The batch mean and biased variance are still computed, update
/// the running statistics as usual (momentum, cumulative, `keras_decay`, `running_var`,
/// `skip_nonfinite` unchanged) and are recorded in ``lastBatchStatistics``. This is the
/// ablation Batch Renormalization warns about (Ioffe 2017, arXiv:1702.03275, section 2):
/// normalizing with moving averages during training, with the statistics outside the
/// gradient, ignores that the running statistics depend on the parameters, and the paper
/// reports the model blowing up. It requires `track_running_stats=true`.
public final class BatchNorm: NormalizationPlugin, RunningStatisticsProviding, BatchStatisticsReporting, AffineFolding {
    public static let descriptor = NormDescriptor(
        name: "batch_norm", aliases: ["bn", "batchnorm"],
        summary: "Batch Normalization: per-channel statistics over (N, spatial)",
        reference: "Ioffe & Szegedy 2015, arXiv:1502.03167; PyTorch nn.BatchNorm2d conventions",
        options: [CommonOptions.eps(), CommonOptions.affine(default: true)] + CommonOptions.runningStatistics(track: true)
            + [OptionSpec("train_statistics", .choice(TrainStatistics.allCases.map(\.rawValue)), default: .text(TrainStatistics.batch.rawValue),
                          "what train mode normalizes with: batch statistics, or the running statistics (constants for the gradient)")],
        ranks: 2...5,
        notes: ["reduces over every axis but 1; affine weight/bias of shape (C,)",
                "normalizes with the biased batch variance; running_var stores the unbiased one (running_var=unbiased)",
                "eval uses running statistics; with track_running_stats=false it uses batch statistics",
                "train_statistics=running (Ioffe 2017 §2 ablation): train normalizes with the pre-update running stats, "
                    + "constants for the gradient; batch stats still update them"],
        constraints: CommonOptions.runningStatisticsConstraints
            + [.setRequires(option: "train_statistics", other: "track_running_stats", value: .bool(true))],
        reduction: .batchAndSpatial)

    let core: BatchStatisticsCore

    public init(shape: FeatureShape, options: NormOptions) throws {
        let trainStatistics = TrainStatistics(rawValue: options.choice("train_statistics")) ?? .batch
        core = try BatchStatisticsCore(Self.descriptor, shape: shape, options: options, trainStatistics: trainStatistics)
    }

    public var parameters: [Parameter] { core.parameters }
    public var buffers: [Buffer] { core.buffers }
    public var tracksRunningStatistics: Bool { core.running != nil }
    /// What train mode normalizes with (`train_statistics`).
    public var trainStatistics: TrainStatistics { core.trainStatistics }
    /// The running statistics, when tracked.
    public var runningStatistics: RunningStatistics? { core.running }
    /// Per-channel mean, biased variance and values per channel of the last forward that
    /// computed batch statistics (every train step, also with `train_statistics=running`);
    /// `nil` before one.
    public var lastBatchStatistics: (mean: [Double], variance: [Double], count: Int)? { core.lastBatchStatistics }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try core.forward(x, mode: mode, renorm: nil) }
    public func backward(_ gradOutput: Tensor) throws -> Tensor { try core.backward(gradOutput) }

    public var evalStatistics: EvalStatistics? { core.evalStatistics }
    public var lastBatchMoments: BatchMoments? { core.lastBatchMoments }
    public func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal> { FrozenBatchNorm.folding(self) }
}
