import NormCore

/// What `backward` needs from a forward pass of a per-plane normalization.
struct PlaneForwardState {
    let x: Tensor
    let layout: PlaneLayout
    /// Mean and 1/σ each plane was normalized with.
    let planeMean: [Double]
    let planeInvstd: [Double]
    /// True when the statistics were computed from `x` (gradient flows through them).
    let batchStatistics: Bool
    /// Batch Renormalization's per-channel correction (constants for the gradient).
    let r: [Double]?
    let d: [Double]?
}

/// The shared forward/backward of BatchNorm, BatchRenorm, GroupNorm and InstanceNorm:
/// `y = w_c · ((x − μ_p)/σ_p · r_c + d_c) + b_c` for every plane `p = (n, c)`, with
/// per-channel affine and (BRN only) `r`, `d`; `r = 1, d = 0` otherwise.
///
/// The mean is split into a float32 head and a float64 tail folded into the shift, so
/// inputs with mean ≫ std keep full float32 accuracy.
enum PlaneNormalizer {
    static func forward(_ x: Tensor, layout: PlaneLayout, planeMean: [Double], planeInvstd: [Double],
                        weight: Tensor?, bias: Tensor?, r: [Double]? = nil, d: [Double]? = nil,
                        batchStatistics: Bool, output: inout ReusableStorage) -> (Tensor, PlaneForwardState) {
        let planes = layout.planes, c = layout.c
        var head = [Float](repeating: 0, count: planes), scale = head, shift = head
        let w = weight?.scalars, b = bias?.scalars
        for p in 0..<planes {
            let ch = p % c
            let wc = Double(w?[ch] ?? 1), bc = Double(b?[ch] ?? 0)
            let rc = r?[ch] ?? 1, dc = d?[ch] ?? 0
            let s = planeInvstd[p] * rc * wc
            head[p] = Float(planeMean[p])
            let tail = planeMean[p] - Double(head[p])
            scale[p] = Float(s)
            shift[p] = Float(wc * dc + bc - tail * s)
        }
        var y = output.tensor(shape: x.shape)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                PlaneKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, planes: planes, length: layout.s,
                                    mu: head, scale: scale, shift: shift)
            }
        }
        return (y, PlaneForwardState(x: x, layout: layout, planeMean: planeMean, planeInvstd: planeInvstd,
                                     batchStatistics: batchStatistics, r: r, d: d))
    }

    /// Returns dL/dx and, when asked, the per-channel dL/dweight and dL/dbias.
    static func backward(_ g: Tensor, state st: PlaneForwardState, weight: Tensor?,
                         wantWeight: Bool, wantBias: Bool, output: inout ReusableStorage) -> (Tensor, Tensor?, Tensor?) {
        let layout = st.layout, planes = layout.planes, c = layout.c
        let head = st.planeMean.map { Float($0) }
        let (sumG, sumGXh) = st.x.withUnsafeBufferPointer { xb in
            g.withUnsafeBufferPointer { gb in
                PlaneKernels.gradientSums(x: xb.baseAddress!, g: gb.baseAddress!, planes: planes, length: layout.s, mu: head)
            }
        }
        // Σ g·(x − μ) with the exact mean: correct for the float32 head.
        var sumGX = [Double](repeating: 0, count: planes)
        for p in 0..<planes { sumGX[p] = sumGXh[p] - (st.planeMean[p] - Double(head[p])) * sumG[p] }

        let w = weight?.scalars
        var gradW = [Double](repeating: 0, count: c), gradB = gradW
        for p in 0..<planes {
            let ch = p % c
            gradB[ch] += sumG[p]
            gradW[ch] += st.planeInvstd[p] * (st.r?[ch] ?? 1) * sumGX[p] + (st.d?[ch] ?? 0) * sumG[p]
        }

        var a = [Float](repeating: 0, count: planes), bCoef = a, cCoef = a
        if st.batchStatistics {
            let groups = layout.groupCount, m = Double(layout.groupSize)
            var s1 = [Double](repeating: 0, count: groups), s2 = s1
            for p in 0..<planes {
                let ch = p % c, gi = layout.group(ofPlane: p)
                let gain = Double(w?[ch] ?? 1) * (st.r?[ch] ?? 1)
                s1[gi] += gain * sumG[p]
                s2[gi] += gain * st.planeInvstd[p] * sumGX[p]
            }
            for p in 0..<planes {
                let ch = p % c, gi = layout.group(ofPlane: p), inv = st.planeInvstd[p]
                let gain = Double(w?[ch] ?? 1) * (st.r?[ch] ?? 1)
                let bb = -inv * inv * s2[gi] / m
                let cc = -inv * s1[gi] / m
                a[p] = Float(inv * gain)
                bCoef[p] = Float(bb)
                cCoef[p] = Float(cc - bb * (st.planeMean[p] - Double(head[p])))
            }
        } else {
            for p in 0..<planes {
                let ch = p % c
                a[p] = Float(st.planeInvstd[p] * Double(w?[ch] ?? 1) * (st.r?[ch] ?? 1))
            }
        }
        var gx = output.tensor(shape: g.shape)
        st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in gx.withUnsafeMutableBufferPointer { ob in
            PlaneKernels.linearCombination(x: xb.baseAddress!, g: gb.baseAddress!, out: ob.baseAddress!,
                                           planes: planes, length: layout.s, mu: head, a: a, b: bCoef, c: cCoef)
        }}}
        return (gx,
                wantWeight ? Tensor(shape: [c], doubles: gradW) : nil,
                wantBias ? Tensor(shape: [c], doubles: gradB) : nil)
    }
}
