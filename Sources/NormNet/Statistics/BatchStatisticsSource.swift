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
