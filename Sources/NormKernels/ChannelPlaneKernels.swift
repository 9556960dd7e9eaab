import NormKernelsC

/// BatchNorm's train passes on `(N, C, S)` with per-channel batch statistics, fused per
/// channel: a channel's `N` planes are reduced and then, while they are still in the L2 (or
/// last-level) cache, normalized — so every value is read from memory once, as the fused
/// per-run GroupNorm / InstanceNorm kernels (``PlaneKernels/normalizeRuns(x:y:runs:length:segment:channels:eps:weight:bias:mean:variance:invstd:)``) do.
///
/// The separate passes (every channel's statistics, then every channel's output) re-read the
/// whole tensor from memory once it is larger than the cache: at `(32, 64, 56, 56)` a channel
/// is 400 KB (800 KB with the gradient), the tensor 25.7 MB.
///
/// The arithmetic is that of the separate passes — ``Reductions/moments(_:segments:stride:length:)``
/// or ``Reductions/gradientSums(x:g:segments:stride:length:mu:)`` over the channel's `N`
/// strided runs, then the per-plane pass of ``PlaneKernels`` — so outputs are bit-identical to
/// them, and channels are split across threads (each computed by one thread, in a fixed
/// order): bit-identical for any thread count. The per-channel coefficients come from the
/// caller (the layer's affine, Batch Renormalization's `r`, `d`), a pure function of the
/// channel and its sums, called once per channel from the thread that owns the channel.
public enum ChannelPlaneKernels {
    /// The affine map `y = (x − head)·scale + shift` of channel `channel`, from its batch mean
    /// and biased variance.
    public typealias Coefficients = (_ channel: Int, _ mean: Double, _ variance: Double) -> (head: Float, scale: Float, shift: Float)

    /// The backward map `dL/dx = a·g + b·(x − head) + c` of channel `channel`, from its sums
    /// `Σ g` and `Σ g·(x − head)` (about the `head` passed to the kernel).
    public typealias GradientCoefficients = (_ channel: Int, _ sumG: Double, _ sumGX: Double) -> (a: Float, b: Float, c: Float)

    /// Fused train forward: for every channel `c`, the mean and M2 of its `n` planes of `length`
    /// values (plane `(i, c)` at `x + (i·channels + c)·length`), `mean[c]`,
    /// `variance[c] = M2 / (n·length)`, then `y = (x − head)·scale + shift` over its planes
    /// (last read first) with `coefficients(c, mean[c], variance[c])`.
    public static func normalize(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, channels: Int, length: Int,
                                 mean: UnsafeMutablePointer<Double>, variance: UnsafeMutablePointer<Double>,
                                 coefficients: Coefficients) {
        let size = Double(n * length), stride = channels * length
        let streaming = StreamingStores.pay(arrays: 2, count: n * stride)
        Parallel.forEach(channels, work: 2 * n * stride) { range in
            for c in range {
                let (m, m2) = moments(x + c * length, segments: n, stride: stride, length: length)
                let v = m2 / size
                mean[c] = m; variance[c] = v
                let (head, scale, shift) = coefficients(c, m, v)
                var off = (n - 1) * stride + c * length
                for k in 0..<n {
                    // Prefetched: the plane after this one, else the next channel's first plane.
                    let next = k < n - 1 ? off - stride : c + 1 < range.upperBound ? (c + 1) * length : off
                    affinePlane(x + off, y + off, length, head, scale, shift, prefetch: x + next, y + next, streaming: streaming)
                    off -= stride
                }
            }
            StreamingStores.fence(streaming)
        }
    }

