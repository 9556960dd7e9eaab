/// How a running statistic absorbs a new batch statistic.
///
/// PyTorch's convention is the default: `running = (1 − m)·running + m·batch` with
/// `m = momentum = 0.1`; `momentum: none` is PyTorch's cumulative average (`m = 1/k`
/// after the k-th tracked batch). A Keras-style decay (`running = d·running + (1 − d)·batch`,
/// e.g. 0.99) is accepted only under its own option name, `keras_decay`, so 0.1 and 0.99 are
/// never confused.
public enum MomentumRule: Sendable, Equatable {
    /// PyTorch momentum `m` in [0, 1].
    case exponential(Double)
    /// Cumulative moving average: `m = 1 / batches`.
    case cumulative
    /// Keras/TensorFlow decay `d`: equivalent to momentum `1 − d`.
    case kerasDecay(Double)

    /// The weight `m` of the new batch after `batches` tracked batches (counting this one).
    public func factor(afterBatches batches: Int) -> Double {
        switch self {
        case let .exponential(m): return m
        case .cumulative: return 1 / Double(max(batches, 1))
        case let .kerasDecay(d): return 1 - d
        }
    }

    /// Decodes `momentum` / `keras_decay` from validated options (both set is an error).
    public static func decode(_ options: NormOptions) throws -> MomentumRule {
        let decay = options.optionalReal("keras_decay")
        if let decay {
            if options.isSet("momentum") {
                throw NormError.invalidConfiguration(
                    method: options.method,
                    reason: "set either momentum (PyTorch convention) or keras_decay (Keras convention), not both")
            }
            return .kerasDecay(decay)
        }
        if let m = options.optionalReal("momentum") { return .exponential(m) }
        return .cumulative
    }
}

/// Which variance estimate is stored in `running_var`. PyTorch stores the unbiased
/// (Bessel-corrected, n/(n−1)) batch variance while normalizing with the biased one.
public enum RunningVarianceEstimator: String, Sendable, CaseIterable {
    case unbiased
    case biased
}
