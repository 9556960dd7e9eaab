/// Float32 `exp` and logistic sigmoid over SIMD lanes, for kernels that apply a smooth
/// nonlinearity per element (EvoNorm-S0's `x·sigmoid(v·x)`) without leaving the vector unit.
///
/// `exp(y)` is Cody & Waite's range reduction `y = n·ln2 + f`, `|f| ≤ ln2/2` (ln 2 split into
/// a float32 head with trailing zeros and a tail, so `n·ln2_hi` is exact), then Cephes' `expf`
/// polynomial `1 + f + f²·P(f)` (degree 5; S. L. Moshier, Cephes Math Library 2.2), then the
/// scaling by `2ⁿ` written into the exponent bits. Every step is a fused multiply-add
/// (`addingProduct`: IEEE fma, correctly rounded, so every build gives the same bits; one
/// instruction on FMA hardware). The argument is clamped to [−87.3, 88.3], where float32
/// `exp` is normal and finite (results from 1.2e-38 to 2.4e38).
///
/// `sigmoid(t) = 1/(1 + exp(−t))` directly: for `t ≥ 0` the exponential lies in (0, 1]; for
/// `t < 0` it is large and `1/(1 + E)` keeps the relative accuracy of `E` (no `1 − s`
/// cancellation anywhere). `sigmoid(±0) = 0.5`, `sigmoid(t) = 1` for `t > 17`, as in float32
/// arithmetic; for `t < −87.3`, where the true value is subnormal, the result is off by at
/// most `1.2e-38` (the clamp: no gradual underflow, which costs a second scaling step).
/// NaN gives NaN.
///
/// Accuracy (`SigmoidLanesTests`, against Foundation's `exp` in Double over ±0, ±1e-30 …
/// ±1e10, ±greatestFiniteMagnitude, a dense grid on [−110, 110] and every float32 exponent):
/// `exp` within 0.95 ulp (max relative error 8.0e-8) on [−87.3, 88.3] and `sigmoid` within
/// 2.2 ulp (1.3e-7) where the result is a normal float32. The kernels are checked against
/// float64 references at a relative tolerance of 1e-4 (`normlab parity`, `normlab bench`),
/// so this error is about 500 times below what a check can see: EvoNorm-S0's parity error
/// stays at 1.4e-6, the float32 rounding of the rest of the layer.
public enum SigmoidLanes {
    /// The lanes every kernel here works in (one AVX2 register).
    public typealias Lanes = SIMD8<Float>
    @usableFromInline typealias IntLanes = SIMD8<Int32>

    /// `log2(e)`.
    @usableFromInline static let log2e: Float = 1.442_695_04
    /// `ln 2 = ln2Hi + ln2Lo`; `ln2Hi` has 12 trailing zero bits, so `n·ln2Hi` is exact for |n| ≤ 256.
    @usableFromInline static let ln2Hi: Float = 0.693_359_375
    @usableFromInline static let ln2Lo: Float = -2.121_944_40e-4
    /// The clamp of the argument: `exp` is a normal, finite float32 on [lowest, highest].
    @usableFromInline static let lowest: Float = -87.3
    @usableFromInline static let highest: Float = 88.3
    /// `1.5·2²³`: adding it rounds `|v| < 2²²` to an integer held in the low mantissa bits.
    @usableFromInline static let shifter: Float = 12_582_912

    /// `exp(y)` lane-wise, `y` clamped to [−87.3, 88.3] (NaN propagates).
    @inlinable @inline(__always)
    public static func exp(_ y: Lanes) -> Lanes {
        // `replacing` keeps a NaN lane NaN (comparisons with NaN are false).
        var t = y.replacing(with: Lanes(repeating: lowest), where: y .< Lanes(repeating: lowest))
        t = t.replacing(with: Lanes(repeating: highest), where: t .> Lanes(repeating: highest))
        // n = round(t·log2e) (to nearest even, by the shifter), f = t − n·ln2 in two steps.
        let k = Lanes(repeating: shifter).addingProduct(t, Lanes(repeating: log2e))
        let n = k - Lanes(repeating: shifter)
        let f = t.addingProduct(n, Lanes(repeating: -ln2Hi)).addingProduct(n, Lanes(repeating: -ln2Lo))
        var p = Lanes(repeating: 1.987_569_150_0e-4)
        p = Lanes(repeating: 1.398_199_950_7e-3).addingProduct(p, f)
        p = Lanes(repeating: 8.333_451_907_3e-3).addingProduct(p, f)
        p = Lanes(repeating: 4.166_579_589_4e-2).addingProduct(p, f)
        p = Lanes(repeating: 1.666_666_545_9e-1).addingProduct(p, f)
        p = Lanes(repeating: 5.000_000_120_1e-1).addingProduct(p, f)
        let e = f.addingProduct(p, f * f) + Lanes(repeating: 1)
        // 2ⁿ: the low bits of k hold n; (n + 127) << 23 is its float32 bit pattern (−126 ≤ n ≤ 127).
        let bits = (unsafeBitCast(k, to: IntLanes.self) &- IntLanes(repeating: 0x4B40_0000 - 127)) &<< IntLanes(repeating: 23)
        return e * unsafeBitCast(bits, to: Lanes.self)
    }

    /// The logistic sigmoid `1/(1 + e^(−t))` lane-wise.
    @inlinable @inline(__always)
    public static func sigmoid(_ t: Lanes) -> Lanes {
        Lanes(repeating: 1) / (exp(-t) + Lanes(repeating: 1))
    }

    /// `sigmoid(t)` for one value, through the same lanes (identical to the vector result).
    @inlinable
    public static func sigmoid(_ t: Float) -> Float { sigmoid(Lanes(repeating: t))[0] }

    /// `exp(y)` for one value, through the same lanes.
    @inlinable
    public static func exp(_ y: Float) -> Float { exp(Lanes(repeating: y))[0] }
}
