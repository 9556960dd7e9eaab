import Foundation

/// A learning-rate schedule over a known number of steps, with an optional linear warm-up.
///
/// `rate(at: step)` for `step` in `0..<totalSteps`:
/// - warm-up (first `warmupSteps` steps): `base · (f + (1 − f) · step / warmupSteps)` with
///   `f = warmupStartFactor`;
/// - then `constant`: `base`; `step`: `base · gamma^(milestones passed)`, milestones given as
///   fractions of the total steps; `cosine`: `base_min + (base − base_min)·(1 + cos(π·t))/2`
///   with `t` the progress after the warm-up, 0 → 1.
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case constant
        case step(milestones: [Double], gamma: Double)
        case cosine(minimumFactor: Double)
    }

    public var kind: Kind
    public var warmupSteps: Int
    public var warmupStartFactor: Double

    public init(_ kind: Kind = .cosine(minimumFactor: 0), warmupSteps: Int = 0, warmupStartFactor: Double = 0) {
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.warmupStartFactor = warmupStartFactor
    }

    /// `step` schedule with PyTorch's MultiStepLR defaults used by many papers: ×0.1 at 50 % and 75 %.
    public static let standardStep = Kind.step(milestones: [0.5, 0.75], gamma: 0.1)

    /// The schedule names of the CLI and specs: `cosine` (to 0), `step` (×0.1 at 50 % and 75 %), `constant`.
    public static let kindNames = ["cosine", "step", "constant"]

    /// The schedule kind for a name of ``kindNames`` (case-insensitive), nil for another.
    public static func kind(named name: String) -> Kind? {
        switch name.lowercased() {
        case "cosine": return .cosine(minimumFactor: 0)
        case "step": return standardStep
        case "constant": return .constant
        default: return nil
        }
    }

    public func validate() throws {
        guard warmupSteps >= 0 else { throw NetError("schedule: warm-up steps must be >= 0") }
        guard (0...1).contains(warmupStartFactor) else { throw NetError("schedule: warm-up start factor must be in [0, 1]") }
        switch kind {
        case .constant: break
        case let .step(milestones, gamma):
            guard milestones.allSatisfy({ (0...1).contains($0) }), gamma.isFinite, gamma >= 0 else {
                throw NetError("schedule: step milestones must be fractions in [0, 1] and gamma >= 0")
            }
        case let .cosine(m):
            guard (0...1).contains(m) else { throw NetError("schedule: cosine minimum factor must be in [0, 1]") }
        }
    }

    /// The learning rate at `step` (0-based) of `totalSteps`, for base rate `base`.
    public func rate(at step: Int, totalSteps: Int, base: Double) -> Double {
        if step < warmupSteps {
            return base * (warmupStartFactor + (1 - warmupStartFactor) * Double(step) / Double(warmupSteps))
        }
        switch kind {
        case .constant:
            return base
        case let .step(milestones, gamma):
            let passed = milestones.filter { step >= Int(($0 * Double(totalSteps)).rounded()) }.count
            return base * pow(gamma, Double(passed))
        case let .cosine(minimumFactor):
            let span = max(totalSteps - warmupSteps, 1)
            let t = min(Double(step - warmupSteps) / Double(span), 1)
            let lo = base * minimumFactor
            return lo + (base - lo) * (1 + cos(Double.pi * t)) / 2
        }
    }
}
