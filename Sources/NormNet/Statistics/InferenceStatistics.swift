import NormCore

/// Where a trained model's norm layers get the statistics they normalize with at evaluation
/// — the estimators compared by Wu & Johnson (2021, "Rethinking 'Batch' in BatchNorm", §3).
///
/// - ``runningAverage`` (`ema`): keep what the layers maintained during training, the EMA
///   `running = (1 − momentum)·running + momentum·batch` (or the cumulative average with
///   `momentum: none`). PyTorch's and every framework's default.
/// - ``precise(batches:)`` (`precise`): PreciseBN — after training, with the final weights,
///   the exact population statistics over K fresh training batches (``PreciseBN``).
/// - ``lastBatches(_:)`` (`last_batches`): the plain average of the per-batch statistics
///   (mean, and variance in the layer's `running_var` convention) of the last K training
///   steps, computed by weights that were still changing (``LastBatchesAverage``).
///
/// Only layers with running statistics that are not frozen (`norm_eval`) and that expose
/// their batch statistics (``BatchStatisticsReporting``: BN, BRN, tracked IN) are changed.
public enum InferenceStatistics: Sendable, Equatable, CustomStringConvertible {
    case runningAverage
    case precise(batches: Int)
    case lastBatches(Int)

    /// The names used in specs and on the command line.
    public static let names = ["ema", "precise", "last_batches"]

    /// `name` (`ema`, `precise`, `last_batches`) with K batches (ignored for `ema`).
    public init(name: String, batches: Int) throws {
        switch name.lowercased() {
        case "ema": self = .runningAverage
        case "precise": self = .precise(batches: batches)
        case "last_batches": self = .lastBatches(batches)
        default:
            throw NetError("unknown inference-statistics estimator '\(name)'; known: \(Self.names.joined(separator: ", "))")
        }
    }

    public var name: String {
        switch self {
        case .runningAverage: return "ema"
        case .precise: return "precise"
        case .lastBatches: return "last_batches"
        }
    }

    /// K, or 0 for the running average.
    public var batches: Int {
        switch self {
        case .runningAverage: return 0
        case let .precise(k), let .lastBatches(k): return k
        }
    }

    public var description: String { batches > 0 ? "\(name)(\(batches))" : name }

    public func validate() throws {
        if case .runningAverage = self { return }
        guard batches >= 1 else { throw NetError("inference statistics '\(name)' needs at least 1 batch, got \(batches)") }
    }
}

/// What replacing running statistics did: which layers got new values, which were left
/// alone and why, and over how many batches.
public struct StatisticsReplacementReport: Sendable, Equatable {
    public var updated: [String] = []
    public var skipped: [String: String] = [:]
    public var batches = 0

    public init() {}
}

/// The ``InferenceStatistics/lastBatches(_:)`` estimator: collects each eligible layer's
/// batch statistics after train-mode forwards (``record()``) and finally writes their plain
/// average into the running buffers (``apply()``).
///
/// BN / BRN: per channel, the mean of the batch means and the mean of the batch variances
/// (unbiased per batch unless the layer's `running_var` is `biased`) — an average of batch
/// statistics, unlike PreciseBN's exact pooling, so it omits the spread of the batch means.
/// Tracked IN: the average over every instance seen of its mean and variance.
public final class LastBatchesAverage {
    private struct Target {
        let slot: NormSlot
        let source: any BatchStatisticsReporting
        let unbiased: Bool
        let mean: Buffer
        let variance: Buffer
        var meanSum: [Double]
        var varianceSum: [Double]
        var groups = 0
    }
    private var targets: [Target] = []
    public private(set) var report = StatisticsReplacementReport()

    public init(_ model: Model) {
        let eligible = ReplaceableStatistics.find(in: model)
        report.skipped = eligible.skipped
        targets = eligible.targets.map { e in
            let c = e.mean.value.count
            return Target(slot: e.slot, source: e.source, unbiased: e.storesUnbiasedVariance, mean: e.mean, variance: e.variance,
                          meanSum: Array(repeating: 0, count: c), varianceSum: Array(repeating: 0, count: c))
        }
    }

    /// Adds the statistics of the last train-mode forward of every eligible layer.
    public func record() throws {
        for t in targets.indices {
            guard let m = targets[t].source.lastBatchMoments else {
                throw NetError("\(targets[t].slot.name): no batch statistics after a train-mode forward")
            }
            let c = targets[t].meanSum.count
            let correction = targets[t].unbiased && m.count > 1 ? Double(m.count) / Double(m.count - 1) : 1
            for g in 0..<m.mean.count {
                targets[t].meanSum[g % c] += m.mean[g]
                targets[t].varianceSum[g % c] += m.variance[g] * correction
            }
            targets[t].groups += m.mean.count / c
        }
        report.batches += 1
    }

    /// Writes the averages into the running buffers (layers that saw no batch keep theirs).
    public func apply() {
        for t in targets where t.groups > 0 {
            let n = Double(t.groups)
            t.mean.value = Tensor(shape: [t.meanSum.count], doubles: t.meanSum.map { $0 / n })
            t.variance.value = Tensor(shape: [t.varianceSum.count], doubles: t.varianceSum.map { $0 / n })
            report.updated.append(t.slot.name)
        }
    }
}
