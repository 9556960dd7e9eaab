import NormCore

/// Batch Renormalization's inputs to the per-channel correction: the running statistics before
/// this step's update and the clip limits.
struct RenormInputs {
    let running: RunningStatistics
    let limits: RenormLimits
}

extension RenormLimits {
    /// Ioffe (2017), Algorithm 1, for one channel: `r = clip(σ_B/σ, 1/r_max, r_max)`,
    /// `d = clip((μ_B − μ)/σ, −d_max, d_max)` with `σ = √(running var + eps)` — the lane
    /// arithmetic of `BatchStatisticsCore`'s vectorized correction, value for value.
    func correction(mean: Double, variance: Double, runningMean: Double, runningVariance: Double,
                    eps: Double) -> (r: Double, d: Double) {
        let sigma = (runningVariance + eps).squareRoot()
        let rawR = (variance + eps).squareRoot() / sigma
        let rawD = (mean - runningMean) / sigma
        let rLow = 1 / rMax, dLow = -dMax
        var r = rLow >= rawR ? rLow : rawR
        r = rMax < r ? rMax : r
        var d = dLow >= rawD ? dLow : rawD
        d = dMax < d ? dMax : d
        return (r, d)
    }
}

/// BatchNorm / BatchRenorm in train mode with batch statistics on `(N, C, S)` inputs with a
/// spatial extent: statistics and output (or gradient sums and dL/dx) fused per channel
/// (``ChannelPlaneKernels``), so each channel's planes are read from memory once.
///
/// The per-channel coefficients are the arithmetic of the separate passes
/// (``PlaneLayout/batchMoments(_:)``, then ``PlaneNormalizer/forward(_:layout:groupMean:groupInvstd:weight:bias:r:d:batchStatistics:output:)``,
/// and the per-channel branch of ``PlaneNormalizer/backward(_:state:weight:wantWeight:wantBias:output:)``)
/// expression for expression, so the results are bit-identical to them.
extension PlaneNormalizer {
    /// Whether BatchNorm's train passes take the fused per-channel kernels (a switch for the
    /// tests that compare them with the separate passes; always on otherwise).
    nonisolated(unsafe) static var fusesChannelPasses = true

    /// Whether `layout` (with batch statistics) takes the fused per-channel kernels.
    static func fusesChannels(_ layout: PlaneLayout) -> Bool {
        fusesChannelPasses && layout.grouping == .byChannel && !layout.usesChannelRows
    }

    /// Fused train forward: returns `y` and the per-channel batch mean, biased variance and
    /// `1/√(variance + eps)`; with `renorm`, normalizes with BRN's `r`, `d` from the batch and
    /// running statistics.
    static func forwardByChannel(_ x: Tensor, layout: PlaneLayout, eps: Double, weight: Tensor?, bias: Tensor?,
                                 renorm: RenormInputs?, output: inout ReusableStorage)
        -> (y: Tensor, mean: [Double], variance: [Double], invstd: [Double]) {
        let c = layout.c
        var mean = [Double](repeating: 0, count: c), variance = mean, invstd = mean
        let w = weight.map { $0.scalars.map(Double.init) }, b = bias.map { $0.scalars.map(Double.init) }
        let rm = renorm.map { $0.running.mean.value.scalars.map(Double.init) }
        let rv = renorm.map { $0.running.variance.value.scalars.map(Double.init) }
        let y: Tensor = mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
            output.tensor(shape: x.shape) { yb in
                x.withUnsafeBufferPointer { xb in
                    ChannelPlaneKernels.normalize(x: xb.baseAddress!, y: yb.baseAddress!, n: layout.n, channels: c, length: layout.s,
                                                  mean: mb.baseAddress!, variance: vb.baseAddress!) { ch, mu, v in
                        let inv = 1 / (v + eps).squareRoot()
                        var r = 1.0, d = 0.0
                        if let renorm, let rm, let rv {
                            (r, d) = renorm.limits.correction(mean: mu, variance: v, runningMean: rm[ch], runningVariance: rv[ch], eps: eps)
                        }
                        let wc = w?[ch] ?? 1, bc = b?[ch] ?? 0
                        let sc = inv * r * wc
                        let head = Float(mu)
                        let tail = mu - Double(head)
                        return (head, Float(sc), Float(wc * d + bc - tail * sc))
                    }
                }
            }
        }}
        variance.withUnsafeBufferPointer { vb in invstd.withUnsafeMutableBufferPointer { ib in
            ChannelMath.inverseStandardDeviation(vb.baseAddress!, eps: eps, count: c, into: ib.baseAddress!)
        }}
        return (y, mean, variance, invstd)
    }

    /// Fused backward through the batch statistics of ``forwardByChannel(_:layout:eps:weight:bias:renorm:output:)``:
    /// dL/dx and, when asked, the per-channel dL/dweight and dL/dbias.
    static func backwardByChannel(_ g: Tensor, state st: PlaneForwardState, weight: Tensor?,
                                  wantWeight: Bool, wantBias: Bool, output: inout ReusableStorage) -> (Tensor, Tensor?, Tensor?) {
        let layout = st.layout, c = layout.c
        let w = weight.map { $0.scalars.map(Double.init) } ?? [Double](repeating: 1, count: c)
        let r = st.r ?? [Double](repeating: 1, count: c), d = st.d ?? [Double](repeating: 0, count: c)
        let mean = st.groupMean, inv = st.groupInvstd
        let head = mean.map { Float($0) }
        let m = Double(layout.groupSize)
        var sumG = [Double](repeating: 0, count: c), sumGX = sumG
        let gx = output.tensor(shape: g.shape) { ob in
            st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in head.withUnsafeBufferPointer { hb in
                sumG.withUnsafeMutableBufferPointer { sg in sumGX.withUnsafeMutableBufferPointer { sgx in
                    ChannelPlaneKernels.backward(x: xb.baseAddress!, g: gb.baseAddress!, gx: ob.baseAddress!, n: layout.n,
                                                 channels: c, length: layout.s, head: hb.baseAddress!,
                                                 sumG: sg.baseAddress!, sumGX: sgx.baseAddress!) { ch, sg, rawSGX in
                        let mu = mean[ch], iv = inv[ch]
                        let sgx = rawSGX - (mu - Double(Float(mu))) * sg
                        let gain = w[ch] * r[ch]
                        // Accumulated from 0 as the group sums of the separate path (−0 becomes +0).
                        var s1 = 0.0, s2 = 0.0
                        s1 += gain * sg
                        s2 += gain * iv * sgx
                        let bb = -iv * iv * s2 / m
                        let ccu = -iv * s1 / m
                        return (Float(iv * (w[ch] * r[ch])), Float(bb), Float(ccu - bb * (mu - Double(Float(mu)))))
                    }
                }}
            }}}
        }
        guard wantWeight || wantBias else { return (gx, nil, nil) }
        var gradW = [Double](repeating: 0, count: c), gradB = gradW
        for ch in 0..<c {
            let mu = mean[ch]
            let sgx = sumGX[ch] - (mu - Double(Float(mu))) * sumG[ch]
            gradB[ch] += sumG[ch]
            gradW[ch] += inv[ch] * r[ch] * sgx + d[ch] * sumG[ch]
        }
        return (gx, wantWeight ? Tensor(shape: [c], doubles: gradW) : nil, wantBias ? Tensor(shape: [c], doubles: gradB) : nil)
    }
}
