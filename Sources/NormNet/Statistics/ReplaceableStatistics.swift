import NormCore

/// A norm layer whose running statistics an estimator may replace (PreciseBN, the mean of the
/// last K batches): it declares ``BatchStatisticsReporting`` and tracks running statistics,
/// and its statistics are not frozen (`norm_eval`).
struct ReplaceableStatistics {
    let slot: NormSlot
    let source: any BatchStatisticsReporting
    let statistics: EvalStatistics

    var mean: Buffer { statistics.mean }
    var variance: Buffer { statistics.variance }
    /// Whether the layer stores the unbiased variance in its running buffer.
    var storesUnbiasedVariance: Bool { statistics.storesUnbiasedVariance }

    /// The eligible layers of `model`, and why each other layer was skipped.
    static func find(in model: Model) -> (targets: [ReplaceableStatistics], skipped: [String: String]) {
        var targets: [ReplaceableStatistics] = [], skipped: [String: String] = [:]
        for slot in model.normSlots {
            let plugin = slot.layer.plugin
            guard plugin.tracksRunningStatistics else { skipped[slot.name] = "no running statistics"; continue }
            guard !slot.freeze.freezesStatistics else { skipped[slot.name] = "statistics frozen (norm_eval)"; continue }
            guard let source = plugin.trackedStatistics, let statistics = source.evalStatistics else {
                skipped[slot.name] = "plugin does not expose batch statistics"; continue
            }
            targets.append(ReplaceableStatistics(slot: slot, source: source, statistics: statistics))
        }
        return (targets, skipped)
    }
}
