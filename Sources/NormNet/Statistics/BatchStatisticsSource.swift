import NormCore
import NormPlugins

/// The statistics a norm layer took from its input in its last forward that used batch
/// (or instance) statistics: one mean and biased variance per group of `count` values.
/// For BN/BRN the groups are the channels; for IN they are the `N·C` instances (channel
/// `g % C`).
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

/// A norm plugin that exposes the statistics of its last train-mode forward. BN, BRN and
/// IN do; a custom plugin may conform too, and then gets telemetry and PreciseBN.
public protocol BatchStatisticsSource: AnyObject {
    var lastBatchMoments: BatchMoments? { get }
}

extension BatchNorm: BatchStatisticsSource {
    public var lastBatchMoments: BatchMoments? {
        lastBatchStatistics.map { BatchMoments(mean: $0.mean, variance: $0.variance, count: $0.count, perInstance: false) }
    }
}

extension BatchRenorm: BatchStatisticsSource {
    public var lastBatchMoments: BatchMoments? {
        lastBatchStatistics.map { BatchMoments(mean: $0.mean, variance: $0.variance, count: $0.count, perInstance: false) }
    }
}

extension InstanceNorm: BatchStatisticsSource {
    public var lastBatchMoments: BatchMoments? {
        lastInstanceStatistics.map { BatchMoments(mean: $0.mean, variance: $0.variance, count: $0.count, perInstance: true) }
    }
}

/// A norm layer whose running statistics an estimator may replace (PreciseBN, the mean of the
/// last K batches): it tracks `running_mean`/`running_var`, its statistics are not frozen
/// (`norm_eval`), and it exposes its batch statistics.
struct ReplaceableStatistics {
    let slot: NormSlot
    let source: BatchStatisticsSource
    let mean: Buffer
    let variance: Buffer

    /// The eligible layers of `model`, and why each other layer was skipped.
    static func find(in model: Model) -> (targets: [ReplaceableStatistics], skipped: [String: String]) {
        var targets: [ReplaceableStatistics] = [], skipped: [String: String] = [:]
        for slot in model.normSlots {
            let plugin = slot.layer.plugin
            guard plugin.tracksRunningStatistics, let rm = plugin.buffer(named: "running_mean"),
                  let rv = plugin.buffer(named: "running_var") else {
                skipped[slot.name] = "no running statistics"; continue
            }
            guard !slot.freeze.freezesStatistics else { skipped[slot.name] = "statistics frozen (norm_eval)"; continue }
            guard let source = plugin as? BatchStatisticsSource else {
                skipped[slot.name] = "plugin does not expose batch statistics"; continue
            }
            targets.append(ReplaceableStatistics(slot: slot, source: source, mean: rm, variance: rv))
        }
        return (targets, skipped)
    }
}
