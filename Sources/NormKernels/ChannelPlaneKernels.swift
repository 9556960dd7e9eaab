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
        Parallel.forEach(channels, work: 2 * n * stride) { range in
            for c in range {
                let (m, m2) = Reductions.moments(x + c * length, segments: n, stride: stride, length: length)
                let v = m2 / size
                mean[c] = m; variance[c] = v
                let (head, scale, shift) = coefficients(c, m, v)
                var off = (n - 1) * stride + c * length
                for _ in 0..<n {
                    PlaneKernels.affinePlane(x + off, y + off, length, head, scale, shift, nil)
                    off -= stride
                }
            }
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
        Parallel.forEach(channels, work: 3 * n * stride) { range in
            for c in range {
                let mu = head[c]
                let (sg, sgx) = Reductions.gradientSums(x: x + c * length, g: g + c * length, segments: n, stride: stride,
                                                        length: length, mu: mu)
                sumG[c] = sg; sumGX[c] = sgx
                let (a, b, cc) = coefficients(c, sg, sgx)
                var off = (n - 1) * stride + c * length
                for _ in 0..<n {
                    PlaneKernels.linearPlane(x + off, g + off, gx + off, length, mu, a, b, cc)
                    off -= stride
                }
            }
        }
    }
}
