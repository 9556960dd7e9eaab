/// Kernels for a per-plane affine followed by a per-plane threshold,
/// `y = max(x·s + t, τ)` (Filter Response Normalization with its TLU). The gradient of
/// `max` goes to the affine branch where `x·s + t ≥ τ` (ties included) and to `τ` elsewhere.
public enum ThresholdKernels {
    /// Fused FRN forward: for every plane `p` of `length` values (channel `p % channels`;
    /// blocks of planes split across threads) `ν² = Σx²/length`, `invr[p] = 1/√(ν² + absEps)`,
    /// `scale[p] = Float(invr·w_c)`, `shift[p] = b_c`, then, while the plane is cached,
    /// `y = max(x·scale + shift, τ_c)` (no `max` when `tau` is nil; `w = 1`, `b = 0` when absent).
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int, channels: Int,
                               absEps: Double, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, tau: UnsafePointer<Float>?,
                               invr: UnsafeMutablePointer<Double>, scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        let size = Reductions.Divisor(Double(length))
        PlaneKernels.forEachBlock(planes, block: PlaneKernels.runsPerBlock(length), work: planes * length) { p0, p1, t in
            for p in p0..<p1 { t[p - p0] = Reductions.sumOfSquares(x + p * length, length: length) }
            var c = p0 % channels
            for p in p0..<p1 {
                let ir = 1 / (size.divide(t[p - p0]) + absEps).squareRoot()
                invr[p] = ir
                scale[p] = Float(ir * Double(weight?[c] ?? 1))
                shift[p] = bias?[c] ?? 0
                c += 1
                if c == channels { c = 0 }
            }
            c = p0 % channels
            for p in p0..<p1 {
                PlaneKernels.affinePlane(x + p * length, y + p * length, length, 0, scale[p], shift[p], tau?[c])
                c += 1
                if c == channels { c = 0 }
            }
        }
    }

    /// Fused FRN backward through the TLU: for every plane `p` (channel `p % channels`; blocks
    /// of planes split across threads) the sums `passG[p] = Σ g·m`, `passGX[p] = Σ g·m·x`,
    /// `sumG[p] = Σ g` with `m = [x·scale + shift ≥ τ_c]` (`τ = −∞` when `tau` is nil), then,
    /// while the plane is cached, `dL/dx = a·g·m + b·x` with `a = invr·w_c`,
    /// `b = −w_c·invr³·passGX/length`. The parameter gradients are left to the caller (sums
    /// over the per-plane outputs).
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                planes: Int, length: Int, channels: Int,
                                invr: UnsafePointer<Double>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                tau: UnsafePointer<Float>?, weight: UnsafePointer<Float>?,
                                passG: UnsafeMutablePointer<Double>, passGX: UnsafeMutablePointer<Double>, sumG: UnsafeMutablePointer<Double>) {
        let size = Reductions.Divisor(Double(length)), S = PlaneKernels.maxBlockRuns
        PlaneKernels.forEachBlock(planes, block: PlaneKernels.runsPerBlock(length, budget: 2048), work: 2 * planes * length) { p0, p1, t in
            var c = p0 % channels
            for p in p0..<p1 {
                let (a1, a2, a3) = planeSums(x + p * length, g + p * length, length, scale[p], shift[p], tau?[c] ?? -Float.infinity)
                passG[p] = a1; passGX[p] = a2; sumG[p] = a3
                c += 1
                if c == channels { c = 0 }
            }
            c = p0 % channels
            for p in p0..<p1 {
                let inv = invr[p], wc = Double(weight?[c] ?? 1)
                t[p - p0] = Double(Float(inv * wc))
                t[S + p - p0] = Double(Float(size.divide(-wc * inv * inv * inv * passGX[p])))
                c += 1
                if c == channels { c = 0 }
            }
            c = p0 % channels
            for p in p0..<p1 {
                maskedLinearPlane(x + p * length, g + p * length, gx + p * length, length, scale[p], shift[p],
                                  tau?[c] ?? -Float.infinity, Float(t[p - p0]), Float(t[S + p - p0]))
                c += 1
                if c == channels { c = 0 }
            }
        }
    }

    /// Per plane `(Σ g·m, Σ g·m·x, Σ g)` with `m = [x·s + t ≥ τ]`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int,
                                    scale: [Float], shift: [Float], floor: [Float]) -> (passG: [Double], passGX: [Double], sumG: [Double]) {
        var pg = [Double](repeating: 0, count: planes), pgx = pg, sg = pg
        pg.withUnsafeMutableBufferPointer { pg in pgx.withUnsafeMutableBufferPointer { pgx in sg.withUnsafeMutableBufferPointer { sg in
            Parallel.forEach(planes, work: 2 * planes * length) { range in
                for p in range {
                    (pg[p], pgx[p], sg[p]) = planeSums(x + p * length, g + p * length, length, scale[p], shift[p], floor[p])
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
                maskedLinearPlane(x + p * length, g + p * length, out + p * length, length, scale[p], shift[p], floor[p], a[p], b[p])
            }
        }
    }

    /// `(Σ g·m, Σ g·m·x, Σ g)` over one plane, `m = [x·s + t ≥ τ]` (float32 lanes over blocks of
    /// ``Reductions/block`` values, block sums in `Double`).
    @inline(__always)
    static func planeSums(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ length: Int,
                          _ s: Float, _ t: Float, _ f: Float) -> (Double, Double, Double) {
        if length <= Reductions.shortRun { return blockSums(SIMD4<Float>.self, xp, gp, 0, length, s, t, f) }
        // 8-lane vectors: three accumulators, three constants and two loads fit in 16 SSE registers.
        var a1 = 0.0, a2 = 0.0, a3 = 0.0
        var start = 0
        while start < length {
            let end = min(start + Reductions.block, length)
            let (t1, t2, t3) = blockSums(SIMD8<Float>.self, xp, gp, start, end, s, t, f)
            a1 += t1; a2 += t2; a3 += t3
            start = end
        }
        return (a1, a2, a3)
    }

    /// ``planeSums(_:_:_:_:_:_:)`` over `[start, end)` in vectors of `V`: one accumulator per
    /// sum, its lanes added at the end, then the values past the last whole vector in `Double`.
    @inline(__always)
    static func blockSums<V: FloatLanes>(_: V.Type, _ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ start: Int, _ end: Int,
                                         _ s: Float, _ t: Float, _ f: Float) -> (Double, Double, Double) {
        let sv = V(repeating: s), tv = V(repeating: t), fv = V(repeating: f)
        var b1 = V(), b2 = V(), b3 = V()
        var i = start
        while i + V.scalarCount <= end {
            let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: V.self)
            let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: V.self)
            let gm = gv.passing(xv, sv, tv, fv)
            b1 += gm; b2 += gm * xv; b3 += gv
            i += V.scalarCount
        }
        var t1 = Double(b1.laneSum), t2 = Double(b2.laneSum), t3 = Double(b3.laneSum)
        while i < end {
            let gv = gp[i]
            if xp[i] * s + t >= f { t1 += Double(gv); t2 += Double(gv * xp[i]) }
            t3 += Double(gv)
            i += 1
        }
        return (t1, t2, t3)
    }

    /// `out = a·g·m + b·x` over one plane, `m = [x·s + t ≥ τ]`.
    @inline(__always)
    static func maskedLinearPlane(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, _ length: Int,
                                  _ s: Float, _ t: Float, _ f: Float, _ a: Float, _ b: Float) {
        let sv = SIMD16<Float>(repeating: s), tv = SIMD16<Float>(repeating: t), fv = SIMD16<Float>(repeating: f)
        let av = SIMD16<Float>(repeating: a), bv = SIMD16<Float>(repeating: b)
        var i = 0
        while i + 16 <= length {
            let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self)
            let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
            let gm = SIMD16<Float>(repeating: 0).replacing(with: gv, where: (xv * sv + tv) .>= fv)
            UnsafeMutableRawPointer(op + i).storeBytes(of: av * gm + bv * xv, as: SIMD16<Float>.self)
            i += 16
        }
        while i < length {
            let gm: Float = xp[i] * s + t >= f ? gp[i] : 0
            op[i] = a * gm + b * xp[i]
            i += 1
        }
    }
}
