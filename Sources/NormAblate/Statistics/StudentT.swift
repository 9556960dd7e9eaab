import Foundation

/// Student's t distribution with `degreesOfFreedom` ν > 0: the CDF through the regularized
/// incomplete beta function and the quantile by safeguarded Newton iteration on it.
///
/// For t ≥ 0, `P(T ≤ t) = 1 − ½·I_x(ν/2, ½)` with `x = ν / (ν + t²)` (Abramowitz & Stegun
/// 26.7.1 and 26.5.27); the incomplete beta function is evaluated with the continued
/// fraction of A&S 26.5.8 by the modified Lentz method (Press et al., *Numerical Recipes*,
/// 3rd ed., §6.4). Accurate to about 1e-13 relative for ν ≥ 1.
public struct StudentT: Sendable, Equatable {
    public let degreesOfFreedom: Double

    public init(degreesOfFreedom: Double) {
        precondition(degreesOfFreedom > 0, "degrees of freedom must be positive")
        self.degreesOfFreedom = degreesOfFreedom
    }

    /// `P(T ≤ t)`.
    public func cdf(_ t: Double) -> Double {
        if t.isNaN { return .nan }
        if t == .infinity { return 1 }
        if t == -.infinity { return 0 }
        let nu = degreesOfFreedom
        let x = nu / (nu + t * t)
        let tail = 0.5 * IncompleteBeta.regularized(a: nu / 2, b: 0.5, x: x)   // P(T > |t|)
        return t >= 0 ? 1 - tail : tail
    }

    /// Two-sided p-value of an observed statistic: `P(|T| ≥ |t|)`.
    public func twoSidedPValue(_ t: Double) -> Double {
        if t.isNaN { return .nan }
        if t.isInfinite { return 0 }
        let nu = degreesOfFreedom
        return IncompleteBeta.regularized(a: nu / 2, b: 0.5, x: nu / (nu + t * t))
    }

    /// The t with `cdf(t) = p`, 0 < p < 1.
    public func quantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "quantile needs 0 < p < 1")
        if p == 0.5 { return 0 }
        // Symmetry: solve for the upper tail and flip.
        if p < 0.5 { return -quantile(1 - p) }
        // Bracket [0, hi] with cdf(hi) ≥ p.
        var lo = 0.0, hi = 1.0
        while cdf(hi) < p { lo = hi; hi *= 2; if hi > 1e300 { return .infinity } }
        var t = 0.5 * (lo + hi)
        for _ in 0..<200 {
            let f = cdf(t) - p
            if f == 0 { return t }
            if f > 0 { hi = t } else { lo = t }
            // Newton step with the density; fall back to bisection when it leaves the bracket.
            let step = f / density(t)
            var next = t - step
            if !(next > lo && next < hi) || !next.isFinite { next = 0.5 * (lo + hi) }
            if abs(next - t) <= 1e-15 * max(1, abs(t)) { return next }
            t = next
        }
        return t
    }

    /// The probability density at t.
    public func density(_ t: Double) -> Double {
        let nu = degreesOfFreedom
        let logC = lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * log(nu * Double.pi)
        return exp(logC - (nu + 1) / 2 * log1p(t * t / nu))
    }
}

/// The regularized incomplete beta function `I_x(a, b)`.
public enum IncompleteBeta {
    /// `I_x(a, b)` for a, b > 0 and 0 ≤ x ≤ 1 (continued fraction, A&S 26.5.8; the symmetry
    /// `I_x(a, b) = 1 − I_{1−x}(b, a)` keeps the fraction in its fast-converging region).
    public static func regularized(a: Double, b: Double, x: Double) -> Double {
        precondition(a > 0 && b > 0, "I_x(a, b) needs a, b > 0")
        if x.isNaN { return .nan }
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * continuedFraction(a: a, b: b, x: x) / a
        }
        return 1 - exp(logFront) * continuedFraction(a: b, b: a, x: 1 - x) / b
    }

    /// The continued fraction of `I_x(a, b)` by the modified Lentz method.
    static func continuedFraction(a: Double, b: Double, x: Double) -> Double {
        let tiny = 1e-300, eps = 1e-16
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < eps { break }
        }
        return h
    }
}
