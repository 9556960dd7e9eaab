import NormCore

/// Exact pooling of per-batch moments (Chan, Golub & LeVeque): from each batch's count,
/// mean and biased variance, the mean and biased variance of all values together — not an
/// average of the batch variances, which misses the spread of the batch means.
public struct PooledMoments: Sendable, Equatable {
    public private(set) var count = 0.0
    public private(set) var mean = 0.0
    /// Sum of squared deviations from `mean`.
    public private(set) var m2 = 0.0

    public init() {}

    public mutating func add(count n: Int, mean mb: Double, biasedVariance vb: Double) {
        guard n > 0 else { return }
        let nb = Double(n), total = count + nb
        let delta = mb - mean
        mean += delta * nb / total
        m2 += vb * nb + delta * delta * count * nb / total
        count = total
    }

    public var biasedVariance: Double { count > 0 ? m2 / count : .nan }
    public var unbiasedVariance: Double { count > 1 ? m2 / (count - 1) : .nan }
}

/// PreciseBN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; detectron2
/// `update_bn_stats`): replaces the EMA running statistics of every norm layer that tracks
/// them by population statistics over K batches, computed with the model in train mode (as
/// during training) and pooled exactly.
///
/// - BN / BRN: per channel, the mean and variance of *all* values the layer saw in the K
///   batches (pooled from the per-batch moments); `running_var` stores the unbiased or
///   biased estimate as the layer's `running_var` option says.
/// - tracked IN: the running statistics estimate the *average instance's* mean and variance,
///   so they become the average over every instance seen of its mean and (unbiased or
///   biased) variance.
///
/// Running statistics are restored before every batch, so BRN's r/d (which read them) see
/// the same values throughout; `num_batches_tracked` is left as it was. Layers with frozen
/// statistics, without running statistics, or that do not expose batch statistics are
/// skipped and reported. BRN's clip counters count these forwards too.
public enum PreciseBN {
    public typealias Report = StatisticsReplacementReport

    @discardableResult
    public static func recompute(_ model: Model, batches: [Tensor]) throws -> Report {
        var report = Report()
        struct Target { let slot: NormSlot; let source: any BatchStatisticsReporting; let unbiased: Bool; let mean: Buffer; let variance: Buffer
                        let savedMean: Tensor; let savedVar: Tensor; var pooled: [PooledMoments]; var instanceMean: [Double]
                        var instanceVar: [Double]; var instances: Int }
        let eligible = ReplaceableStatistics.find(in: model)
        report.skipped = eligible.skipped
        var targets: [Target] = eligible.targets.map { e in
            let c = e.mean.value.count
            return Target(slot: e.slot, source: e.source, unbiased: e.storesUnbiasedVariance, mean: e.mean, variance: e.variance, savedMean: e.mean.value,
                          savedVar: e.variance.value, pooled: Array(repeating: PooledMoments(), count: c),
                          instanceMean: Array(repeating: 0, count: c), instanceVar: Array(repeating: 0, count: c), instances: 0)
        }
        guard !targets.isEmpty, !batches.isEmpty else { return report }
        let savedBuffers = model.namedBuffers.map { ($0.buffer, $0.buffer.value) }
        let savedMode = model.mode
        let telemetry = model.normSlots.map(\.recordsTelemetry)
        model.recordTelemetry(false)
        defer {
            model.setMode(savedMode)
            for (s, on) in zip(model.normSlots, telemetry) { s.recordsTelemetry = on }
        }
        model.setMode(.train)
        do {
            for x in batches {
                for (b, v) in savedBuffers { b.value = v }
                _ = try model.forward(x)
                for t in targets.indices {
                    guard let m = targets[t].source.lastBatchMoments else {
                        throw NetError("\(targets[t].slot.name): no batch statistics after a train-mode forward")
                    }
                    let c = targets[t].pooled.count
                    if m.perInstance {
                        let correction = targets[t].unbiased && m.count > 1 ? Double(m.count) / Double(m.count - 1) : 1
                        for g in 0..<m.mean.count {
                            targets[t].instanceMean[g % c] += m.mean[g]
                            targets[t].instanceVar[g % c] += m.variance[g] * correction
                        }
                        targets[t].instances += m.mean.count / c
                    } else {
                        for ch in 0..<c { targets[t].pooled[ch].add(count: m.count, mean: m.mean[ch], biasedVariance: m.variance[ch]) }
                    }
                }
            }
        } catch {
            for (b, v) in savedBuffers { b.value = v }
            throw error
        }
        for (b, v) in savedBuffers { b.value = v }
        for t in targets {
            let c = t.pooled.count
            var mean = [Double](repeating: 0, count: c), variance = mean
            for ch in 0..<c {
                if t.instances > 0 {
                    mean[ch] = t.instanceMean[ch] / Double(t.instances)
                    variance[ch] = t.instanceVar[ch] / Double(t.instances)
                } else {
                    mean[ch] = t.pooled[ch].mean
                    variance[ch] = t.unbiased ? t.pooled[ch].unbiasedVariance : t.pooled[ch].biasedVariance
                }
            }
            t.mean.value = Tensor(shape: [c], doubles: mean)
            t.variance.value = Tensor(shape: [c], doubles: variance)
            report.updated.append(t.slot.name)
        }
        report.batches = batches.count
        return report
    }
}
