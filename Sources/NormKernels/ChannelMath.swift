/// Per-channel float64 arithmetic of the statistics (`1/√(σ² + eps)` and the like), four
/// channels per step with `SIMD4<Double>`.
///
/// IEEE square root and division are correctly rounded, so every value equals the scalar
/// expression's bit for bit; the vector form only removes the scalar loop's chain of square
/// roots and divisions, which at `(256, 1024)` cost as much as a third of the normalization.
/// A final partial step pads the unused lanes (with 1) and stores only the used ones.
public enum ChannelMath {
    /// `out[c] = 1 / √(variance[c] + eps)` for `count` channels.
    public static func inverseStandardDeviation(_ variance: UnsafePointer<Double>, eps: Double, count: Int,
                                                into out: UnsafeMutablePointer<Double>) {
        forEachStep(count) { i, lanes in
            store(1 / (load(variance, i, lanes) + eps).squareRoot(), out, i, lanes)
        }
    }

    /// `out[c] = 1 / √(Double(variance[c]) + eps)` for `count` channels (float32 running variance).
    public static func inverseStandardDeviation(_ variance: UnsafePointer<Float>, eps: Double, count: Int,
                                                into out: UnsafeMutablePointer<Double>) {
        forEachStep(count) { i, lanes in
            store(1 / (load(variance, i, lanes) + eps).squareRoot(), out, i, lanes)
        }
    }

    /// Calls `body(i, lanes)` for the steps `i = 0, 4, 8, …` below `count`, `lanes` = 4 except
    /// in a final partial step.
    @inlinable @inline(__always)
    public static func forEachStep(_ count: Int, _ body: (_ i: Int, _ lanes: Int) -> Void) {
        var i = 0
        while i < count {
            body(i, min(4, count - i))
            i += 4
        }
    }

    /// `p[i ..< i + lanes]`, unused lanes set to `pad`.
    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Double>, _ i: Int, _ lanes: Int, pad: Double = 1) -> SIMD4<Double> {
        if lanes == 4 { return UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Double>.self) }
        var v = SIMD4<Double>(repeating: pad)
        for l in 0..<lanes { v[l] = p[i + l] }
        return v
    }

    /// `p[i ..< i + lanes]` widened to float64, unused lanes set to `pad`.
    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>, _ i: Int, _ lanes: Int, pad: Double = 1) -> SIMD4<Double> {
        if lanes == 4 { return SIMD4<Double>(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD4<Float>.self)) }
        var v = SIMD4<Double>(repeating: pad)
        for l in 0..<lanes { v[l] = Double(p[i + l]) }
        return v
    }

    /// Stores the first `lanes` lanes of `v` at `p + i`.
    @inlinable @inline(__always)
    public static func store(_ v: SIMD4<Double>, _ p: UnsafeMutablePointer<Double>, _ i: Int, _ lanes: Int) {
        if lanes == 4 { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD4<Double>.self); return }
        for l in 0..<lanes { p[i + l] = v[l] }
    }
}
