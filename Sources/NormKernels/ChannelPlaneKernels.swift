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
                let (m, m2) = Reductions.moments(x + c * length, segments: n, stride: stride, length: length,
                                                  prefetchingNextSegment: true)
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
                let (sg, sgx) = Reductions.gradientSums(x: x + c * length, g: g + c * length, segments: n, stride: stride,
                                                        length: length, mu: mu, prefetchingNextSegment: true)
                sumG[c] = sg; sumGX[c] = sgx
                let (a, b, cc) = coefficients(c, sg, sgx)
                var off = (n - 1) * stride + c * length
                for k in 0..<n {
                    let next = k < n - 1 ? off - stride : c + 1 < range.upperBound ? (c + 1) * length : off
                    PlaneKernels.linearPlane(x + off, g + off, gx + off, length, mu, a, b, cc, streaming: streaming,
                                             prefetch: (x + next, g + next))
                    off -= stride
                }
            }
            StreamingStores.fence(streaming)
        }
    }

    // The statistics passes are ``Reductions``' strided moments and gradient sums with
    // `prefetchingNextSegment` (a channel's planes are `C·S` values apart, so every plane
    // starts a new stream); the output passes prefetch the next plane for the same reason
    // (``PlaneKernels/linearPlane(_:_:_:_:_:_:_:_:streaming:prefetch:)`` and the affine pass below).

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
}
