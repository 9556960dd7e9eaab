import NormCore

/// Float32 passes over one contiguous run (a plane or a group), eight lanes at a time with a
/// scalar tail, for layers whose per-run coefficients come from float64 statistics. A mean
/// enters as a float32 `head` (`x − head` is exact for `x` near it); callers fold the float64
/// remainder into the shift.
enum RunKernels {
    typealias V = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// `y = (x − head)·scale + shift`.
    static func affine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, length: Int, head: Float, scale: Float, shift: Float) {
        let h = V(repeating: head), a = V(repeating: scale), b = V(repeating: shift)
        var i = 0
        while i + 8 <= length { store((load(x + i) - h) * a + b, y + i); i += 8 }
        while i < length { y[i] = (x[i] - head) * scale + shift; i += 1 }
    }

    /// `(Σ g, Σ g·(x − head))`, lanes in float32, combined in float64.
    static func gradientSums(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, length: Int, head: Float) -> (Double, Double) {
        let h = V(repeating: head)
        var a = V(), b = V()
        var i = 0
        while i + 8 <= length {
            let gi = load(g + i)
            a += gi; b += gi * (load(x + i) - h)
            i += 8
        }
        var sg = Double(Reductions.hsum(a)), sgx = Double(Reductions.hsum(b))
        while i < length { sg += Double(g[i]); sgx += Double(g[i] * (x[i] - head)); i += 1 }
        return (sg, sgx)
    }

    /// `gx = gScale·g + xScale·(x − head) + shift`.
    static func gradient(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, length: Int,
                         gScale: Float, head: Float, xScale: Float, shift: Float) {
        let gs = V(repeating: gScale), h = V(repeating: head), xs = V(repeating: xScale), b = V(repeating: shift)
        var i = 0
        while i + 8 <= length { store(gs * load(g + i) + xs * (load(x + i) - h) + b, gx + i); i += 8 }
        while i < length { gx[i] = gScale * g[i] + xScale * (x[i] - head) + shift; i += 1 }
    }

    /// Mean and biased variance of each contiguous run of `length` values (``Reductions``:
    /// pilot-shifted float32 blocks added in float64), runs split across threads.
    static func planeMoments(_ x: Tensor, planes: Int, length: Int) -> (mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: planes), variance = mean
        x.withUnsafeBufferPointer { xb in mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
            let base = xb.baseAddress!, mp = mb.baseAddress!, vp = vb.baseAddress!
            Parallel.forEach(planes, work: planes * length) { range in
                for p in range {
                    let (m, m2) = Reductions.contiguousMoments(base + p * length, length: length)
                    mp[p] = m; vp[p] = m2 / Double(length)
                }
            }
        }}}
        return (mean, variance)
    }
}
