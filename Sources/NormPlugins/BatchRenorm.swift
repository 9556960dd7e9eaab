import NormCore

/// Batch Renormalization (Ioffe, 2017, Algorithm 1).
///
/// Train: `x̂ = (x − μ_B)/σ_B · r + d` with `σ_B = √(var_B + eps)` (biased variance),
/// `σ = √(running_var + eps)`, `r = clip(σ_B/σ, 1/r_max, r_max)` and
/// `d = clip((μ_B − running_mean)/σ, −d_max, d_max)` taken from the running statistics before
/// this step's update, both **constants** in the backward pass; `y = weight·x̂ + bias`; running
/// statistics are updated as in ``BatchNorm``. Eval is BatchNorm's eval. `r_max = 1, d_max = 0`
/// is exactly BatchNorm. `rMax`/`dMax` may be changed between steps by a schedule; how often r
/// and d hit their clips is observable.
public final class BatchRenorm: NormalizationPlugin, RunningStatisticsProviding, BatchStatisticsReporting, AffineFolding,
                                RenormalizationControl {
    public static let descriptor = NormDescriptor(
        name: "batch_renorm", aliases: ["brn", "batchrenorm"],
        summary: "Batch Renormalization: BN corrected towards running statistics by clipped r, d",
        reference: "Ioffe 2017, arXiv:1702.03275, Algorithm 1",
        options: [CommonOptions.eps(), CommonOptions.affine(default: true),
                  OptionSpec("r_max", .real(1...Double.greatestFiniteMagnitude), default: .real(3), "r is clipped to [1/r_max, r_max]",
                             samples: [.real(1), .real(1.1)]),
                  OptionSpec("d_max", .real(0...Double.greatestFiniteMagnitude), default: .real(5), "d is clipped to [-d_max, d_max]",
                             samples: [.real(0), .real(0.05)])]
            + CommonOptions.runningStatistics(track: true),
        ranks: 2...5,
        notes: ["r and d are applied before the affine and are constants for the gradient (stop-gradient)",
                "r and d use the running statistics before this step's update; running stats update as BN",
                "requires track_running_stats=true; eval is BN eval; r_max=1, d_max=0 is BN"],
        constraints: [.requires(option: "track_running_stats", value: .bool(true))] + CommonOptions.runningStatisticsConstraints,
        reduction: .batchAndSpatial)

    let core: BatchStatisticsCore
    /// Current limits; a schedule may change them between steps.
    public var limits: RenormLimits

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard options.bool("track_running_stats") else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "batch renormalization corrects towards running statistics; track_running_stats=false is not supported")
        }
        core = try BatchStatisticsCore(Self.descriptor, shape: shape, options: options)
        limits = RenormLimits(rMax: options.real("r_max"), dMax: options.real("d_max"))
        configuredLimits = limits
    }

    /// The limits from the options (`r_max`, `d_max`).
    public let configuredLimits: RenormLimits

    public var parameters: [Parameter] { core.parameters }
    public var buffers: [Buffer] { core.buffers }
    public var tracksRunningStatistics: Bool { true }
    public var runningStatistics: RunningStatistics? { core.running }
    /// Per-channel mean, biased variance and values per channel of the last forward that used
    /// batch statistics; `nil` before one.
    public var lastBatchStatistics: (mean: [Double], variance: [Double], count: Int)? { core.lastBatchStatistics }

    /// Fraction of channels whose r / d was clipped in the last train step.
    public var lastClipFractions: (r: Double, d: Double) { (core.lastRClipFraction, core.lastDClipFraction) }
    /// Clip rates over all train steps so far (clipped channel-steps / channel-steps).
    public var clipRates: (r: Double, d: Double) {
        let n = Double(max(core.clipObservations, 1))
        return (Double(core.rClips) / n, Double(core.dClips) / n)
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard limits.rMax >= 1, limits.dMax >= 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "r_max must be >= 1 and d_max >= 0, got \(limits.rMax), \(limits.dMax)")
        }
        return try core.forward(x, mode: mode, renorm: limits)
    }
    public func backward(_ gradOutput: Tensor) throws -> Tensor { try core.backward(gradOutput) }

    public var evalStatistics: EvalStatistics? { core.evalStatistics }
    public var lastBatchMoments: BatchMoments? { core.lastBatchMoments }
    public func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal> { FrozenBatchNorm.folding(self) }
}