    /// Fused backward through batch statistics: for every channel `c`, `sumG[c] = Σ g` and
    /// `sumGX[c] = Σ g·(x − head[c])` over its `n` planes, then
    /// `dL/dx = a·g + b·(x − head[c]) + c` over its planes (last read first) with
    /// `coefficients(c, sumG[c], sumGX[c])`.
    public static func backward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                                n: Int, channels: Int, length: Int, head: UnsafePointer<Float>,
                                sumG: UnsafeMutablePointer<Double>, sumGX: UnsafeMutablePointer<Double>,
                                coefficients: GradientCoefficients) {
        let stride = channels * length
        let streaming = StreamingStores.pay(arrays: 3, count: n * stride)
        Parallel.forEach(channels, work: 3 * n * stride) { range in
            for c in range {
                let mu = head[c]
                let (sg, sgx) = gradientSums(x: x + c * length, g: g + c * length, segments: n, stride: stride,
                                             length: length, mu: mu)
                sumG[c] = sg; sumGX[c] = sgx
                let (a, b, cc) = coefficients(c, sg, sgx)
                var off = (n - 1) * stride + c * length
                for k in 0..<n {
                    let next = k < n - 1 ? off - stride : c + 1 < range.upperBound ? (c + 1) * length : off
                    linearPlane(x + off, g + off, gx + off, length, mu, a, b, cc, prefetch: x + next, g + next, streaming: streaming)
                    off -= stride
                }
            }
            StreamingStores.fence(streaming)
        }
    }

    // The passes below are ``Reductions/moments(_:segments:stride:length:)``,
    // ``Reductions/gradientSums(x:g:segments:stride:length:mu:)``, ``PlaneKernels``' affine and
    // linear plane passes, operation for operation (the same values), with software prefetch
    // hints added: a channel's planes are `C·S` values apart, so every plane starts a new
    // stream that the hardware prefetcher would only pick up after several misses. While one
    // plane is summed, the next is requested (one line per 16 values, the loop's step).

    /// ``Reductions/moments(_:segments:stride:length:)`` prefetching the next segment.
    @inline(__always)
    static func moments(_ base: UnsafePointer<Float>, segments: Int, stride: Int, length: Int) -> (mean: Double, m2: Double) {
        let n = segments * length
        guard n > 0 else { return (.nan, .nan) }
        let block = Reductions.block
        let k = base[0]
        let kv = SIMD8<Float>(repeating: k)
        var s1 = 0.0, s2 = 0.0
        var a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var filled = 0
        for seg in 0..<segments {
            let p = base + seg * stride
            let ahead = seg + 1 < segments ? p + stride : p
            var i = 0
            while i < length {
                let end = i + min(length - i, block - filled)
                filled += end - i
                while i + 16 <= end {
                    nk_prefetch_read(ahead + i)
                    let u = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) - kv
                    let v = UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self) - kv
                    a1 += u; a2 += u * u
                    b1 += v; b2 += v * v
                    i += 16
                }
                while i < end { let u = Double(p[i] - k); s1 += u; s2 += u * u; i += 1 }
                if filled == block {
                    s1 += Double(Reductions.hsum(a1 + b1)); s2 += Double(Reductions.hsum(a2 + b2))
                    a1 = SIMD8<Float>(); a2 = a1; b1 = a1; b2 = a1
                    filled = 0
                }
            }
        }
        s1 += Double(Reductions.hsum(a1 + b1)); s2 += Double(Reductions.hsum(a2 + b2))
        let dn = Double(n)
        let meanShift = s1 / dn
        return (Double(k) + meanShift, max(s2 - s1 * meanShift, 0))
    }

    /// ``Reductions/gradientSums(x:g:segments:stride:length:mu:)`` prefetching the next segment.
    @inline(__always)
    static func gradientSums(x: UnsafePointer<Float>, g: UnsafePointer<Float>, segments: Int, stride: Int, length: Int,
                             mu: Float) -> (Double, Double) {
        let block = Reductions.block
        let mv = SIMD8<Float>(repeating: mu)
        var sg = 0.0, sgx = 0.0
        var a1 = SIMD8<Float>(), b1 = SIMD8<Float>(), a2 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var filled = 0
        for seg in 0..<segments {
            let xp = x + seg * stride, gp = g + seg * stride
            let step = seg + 1 < segments ? stride : 0
            var i = 0
            while i < length {
                let end = i + min(length - i, block - filled)
                filled += end - i
                while i + 16 <= end {
                    nk_prefetch_read(xp + step + i)
                    nk_prefetch_read(gp + step + i)
                    let g1 = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD8<Float>.self)
                    let g2 = UnsafeRawPointer(gp + i + 8).loadUnaligned(as: SIMD8<Float>.self)
                    let x1 = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD8<Float>.self) - mv
                    let x2 = UnsafeRawPointer(xp + i + 8).loadUnaligned(as: SIMD8<Float>.self) - mv
                    a1 += g1; b1 += g1 * x1
                    a2 += g2; b2 += g2 * x2
                    i += 16
                }
                while i < end { sg += Double(gp[i]); sgx += Double(gp[i]) * Double(xp[i] - mu); i += 1 }
                if filled == block {
                    sg += Double(Reductions.hsum(a1 + a2)); sgx += Double(Reductions.hsum(b1 + b2))
                    a1 = SIMD8<Float>(); a2 = a1; b1 = a1; b2 = a1
                    filled = 0
                }
            }
        }
        sg += Double(Reductions.hsum(a1 + a2)); sgx += Double(Reductions.hsum(b1 + b2))
        return (sg, sgx)
    }

    /// `y = (x − mu)·s + t` over one plane (``PlaneKernels``' affine pass), prefetching `px`, `py`;
    /// `streaming`: non-temporal stores (``StreamingStores``).
    @inline(__always)
    static func affinePlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                            _ mu: Float, _ s: Float, _ t: Float, prefetch px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
                            streaming: Bool) {
        let mv = SIMD16<Float>(repeating: mu), sv = SIMD16<Float>(repeating: s), tv = SIMD16<Float>(repeating: t)
        var i = 0
        if streaming {
            let head = StreamingStores.unalignedHead(y, n)
            while i < head { y[i] = (x[i] - mu) * s + t; i += 1 }
            while i + 16 <= n {
                nk_prefetch_read(px + i)
                nk_stream_store16(y + i, (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv)
                i += 16
            }
        } else {
            while i + 16 <= n {
                nk_prefetch_read(px + i)
                nk_prefetch_write(py + i)
                let v = (UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv) * sv + tv
                UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD16<Float>.self)
                i += 16
            }
        }
        while i < n { y[i] = (x[i] - mu) * s + t; i += 1 }
    }

    /// `out = a·g + b·(x − m) + c` over one plane (``PlaneKernels``' linear pass), prefetching
    /// `px`, `pg` (a write hint for the output as in ``affinePlane(_:_:_:_:_:_:prefetch:_:streaming:)``
    /// measured no faster here); `streaming`: non-temporal stores.
    @inline(__always)
    static func linearPlane(_ xp: UnsafePointer<Float>, _ gp: UnsafePointer<Float>, _ op: UnsafeMutablePointer<Float>, _ n: Int,
                            _ m: Float, _ av: Float, _ bv: Float, _ cv: Float,
                            prefetch px: UnsafePointer<Float>, _ pg: UnsafePointer<Float>, streaming: Bool) {
        let mv = SIMD16<Float>(repeating: m), aa = SIMD16<Float>(repeating: av)
        let bb = SIMD16<Float>(repeating: bv), cc = SIMD16<Float>(repeating: cv)
        var i = 0
        if streaming {
            let head = StreamingStores.unalignedHead(op, n)
            while i < head { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
        }
        while i + 16 <= n {
            nk_prefetch_read(px + i)
            nk_prefetch_read(pg + i)
            let gv = UnsafeRawPointer(gp + i).loadUnaligned(as: SIMD16<Float>.self)
            let xv = UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self) - mv
            StreamingStores.store(aa * gv + bb * xv + cc, at: op + i, streaming: streaming)
            i += 16
        }
        while i < n { op[i] = av * gp[i] + bv * (xp[i] - m) + cv; i += 1 }
    }
}
