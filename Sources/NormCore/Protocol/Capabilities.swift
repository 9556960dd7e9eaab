/// The capabilities a method may declare, so that code outside `NormPlugins` asks a layer
/// what it can do instead of checking its name or type.
///
/// A method adopts only the protocols it has; everything else in normlab (models, the
/// trainer, PreciseBN, FrozenBN folding, telemetry, parity, spec validation) reads these and
/// nothing else. A Python plugin declares the same things in its `NORMLAB_PLUGIN` descriptor.
///
/// - ``Normalization/includesActivation``: the output already contains the nonlinearity
///   (FRN's TLU, EvoNorm-S0's `x·σ(v·x)`): a model adds no activation after it.
/// - ``BatchStatisticsReporting``: running statistics eval mode reads and the batch moments
///   of the last train-mode forward: telemetry, PreciseBN and the last-K estimator.
/// - ``AffineFolding``: eval mode is a fixed per-channel affine (FrozenBN folding).
/// - ``RenormalizationControl``: BRN-style r/d limits a schedule sets between steps, and
///   how often r and d hit their clips.
/// - ``NormDescriptor/constraints``: rules on options and shapes (divides the channel count,
///   needs ≥ 2 values per reduction) used by the parity generator and the spec validator.

/// The per-group statistics a layer took from its input in its last forward that used batch
/// (or instance) statistics: one mean and biased variance per group of `count` values.
/// For BN-like layers the groups are the channels; for per-instance layers they are the
/// `N·C` instances (channel `g % C`).
public struct BatchMoments: Sendable, Equatable {
    public let mean: [Double]
    public let variance: [Double]
    /// Values per group.
    public let count: Int
    /// True when the groups are instances `(n, c)` rather than channels.
    public let perInstance: Bool

    public init(mean: [Double], variance: [Double], count: Int, perInstance: Bool) {
        self.mean = mean; self.variance = variance; self.count = count; self.perInstance = perInstance
    }
}

/// The statistics eval mode normalizes with: the running mean and variance buffers, whether
/// `running_var` stores the unbiased estimate, and the eps added to the variance.
public struct EvalStatistics {
    public let mean: Buffer
    public let variance: Buffer
    /// True when `variance` holds the unbiased (n/(n−1)-corrected) estimate (PyTorch's default).
    public let storesUnbiasedVariance: Bool
    /// The eps added to the variance before the square root.
    public let eps: Double

    public init(mean: Buffer, variance: Buffer, storesUnbiasedVariance: Bool, eps: Double) {
        self.mean = mean; self.variance = variance; self.storesUnbiasedVariance = storesUnbiasedVariance; self.eps = eps
    }
}

/// A layer that keeps per-channel running statistics for eval mode and reports the batch
/// moments it normalizes with in train mode (BN, BRN, tracked IN). Such a layer gets
/// statistics telemetry, and an estimator (PreciseBN, last-K) may replace its running statistics.
public protocol BatchStatisticsReporting: Normalization {
    /// The running statistics eval mode reads; `nil` when the layer does not track them.
    var evalStatistics: EvalStatistics? { get }
    /// The moments of the last forward that used batch statistics; `nil` before one.
    var lastBatchMoments: BatchMoments? { get }
}

/// A layer whose eval mode is a fixed per-channel affine `y = x·scale + shift` (BN, BRN,
/// tracked IN), so it can be replaced by a frozen layer (detectron2's FrozenBatchNorm2d).
public protocol AffineFolding: Normalization {
    /// The frozen layer equal to this layer's eval mode, or why there is none (e.g. the
    /// layer tracks no running statistics, or is already frozen).
    func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal>
}

/// Why a layer could not be folded into a frozen affine.
public struct FoldingRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ reason: String) { description = reason }
}

/// Batch Renormalization's per-step limits: `r` clipped to `[1/rMax, rMax]`, `d` to `[−dMax, dMax]`.
public struct RenormLimits: Sendable, Equatable {
    /// `r` is clipped to `[1/rMax, rMax]` (≥ 1).
    public var rMax: Double
    /// `d` is clipped to `[−dMax, dMax]` (≥ 0).
    public var dMax: Double

    public init(rMax: Double, dMax: Double) {
        self.rMax = rMax
        self.dMax = dMax
    }

    /// `r_max = 1, d_max = 0`: the correction is off (plain BatchNorm).
    public static let off = RenormLimits(rMax: 1, dMax: 0)
}

/// A layer with BRN-style r/d corrections: limits a schedule may change between steps (the
/// warm-up of Ioffe 2017, §4) and the rates at which r and d hit their clips.
public protocol RenormalizationControl: Normalization {
    /// The limits the layer was configured with.
    var configuredLimits: RenormLimits { get }
    /// The limits in force for the next step.
    var limits: RenormLimits { get set }
    /// Fraction of channels whose r / d hit a clip in the last train step.
    var lastClipFractions: (r: Double, d: Double) { get }
    /// Clipped channel-steps / channel-steps over all train steps so far.
    var clipRates: (r: Double, d: Double) { get }
}

extension Normalization {
    /// The layer as a ``BatchStatisticsReporting`` that tracks running statistics, if it is one.
    public var trackedStatistics: (any BatchStatisticsReporting)? {
        guard tracksRunningStatistics, let s = self as? any BatchStatisticsReporting, s.evalStatistics != nil else { return nil }
        return s
    }
}
