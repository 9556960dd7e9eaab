/// Elementwise passes over the `N·C` planes of an `(N, C, S)` tensor, each plane with
/// its own coefficients. Written with `SIMD16<Float>`; split across threads by plane.
///
/// Coefficient arrays are indexed by `p % period`: `period = planes` for one coefficient
/// per plane, `period = C` for one per channel (BatchNorm), without per-plane arrays.
public enum PlaneKernels {
    /// The order a pass visits the planes in. A pass that follows a reduction pass over the
    /// same data visits the planes in the reverse of the reduction's order (parts handed out
    /// from the end, each walked backwards), so it starts with the data the reduction read
    /// last, which is still in the last-level cache.
    public enum Order: Sendable, Equatable {
        /// `0, 1, …`.
        case forward
        /// The reverse of `forward`, within each thread's range.
        case reverse
        /// The reverse of a channel-major walk (channel `c` for all `n`, then `c + 1`, …), as
        /// BatchNorm's per-channel reductions walk.
        case channelMajorReverse(channels: Int)
    }

    /// Calls `body(plane)` for every plane in `order`, split across threads.
    @inline(__always)
    static func forEachPlane(_ planes: Int, work: Int, order: Order, _ body: (Int) -> Void) {
        switch order {
        case .forward:
            Parallel.forEach(planes, work: work) { range in for p in range { body(p) } }
        case .reverse:
            Parallel.forEach(planes, work: work, descending: true) { range in for p in range.reversed() { body(p) } }
        case let .channelMajorReverse(c):
            let n = planes / c
            Parallel.forEach(c, work: work, descending: true) { range in
                for ch in range.reversed() {
                    var p = (n - 1) * c + ch
                    for _ in 0..<n { body(p); p -= c }
                }
            }
        }
    }
    /// `y = (x − mu[p]) · scale[p] + shift[p]`, then `max(y, floor[p])` when `floor` is given
    /// (FRN's TLU).
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int,
                              mu: [Float], scale: [Float], shift: [Float], floor: [Float]? = nil) {
        if let floor {
            affine(x: x, y: y, planes: planes, length: length, period: planes, mu: mu, scale: scale, shift: shift, floor: floor,
                   order: .reverse)
        } else {
            affine(x: x, y: y, planes: planes, length: length, period: planes, mu: mu, scale: scale, shift: shift, floor: nil,
                   order: .reverse)
        }
    }

    /// ``affine(x:y:planes:length:mu:scale:shift:floor:)`` with coefficients indexed by
    /// `p % period`, visiting the planes in `order`.
    public static func affine(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, length: Int, period: Int,
                              mu: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                              floor: UnsafePointer<Float>?, order: Order = .forward) {
        forEachPlane(planes, work: planes * length, order: order) { p in
            let u = period == planes ? p : p % period
            affinePlane(x + p * length, y + p * length, length, mu[u], scale[u], shift[u], floor?[u])
        }
    }

    @inline(__always)
    static func affinePlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                            _ mu: Float, _ s: Float, _ t: Float, _ floor: Float?) {
        let mv = SIMD16<Float>(repeating: mu), sv = SIMD16<Float>(repeating: s), tv = SIMD16<Float>(repeating: t)
        var i = 0
        if let f = floor {
            // max(v, f) as `Swift.max` computes it (`f >= v ? f : v`: NaN stays NaN), lane-wise.
            let fv = SIMD16<Float>(repeating: f)
            while i + 16 <= n {
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: v.replacing(with: fv, where: fv .>= v), as: SIMD16<Float>.self)
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
        sg.withUnsafeMutableBufferPointer { sg in sgx.withUnsafeMutableBufferPointer { sgx in
            gradientSums(x: x, g: g, planes: planes, length: length, period: planes, mu: mu, sumG: sg.baseAddress!, sumGX: sgx.baseAddress!)
        }}
        return (sg, sgx)
    }

    /// Per plane `(Σ g, Σ g·(x − mu[p % period]))` into `sumG`, `sumGX` (length `planes`).
    public static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, planes: Int, length: Int, period: Int,
                                    mu: UnsafePointer<Float>, sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>) {
        Parallel.forEach(planes, work: 2 * planes * length) { range in
            var u = range.lowerBound % period
            for p in range {
                let (a, b) = Reductions.gradientSums(x: x + p * length, g: g + p * length, length: length, mu: mu[u])
                sumG[p] = a; sumGX[p] = b
                u += 1
                if u == period { u = 0 }
            }
        }
    }

    /// `gx = a[p]·g + b[p]·(x − mu[p]) + c[p]`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         planes: Int, length: Int, mu: [Float], a: [Float], b: [Float], c: [Float]) {
        linearCombination(x: x, g: g, out: out, planes: planes, length: length, period: planes, mu: mu, a: a, b: b, c: c,
                          order: .reverse)
    }

    /// ``linearCombination(x:g:out:planes:length:mu:a:b:c:)`` with coefficients indexed by
    /// `p % period`, visiting the planes in `order`.
    public static func linearCombination(x: UnsafePointer<Float>, g: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         planes: Int, length: Int, period: Int, mu: UnsafePointer<Float>,
                                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>,
                                         order: Order = .forward) {
        forEachPlane(planes, work: 3 * planes * length, order: order) { p in
            let xp = x + p * length, gp = g + p * length, op = out + p * length
            let u = period == planes ? p : p % period
            let m = mu[u], av = a[u], bv = b[u], cv = c[u]
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
}
