import Foundation
import Testing
import NormKernels

/// `SigmoidLanes` against Foundation's `exp` in Double.
///
/// Tolerances: the float32 result is compared with the float64 value in units of the float32
/// spacing at that value (ulp). Cephes' `expf` polynomial is accurate to about 1 ulp on the
/// reduced range; the Cody–Waite reduction (in fused multiply-adds) and the exact `2ⁿ`
/// scaling add little; the sigmoid adds the rounding of `1 + E` and of the division (and
/// `E`'s error carries over, relative, for `t < 0`). The bounds (exp 1.5 ulp / 1.5e-7,
/// sigmoid 3 ulp / 3e-7) sit just above the measured maxima, which the tests print, so a
/// regression of even one ulp-scale step fails them. Where the sigmoid's true value is
/// subnormal (t < −87.3) the contract is absolute: within 1.2e-38.
@Suite("SigmoidLanes: vectorized float32 exp and sigmoid")
struct SigmoidLanesTests {
    /// The float32 spacing at `v` (for subnormal and zero values: the smallest subnormal).
    private func ulp(_ v: Double) -> Double {
        let f = Float(v)
        return Double(max(f.magnitude.ulp, Float.leastNonzeroMagnitude))
    }

    /// Every value the tests evaluate: ±0, a dense grid over [−110, 110] (the whole range where
    /// the results are not 0 or 1 in float32, and past it), powers of two from 2^−149 to 2^7
    /// with neighbours (every float32 exponent), and extremes.
    private var inputs: [Float] {
        var out: [Float] = [0, -0, 1e-30, -1e-30, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                            .leastNormalMagnitude, -.leastNormalMagnitude, 87.3, -87.3, 88.7, -88.7, 103.9, -103.9,
                            104, -104, 200, -200, 1e10, -1e10, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        var t: Float = -110
        while t <= 110 { out.append(t); t += 0.001_37 }
        for e in -149...7 {
            let p = Float(sign: .plus, exponent: e, significand: 1)
            for v in [p, p.nextUp, p.nextDown, p * 1.5] where v.isFinite && v > 0 { out += [v, -v] }
        }
        return out
    }

    /// Vector results for `values`, eight at a time (the kernels' path).
    private func lanes(_ values: [Float], _ f: (SIMD8<Float>) -> SIMD8<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        var i = 0
        while i < values.count {
            var v = SIMD8<Float>()
            for j in 0..<8 where i + j < values.count { v[j] = values[i + j] }
            let r = f(v)
            for j in 0..<8 where i + j < values.count { out[i + j] = r[j] }
            i += 8
        }
        return out
    }

    @Test("exp: within 1.5 ulp of exp in Double on [-87.3, 88.3]; clamped outside, finite and normal")
    func exponential() {
        let ys = inputs.filter { $0 >= -87.3 && $0 <= 88.3 }
        let got = lanes(ys, SigmoidLanes.exp)
        var worstUlp = 0.0, worstRel = 0.0
        for (y, e) in zip(ys, got) {
            let ref = Foundation.exp(Double(y))
            let err = abs(Double(e) - ref)
            worstUlp = max(worstUlp, err / ulp(ref))
            worstRel = max(worstRel, err / ref)
        }
        print("SigmoidLanes.exp: max error \(worstUlp) ulp, max relative error \(worstRel) on [-87.3, 88.3]")
        #expect(worstUlp <= 1.5)
        #expect(worstRel <= 1.5e-7)
        #expect(SigmoidLanes.exp(0) == 1 && SigmoidLanes.exp(-0.0) == 1)
        // Outside the range: the value at the bound (normal, finite), never 0 or infinity.
        #expect(SigmoidLanes.exp(-200) == SigmoidLanes.exp(-87.3) && SigmoidLanes.exp(-87.3) >= Float.leastNormalMagnitude)
        #expect(SigmoidLanes.exp(Float.infinity) == SigmoidLanes.exp(88.3) && SigmoidLanes.exp(88.3).isFinite)
        #expect(SigmoidLanes.exp(Float.nan).isNaN)
    }

    @Test("sigmoid: within 3 ulp of 1/(1+exp(-t)) in Double where normal, within 1.2e-38 below, over every float32 exponent")
    func sigmoid() {
        let ts = inputs
        let got = lanes(ts, SigmoidLanes.sigmoid)
        var worstUlp = 0.0, worstRel = 0.0
        for (t, s) in zip(ts, got) {
            let ref = 1 / (1 + Foundation.exp(-Double(t)))
            let err = abs(Double(s) - ref)
            #expect(s >= 0 && s <= 1, "sigmoid(\(t)) = \(s) out of [0, 1]")
            if ref >= Double(Float.leastNormalMagnitude) {
                worstUlp = max(worstUlp, err / ulp(ref))
                worstRel = max(worstRel, err / ref)
            } else {
                // t < −87.3: the clamp of exp's argument; the true value is subnormal.
                #expect(err <= Double(Float.leastNormalMagnitude), "sigmoid(\(t)) = \(s), reference \(ref)")
            }
        }
        print("SigmoidLanes.sigmoid: max error \(worstUlp) ulp, max relative error \(worstRel) (normal results)")
        #expect(worstUlp <= 3)
        #expect(worstRel <= 3e-7)
    }

    @Test("sigmoid: exact values at ±0 and the extremes, symmetry, NaN propagates, scalar = lanes")
    func specialValues() {
        #expect(SigmoidLanes.sigmoid(Float(0)) == 0.5)
        #expect(SigmoidLanes.sigmoid(Float(-0.0)) == 0.5)
        #expect(SigmoidLanes.sigmoid(Float.infinity) == 1)
        #expect(SigmoidLanes.sigmoid(-Float.infinity) <= Float.leastNormalMagnitude)
        #expect(SigmoidLanes.sigmoid(Float.greatestFiniteMagnitude) == 1)
        #expect(SigmoidLanes.sigmoid(-Float.greatestFiniteMagnitude) <= Float.leastNormalMagnitude)
        #expect(SigmoidLanes.sigmoid(Float(20)) == 1, "1 − 2.06e-9 rounds to 1 in float32")
        #expect(SigmoidLanes.sigmoid(Float(-20)) > 2.061_15e-9 && SigmoidLanes.sigmoid(Float(-20)) < 2.061_16e-9)
        #expect(SigmoidLanes.sigmoid(Float.nan).isNaN)
        for t: Float in [0.1, 1, 3.5, 10, 40] {
            // σ(t) + σ(−t) = 1 up to the rounding of each.
            #expect(abs(Double(SigmoidLanes.sigmoid(t)) + Double(SigmoidLanes.sigmoid(-t)) - 1) <= 1.2e-7)
        }
        let v = SIMD8<Float>(-50, -3, -0.5, 0, 0.25, 2, 9, 60)
        let r = SigmoidLanes.sigmoid(v)
        for i in 0..<8 { #expect(r[i] == SigmoidLanes.sigmoid(v[i])) }
    }
}
