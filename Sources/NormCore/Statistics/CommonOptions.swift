/// Option schema entries shared by several methods, so every method spells and
/// documents them the same way (PyTorch names and defaults).
public enum CommonOptions {
    public static func eps(default value: Double = 1e-5) -> OptionSpec {
        OptionSpec("eps", .real(0...Double.greatestFiniteMagnitude), default: .real(value),
                   "added to the variance before the square root", samples: [.real(1.0), .real(1e-10)])
    }
    public static let momentum = OptionSpec(
        "momentum", .realOrNone(0...1), default: .real(0.1),
        "PyTorch convention: running = (1 - m) * running + m * batch; none = cumulative average",
        samples: [.none, .real(0.3)])
    public static let kerasDecay = OptionSpec(
        "keras_decay", .realOrNone(0...1), default: OptionValue.none,
        "Keras convention instead of momentum: running = d * running + (1 - d) * batch",
        samples: [.real(0.9)])
    public static func affine(default value: Bool) -> OptionSpec {
        OptionSpec("affine", .bool, default: .bool(value), "learnable per-channel weight and bias")
    }
    public static func trackRunningStats(default value: Bool) -> OptionSpec {
        OptionSpec("track_running_stats", .bool, default: .bool(value),
                   "keep running mean/var (updated in train mode, used in eval mode)")
    }
    public static let runningVar = OptionSpec(
        "running_var", .choice(RunningVarianceEstimator.allCases.map(\.rawValue)), default: .text("unbiased"),
        "variance estimate stored in running_var (PyTorch: unbiased; normalization always uses the biased one)")
    public static let skipNonFinite = OptionSpec(
        "skip_nonfinite", .bool, default: .bool(false),
        "skip (and count) a running-stat update whose batch statistics are not finite")

    /// The rules among the running-statistics options (checked by ``RunningStatistics`` users at
    /// construction; declared so parity and validation know them).
    public static let runningStatisticsConstraints: [NormConstraint] = [
        .exclusive("momentum", "keras_decay"),
        .setRequires(option: "momentum", other: "track_running_stats", value: .bool(true)),
        .setRequires(option: "keras_decay", other: "track_running_stats", value: .bool(true)),
    ]

    /// The running-statistics options, in `describe` order.
    public static func runningStatistics(track: Bool) -> [OptionSpec] {
        [momentum, kerasDecay, trackRunningStats(default: track), runningVar, skipNonFinite]
    }
}
