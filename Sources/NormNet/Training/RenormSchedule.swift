import NormCore

/// Batch Renormalization's warm-up of its clipping limits (Ioffe 2017, §4: "r_max = 1,
/// d_max = 0 for the first 5k steps, then gradually relaxed to 3 and 5"): BRN starts as BN
/// and lets the correction in as the running statistics become trustworthy.
///
/// For `step < holdSteps` the limits are `r_max = 1, d_max = 0` (exactly BN); over the next
/// `rampSteps` they grow linearly to each layer's configured `r_max` / `d_max`; after that they
/// stay there. Applied by ``Trainer`` before every step to every ``BatchRenorm`` layer.
public struct RenormSchedule: Sendable, Equatable {
    public var holdSteps: Int
    public var rampSteps: Int

    public init(holdSteps: Int, rampSteps: Int) {
        self.holdSteps = holdSteps
        self.rampSteps = rampSteps
    }

    public func validate() throws {
        guard holdSteps >= 0, rampSteps >= 0 else {
            throw NetError("renorm schedule: hold and ramp steps must be >= 0, got \(holdSteps), \(rampSteps)")
        }
    }

    /// Fraction of the configured limits in force at `step` (0 = BN, 1 = fully relaxed).
    public func progress(at step: Int) -> Double {
        if step < holdSteps { return 0 }
        if rampSteps == 0 { return 1 }
        return min(1, Double(step - holdSteps) / Double(rampSteps))
    }

    /// The limits at `step` for a layer configured with `target`.
    public func limits(at step: Int, target: RenormLimits) -> RenormLimits {
        let t = progress(at: step)
        return RenormLimits(rMax: 1 + t * (target.rMax - 1), dMax: t * target.dMax)
    }
}
