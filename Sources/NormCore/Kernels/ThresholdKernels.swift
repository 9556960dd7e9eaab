/// Kernels for a per-plane affine followed by a per-plane threshold,
/// `y = max(x·s + t, τ)` (Filter Response Normalization with its TLU). The gradient of
/// `max` goes to the affine branch where `x·s + t ≥ τ` (ties included) and to `τ` elsewhere.
public enum ThresholdKernels {
    /// Per plane `(Σ g·m, Σ g·m·x, Σ g)` with `m = [x·s + t ≥ τ]`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int,
                                    scale: [Float], shift: [Float], floor: [Float]) -> (passG: [Double], passGX: [Double], sumG: [Double]) {
        var pg = [Double](repeating: 0, count: planes), pgx = pg, sg = pg
        pg.withUnsafeMutableBufferPointer { pg in pgx.withUnsafeMutableBufferPointer { pgx in sg.withUnsafeMutableBufferPointer { sg in
            Parallel.forEach(planes, work: 2 * planes * length) { range in
                for p in range {
                    let xp = x + p * length, gp = g + p * length
                    let sv = SIMD16<Float>(repeating: scale[p]), tv = SIMD16<Float>(repeating: shift[p])
                    let fv = SIMD16<Float>(repeating: floor[p])
                    var a1 = 0.0, a2 = 0.0, a3 = 0.0
                    var start = 0
                    while start < length {
                        let end = min(start + Reductions.block, length)
                        var b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>()
                        var i = start
                        while i + 16 <= end {
                            let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self)
                            let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                            let pass = (xv * sv + tv) .>= fv
                            let gm = SIMD16<Float>(repeating: 0).replacing(with: gv, where: pass)
                            b1 += gm; b2 += gm * xv; b3 += gv
                            i += 16
                        }
                        var t1 = Double(Reductions.hsum(b1)), t2 = Double(Reductions.hsum(b2)), t3 = Double(Reductions.hsum(b3))
                        while i < end {
                            let gv = gp[i]
                            if xp[i] * scale[p] + shift[p] >= floor[p] { t1 += Double(gv); t2 += Double(gv * xp[i]) }
                            t3 += Double(gv)
                            i += 1
                        }
                        a1 += t1; a2 += t2; a3 += t3
                        start = end
                    }
                    pg[p] = a1; pgx[p] = a2; sg[p] = a3
                }
            }
        }}}
        return (pg, pgx, sg)
    }

    /// `gx = a[p]·g·m + b[p]·x` with `m = [x·s + t ≥ τ]`.
    public static func maskedLinear(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                    planes: Int, length: Int, scale: [Float], shift: [Float], floor: [Float], a: [Float], b: [Float]) {
        // The reverse of `gradientSums`' order: start with the planes still in cache.
        Parallel.forEach(planes, work: 3 * planes * length, descending: true) { range in
            for p in range.reversed() {
                let xp = x + p * length, gp = g + p * length, op = out + p * length
                let sv = SIMD16<Float>(repeating: scale[p]), tv = SIMD16<Float>(repeating: shift[p])
                let fv = SIMD16<Float>(repeating: floor[p])
                let av = SIMD16<Float>(repeating: a[p]), bv = SIMD16<Float>(repeating: b[p])
                var i = 0
                while i + 16 <= length {
                    let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self)
                    let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                    let gm = SIMD16<Float>(repeating: 0).replacing(with: gv, where: (xv * sv + tv) .>= fv)
                    UnsafeMutableRawPointer(op + i).storeBytes(of: av * gm + bv * xv, as: SIMD16<Float>.self)
                    i += 16
                }
                while i < length {
                    let gm: Float = xp[i] * scale[p] + shift[p] >= floor[p] ? gp[i] : 0
                    op[i] = a[p] * gm + b[p] * xp[i]
                    i += 1
                }
            }
        }
    }
}
