/// Float32 `exp` and logistic sigmoid over SIMD lanes, for kernels that apply a smooth
/// nonlinearity per element (EvoNorm-S0's `x·sigmoid(v·x)`) without leaving the vector unit.
///
/// `exp(y)` for `y ≤ 0` is Cody & Waite's range reduction `y = n·ln2 + f`, `|f| ≤ ln2/2`
/// (ln 2 split into a float32 head with trailing zeros and a tail, so `n·ln2_hi` is exact),
/// then Cephes' `expf` polynomial `1 + f + f²·P(f)` (degree 5, in fused multiply-adds; S. L. Moshier, Cephes Math
/// Library 2.2), then the scaling by `2ⁿ`. The scaling is done as two factors `2^⌊n/2⌋` and
/// `2^(n − ⌊n/2⌋)`, each a normal float32, so results in the subnormal range underflow
/// gradually instead of flushing to zero.
///
/// `sigmoid(t) = 1/(1 + e^(−t))` is evaluated as `1/(1 + z)` for `t ≥ 0` and `z/(1 + z)` for
/// `t < 0`, with `z = exp(−|t|) ∈ (0, 1]`: the exponential never overflows and the negative
/// side keeps its relative accuracy down to the subnormal range (no `1 − s` cancellation).
/// `sigmoid(±0) = 0.5`, `sigmoid(+∞) = 1`, `sigmoid(−∞) = 0`; NaN gives NaN.
///
/// Accuracy (`SigmoidLanesTests`, against Foundation's `exp` in Double over ±0, ±1e-30 …
/// ±1e10, ±greatestFiniteMagnitude, a dense grid on [−110, 110] and every float32 exponent):
/// `exp` within 0.97 ulp (max relative error 8.1e-8) and `sigmoid` within 2.1 ulp (1.7e-7)
/// where the result is a normal float32; subnormal results within a few subnormal steps.
/// The kernels are checked against float64 references at a relative tolerance of 1e-4
/// (`normlab parity`, `normlab bench`), so this error is about 500 times below what a check
/// can see: EvoNorm-S0's parity error stays at 1.4e-6, the float32 rounding of the rest.
public enum SigmoidLanes {
    /// The lanes every kernel here works in (one AVX2 register).
    public typealias Lanes = SIMD8<Float>
    @usableFromInline typealias IntLanes = SIMD8<Int32>

    /// `log2(e)`.
    @usableFromInline static let log2e: Float = 1.442_695_04
    /// `ln 2 = ln2Hi + ln2Lo`; `ln2Hi` has 12 trailing zero bits, so `n·ln2Hi` is exact for |n| ≤ 256.
    @usableFromInline static let ln2Hi: Float = 0.693_359_375
    @usableFromInline static let ln2Lo: Float = -2.121_944_40e-4
    /// Below this, `exp` is 0 in float32 (`e^−104 ≈ 6.8e-46` < half the smallest subnormal).
    @usableFromInline static let lowest: Float = -104
    /// `1.5·2²³`: adding it rounds `|v| < 2²²` to an integer held in the low mantissa bits.
    @usableFromInline static let shifter: Float = 12_582_912

    /// `exp(y)` lane-wise for `y ≤ 0` (a lane `y > 0` is treated as 0; NaN propagates).
    @inlinable @inline(__always)
    public static func expNonPositive(_ y: Lanes) -> Lanes {
        // Clamp to [lowest, 0]; `replacing` keeps a NaN lane NaN (comparisons with NaN are false).
        var t = y.replacing(with: Lanes(repeating: lowest), where: y .< Lanes(repeating: lowest))
        t = t.replacing(with: Lanes(), where: t .> Lanes())
        // n = round(t·log2e) (to nearest even, by the shifter), f = t − n·ln2 in two steps. Fused
        // multiply-adds (`addingProduct`: IEEE fma, correctly rounded, so every build gives the
        // same bits; one instruction on FMA hardware) halve the instruction count.
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
        // 2ⁿ as 2^⌊n/2⌋ · 2^(n − ⌊n/2⌋), both normal for n ≥ −151 (gradual underflow).
        let bits = unsafeBitCast(k, to: IntLanes.self) &- IntLanes(repeating: 0x4B40_0000)
        let half = bits &>> IntLanes(repeating: 1)
        let bias = IntLanes(repeating: 127)
        let first = unsafeBitCast((half &+ bias) &<< IntLanes(repeating: 23), to: Lanes.self)
        let second = unsafeBitCast((bits &- half &+ bias) &<< IntLanes(repeating: 23), to: Lanes.self)
        return e * first * second
    }

    /// The logistic sigmoid `1/(1 + e^(−t))` lane-wise.
    @inlinable @inline(__always)
    public static func sigmoid(_ t: Lanes) -> Lanes {
        let negative = t .< Lanes()
        let z = expNonPositive(-abs(t))
        let numerator = Lanes(repeating: 1).replacing(with: z, where: negative)
        return numerator / (z + Lanes(repeating: 1))
    }

    /// `sigmoid(t)` for one value, through the same lanes (identical to the vector result).
    @inlinable
    public static func sigmoid(_ t: Float) -> Float { sigmoid(Lanes(repeating: t))[0] }

    /// `exp(y)` for one `y ≤ 0`, through the same lanes.
    @inlinable
    public static func expNonPositive(_ y: Float) -> Float { expNonPositive(Lanes(repeating: y))[0] }

    /// `|v|` lane-wise (clears the sign bits: `abs(−0) = +0`, NaN stays NaN).
    @inlinable @inline(__always)
    static func abs(_ v: Lanes) -> Lanes {
        unsafeBitCast(unsafeBitCast(v, to: IntLanes.self) & IntLanes(repeating: 0x7FFF_FFFF), to: Lanes.self)
    }
}
