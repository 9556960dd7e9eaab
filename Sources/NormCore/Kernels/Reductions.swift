/// SIMD reductions the normalization layers are built from.
///
/// Statistics are numerically sound for inputs whose mean is far larger than their
/// spread: values are shifted by a pilot value (the first element) before squaring,
/// accumulated in `SIMD16<Float>` lanes over short blocks, and the block sums are added in
/// `Double` ("shifted data" algorithm with blocked float64 accumulation).
public enum Reductions {
    /// Elements per float32 block before flushing to float64.
    @usableFromInline static let block = 2048

    /// Mean and sum of squared deviations (M2) over `segments` runs of `length` floats,
    /// `stride` apart, starting at `base`.
    @inlinable
    public static func moments(_ base: UnsafePointer<Float>, segments: Int, stride: Int, length: Int) -> (mean: Double, m2: Double) {
        let n = segments * length
        guard n > 0 else { return (.nan, .nan) }
        let k = base[0]
        let kv = SIMD16<Float>(repeating: k)
        var s1 = 0.0, s2 = 0.0
        for seg in 0..<segments {
            let p = base + seg * stride
            var start = 0
            while start < length {
                let end = min(start + block, length)
                var a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>()
                var i = start
                while i + 32 <= end {
                    let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - kv
                    let v = UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD16<Float>.self) - kv
                    a1 += u; a2 += u * u
                    b1 += v; b2 += v * v
                    i += 32
                }
                var t1 = Double((a1 + b1).sum()), t2 = Double((a2 + b2).sum())
                while i < end { let u = Double(p[i] - k); t1 += u; t2 += u * u; i += 1 }
                s1 += t1; s2 += t2
                start = end
            }
        }
        let dn = Double(n)
        let meanShift = s1 / dn
        return (Double(k) + meanShift, max(s2 - s1 * meanShift, 0))
    }

    /// Sum of squares over `length` floats (no shift: FRN's second moment about zero).
    @inlinable
    public static func sumOfSquares(_ p: UnsafePointer<Float>, length: Int) -> Double {
        var total = 0.0
        var start = 0
        while start < length {
            let end = min(start + block, length)
            var a = SIMD16<Float>(), b = SIMD16<Float>()
            var i = start
            while i + 32 <= end {
                let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
                let v = UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD16<Float>.self)
                a += u * u; b += v * v
                i += 32
            }
            var t = Double((a + b).sum())
            while i < end { t += Double(p[i]) * Double(p[i]); i += 1 }
            total += t
            start = end
        }
        return total
    }

    /// `(Σ g, Σ g·(x − mu))` over `length` elements: the two backward reductions in one pass.
    @inlinable
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, length: Int, mu: Float) -> (Double, Double) {
        let mv = SIMD16<Float>(repeating: mu)
        var sg = 0.0, sgx = 0.0
        var start = 0
        while start < length {
            let end = min(start + block, length)
            var a = SIMD16<Float>(), b = SIMD16<Float>()
            var i = start
            while i + 16 <= end {
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
                let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv
                a += gv; b += gv * xv
                i += 16
            }
            var t1 = Double(a.sum()), t2 = Double(b.sum())
            while i < end { t1 += Double(g[i]); t2 += Double(g[i]) * Double(x[i] - mu); i += 1 }
            sg += t1; sgx += t2
            start = end
        }
        return (sg, sgx)
    }
}
