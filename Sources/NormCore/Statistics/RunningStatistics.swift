/// Per-channel running mean and variance with a batch counter — the buffers
/// `running_mean`, `running_var`, `num_batches_tracked` of PyTorch's `_NormBase`.
public final class RunningStatistics: @unchecked Sendable {
    public let mean: Buffer
    public let variance: Buffer
    /// Number of tracked train batches (float32 scalar, as a buffer; exact up to 2^24).
    public let batches: Buffer
    public var rule: MomentumRule
    public var estimator: RunningVarianceEstimator
    /// When true, an update whose batch statistics hold NaN/inf is skipped and counted.
    public var skipsNonFinite: Bool
    /// How many updates were skipped for non-finite statistics.
    public private(set) var skippedUpdates = 0

    public init(channels: Int, rule: MomentumRule, estimator: RunningVarianceEstimator = .unbiased, skipsNonFinite: Bool = false) {
        mean = Buffer(name: "running_mean", value: .zeros([channels]))
        variance = Buffer(name: "running_var", value: .ones([channels]))
        batches = Buffer(name: "num_batches_tracked", value: .zeros([]))
        self.rule = rule
        self.estimator = estimator
        self.skipsNonFinite = skipsNonFinite
    }

    /// Builds from validated options (`momentum`, `keras_decay`, `running_var`, `skip_nonfinite`).
    public convenience init(channels: Int, options: NormOptions) throws {
        self.init(channels: channels, rule: try MomentumRule.decode(options),
                  estimator: RunningVarianceEstimator(rawValue: options.choice("running_var")) ?? .unbiased,
                  skipsNonFinite: options.bool("skip_nonfinite"))
    }

    public var buffers: [Buffer] { [mean, variance, batches] }
    public var channels: Int { mean.value.count }
    public var batchCount: Int { Int(batches.value[flat: 0]) }

    /// Folds in one batch's per-channel mean and biased variance over `count` values per
    /// channel. Returns false (and counts it) when skipped for non-finite statistics.
    @discardableResult
    public func update(batchMean: [Double], biasedVariance: [Double], count: Int) -> Bool {
        if skipsNonFinite && !(batchMean.allSatisfy(\.isFinite) && biasedVariance.allSatisfy(\.isFinite)) {
            skippedUpdates += 1
            return false
        }
        let k = batchCount + 1
        batches.value[flat: 0] = Float(k)
        let m = rule.factor(afterBatches: k)
        let correction = estimator == .unbiased && count > 1 ? Double(count) / Double(count - 1) : 1
        mean.value.withUnsafeMutableBufferPointer { rm in
            variance.value.withUnsafeMutableBufferPointer { rv in
                for c in 0..<rm.count {
                    rm[c] = Float((1 - m) * Double(rm[c]) + m * batchMean[c])
                    rv[c] = Float((1 - m) * Double(rv[c]) + m * biasedVariance[c] * correction)
                }
            }
        }
        return true
    }
}
