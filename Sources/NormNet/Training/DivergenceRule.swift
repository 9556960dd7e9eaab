/// When a training run counts as diverged.
///
/// A run diverges at the first step whose training loss is not finite, or exceeds
/// ``factor`` (1000) times its initial loss — the loss of step 0, taken as at least 1 so a
/// lucky near-zero start does not make the threshold tiny. Cross-entropy starts near
/// `ln(classes)` (2.3 for ten classes), so the threshold is about 2300: a loss there means
/// logit gaps in the thousands, which no converging run reaches, while `--lr 1000` runs
/// reach 1e13 and beyond at chance accuracy. The run stops at that step and reports it
/// (`diverged`, `diverged_at_step`, `divergence_loss`).
public struct DivergenceRule: Sendable, Equatable {
    /// The multiple of the initial loss beyond which a run has diverged.
    public static let defaultFactor = 1e3

    /// The multiple of the initial loss beyond which a run has diverged.
    public let factor: Double
    /// The loss limit, fixed by the first finite loss seen.
    public private(set) var limit: Double?

    public init(factor: Double = DivergenceRule.defaultFactor) {
        self.factor = factor
    }

    /// Checks the next step's loss; returns the loss as text (`nan`, `inf`, `-inf` or the
    /// value, e.g. `2.5e+13`) when the run has diverged, else nil.
    public mutating func check(loss: Double) -> String? {
        if loss.isNaN { return "nan" }
        if loss.isInfinite { return loss > 0 ? "inf" : "-inf" }
        guard let limit else {
            limit = factor * max(loss, 1)
            return nil
        }
        return loss > limit ? "\(loss)" : nil
    }
}
