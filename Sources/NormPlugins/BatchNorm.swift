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
public final class BatchNorm: NormalizationPlugin, RunningStatisticsProviding {
    public static let descriptor = NormDescriptor(
        name: "batch_norm", aliases: ["bn", "batchnorm"],
        summary: "Batch Normalization: per-channel statistics over (N, spatial)",
        reference: "Ioffe & Szegedy 2015, arXiv:1502.03167; PyTorch nn.BatchNorm2d conventions",
        options: [CommonOptions.eps(), CommonOptions.affine(default: true)] + CommonOptions.runningStatistics(track: true),
        ranks: 2...5,
        notes: ["reduces over every axis but 1; affine weight/bias of shape (C,)",
                "normalizes with the biased batch variance; running_var stores the unbiased one (running_var=unbiased)",
                "eval uses running statistics; with track_running_stats=false it uses batch statistics"])

    let core: BatchStatisticsCore

    public init(shape: FeatureShape, options: NormOptions) throws {
        core = try BatchStatisticsCore(Self.descriptor, shape: shape, options: options)
    }

    public var parameters: [Parameter] { core.parameters }
    public var buffers: [Buffer] { core.buffers }
    public var tracksRunningStatistics: Bool { core.running != nil }
    /// The running statistics, when tracked.
    public var runningStatistics: RunningStatistics? { core.running }
    /// Per-channel mean, biased variance and values per channel of the last forward that used
    /// batch statistics; `nil` before one.
    public var lastBatchStatistics: (mean: [Double], variance: [Double], count: Int)? { core.lastBatchStatistics }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try core.forward(x, mode: mode, renorm: nil) }
    public func backward(_ gradOutput: Tensor) throws -> Tensor { try core.backward(gradOutput) }
}
