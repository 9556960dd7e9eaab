/// Elementwise passes over the `N·C` planes of an `(N, C, S)` tensor, each plane with
/// its own coefficients. Written with `SIMD16<Float>`; split across threads by plane.
public enum PlaneKernels {
    /// `y = (x − mu[p]) · scale[p] + shift[p]`, then `max(y, floor[p])` when `floor` is given
    /// (FRN's TLU).
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int,
                              mu: [Float], scale: [Float], shift: [Float], floor: [Float]? = nil) {
        mu.withUnsafeBufferPointer { mu in scale.withUnsafeBufferPointer { sc in shift.withUnsafeBufferPointer { sh in
            let fl = floor
            Parallel.forEach(planes, work: planes * length) { range in
                for p in range {
                    affinePlane(x + p * length, y + p * length, length, mu[p], sc[p], sh[p], fl?[p])
                }
            }
        }}}
    }

    @inline(__always)
    static func affinePlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                            _ mu: Float, _ s: Float, _ t: Float, _ floor: Float?) {
        let mv = SIMD16<Float>(repeating: mu), sv = SIMD16<Float>(repeating: s), tv = SIMD16<Float>(repeating: t)
        var i = 0
        if let f = floor {
            let fv = SIMD16<Float>(repeating: f)
            while i + 16 <= n {
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: pointwiseMax(v, fv), as: SIMD16<Float>.self)
                i += 16
            }
            while i < n { y[i] = Swift.max((x[i] - mu) * s + t, f); i += 1 }
        } else {
            while i + 16 <= n {
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD16<Float>.self)
                i += 16
            }
            while i < n { y[i] = (x[i] - mu) * s + t; i += 1 }
        }
    }

    /// Per plane `(Σ g, Σ g·(x − mu[p]))`.
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int,
                                    mu: [Float]) -> (sumG: [Double], sumGX: [Double]) {
        var sg = [Double](repeating: 0, count: planes), sgx = [Double](repeating: 0, count: planes)
        sg.withUnsafeMutableBufferPointer { sg in sgx.withUnsafeMutableBufferPointer { sgx in mu.withUnsafeBufferPointer { mu in
            Parallel.forEach(planes, work: 2 * planes * length) { range in
                for p in range {
                    let (a, b) = Reductions.gradientSums(x: x + p * length, g: g + p * length, length: length, mu: mu[p])
                    sg[p] = a; sgx[p] = b
                }
            }
        }}}
        return (sg, sgx)
    }

    /// `gx = a[p]·g + b[p]·(x − mu[p]) + c[p]`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         planes: Int, length: Int, mu: [Float], a: [Float], b: [Float], c: [Float]) {
        mu.withUnsafeBufferPointer { mu in a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeBufferPointer { c in
            Parallel.forEach(planes, work: 3 * planes * length) { range in
                for p in range {
                    let xp = x + p * length, gp = g + p * length, op = out + p * length
                    let m = mu[p], av = a[p], bv = b[p], cv = c[p]
                    let mv = SIMD16<Float>(repeating: m), aa = SIMD16<Float>(repeating: av)
                    let bb = SIMD16<Float>(repeating: bv), cc = SIMD16<Float>(repeating: cv)
                    var i = 0
                    while i + 16 <= length {
                        let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
                        let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - mv
                        UnsafeMutableRawPointer(op + i).storeBytes(of: aa * gv + bb * xv + cc, as: SIMD16<Float>.self)
                        i += 16
                    }
                    while i < length { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
                }
            }
        }}}}
    }
}
