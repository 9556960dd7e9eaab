import NormCore

/// What `backward` needs from a forward pass of a per-plane normalization.
struct PlaneForwardState {
    let x: Tensor
    let layout: PlaneLayout
    /// Mean and 1/σ of each group of `layout` (`layout.groupCount` of them), as normalized with.
    let groupMean: [Double]
    let groupInvstd: [Double]
    /// True when the statistics were computed from `x` (gradient flows through them).
    let batchStatistics: Bool
    /// Batch Renormalization's per-channel correction (constants for the gradient).
    let r: [Double]?
    let d: [Double]?
    /// The group-row terms (``RowKernels``: float32 head, 1/σ and folded tail per group) the
    /// forward normalized with, when it took the group-row path; else recomputed when needed.
    var rowTerms: (head: [Float], inv: [Float], k: [Float])? = nil
}

/// The shared forward/backward of BatchNorm, BatchRenorm, GroupNorm and InstanceNorm:
/// `y = w_c · ((x − μ_g)/σ_g · r_c + d_c) + b_c` for every plane `p = (n, c)` of group `g`,
/// with per-channel affine and (BRN only) `r`, `d`; `r = 1, d = 0` otherwise.
///
/// The mean is split into a float32 head and a float64 tail folded into the shift, so
/// inputs with mean ≫ std keep full float32 accuracy.
///
/// Three kernel paths, chosen from the layout alone (so forward and backward agree):
/// - per-plane (``PlaneKernels``): coefficients per channel (BatchNorm: indexed `p % C`, no
///   per-plane arrays) or per plane (GroupNorm, InstanceNorm);
/// - channel rows (``ChannelKernels``) for per-channel statistics with a short spatial
///   extent, `(N, C)` above all: vectorized across channels, per-channel coefficients;
/// - group rows (``RowKernels`` with `G` runs per row) for GroupNorm without spatial extent,
///   normalizing as `((x − head)·inv − k)·w + b` like LayerNorm.
///
/// GroupNorm and InstanceNorm with the statistics of their input take the fused path
/// (``forwardWithBatchStatistics(_:layout:eps:weight:bias:output:)``, and the matching branch
/// of ``backward(_:state:weight:wantWeight:wantBias:output:)``): every group is a contiguous
/// run, so its statistics and its output (or its gradient sums and dL/dx) are computed in one
/// visit, blocks of runs per thread, with the same arithmetic as the per-plane path.
enum PlaneNormalizer {
    /// Per-channel `w`, `b`, `r`, `d` as float64 (defaults 1, 0, 1, 0).
    private struct ChannelTerms {
        var w: [Double], b: [Double], r: [Double], d: [Double]
        init(c: Int, weight: Tensor?, bias: Tensor?, r: [Double]?, d: [Double]?) {
            w = weight.map { $0.scalars.map(Double.init) } ?? [Double](repeating: 1, count: c)
            b = bias.map { $0.scalars.map(Double.init) } ?? [Double](repeating: 0, count: c)
            self.r = r ?? [Double](repeating: 1, count: c)
            self.d = d ?? [Double](repeating: 0, count: c)
        }
    }

    /// Forward with the statistics of `x` for GroupNorm / InstanceNorm layouts (`.byGroup`,
    /// `.byPlane`: every group is one contiguous run of `groupSize` values): statistics and
    /// output fused per group (``PlaneKernels/normalizeRuns(x:y:runs:length:segment:channels:eps:weight:bias:mean:variance:invstd:)``,
    /// or ``RowKernels/normalizeRuns(x:y:rows:length:segments:eps:w:b:head:inv:k:mean:variance:invstd:)``
    /// for group rows), with the same arithmetic as ``PlaneLayout/batchMoments(_:)`` followed
    /// by ``forward(_:layout:groupMean:groupInvstd:weight:bias:r:d:batchStatistics:output:)``
    /// with `invstd = 1/√(variance + eps)`. Also returns the per-group biased variance.
    static func forwardWithBatchStatistics(_ x: Tensor, layout: PlaneLayout, eps: Double, weight: Tensor?, bias: Tensor?,
                                           output: inout ReusableStorage) -> (Tensor, PlaneForwardState, variance: [Double]) {
        precondition(layout.grouping != .byChannel, "per-channel statistics are strided, not runs")
        let groups = layout.groupCount, size = layout.groupSize
        var mean = [Double](repeating: 0, count: groups), invstd = mean, variance = mean
        var terms: (head: [Float], inv: [Float], k: [Float])? = nil
        let y: Tensor = mean.withUnsafeMutableBufferPointer { mb in invstd.withUnsafeMutableBufferPointer { ib in
            variance.withUnsafeMutableBufferPointer { vb in
                output.tensor(shape: x.shape) { yb in
                    x.withUnsafeBufferPointer { xb in
                        withOptionalPointers(weight, bias) { w, b in
                            if layout.usesGroupRows, case let .byGroup(g) = layout.grouping {
                                let runs = layout.n * g
                                var head = [Float](repeating: 0, count: runs), inv = head, k = head
                                RowKernels.normalizeRuns(x: xb.baseAddress!, y: yb.baseAddress!, rows: layout.n, length: layout.c,
                                                         segments: g, eps: eps, w: w, b: b,
                                                         head: &head, inv: &inv, k: &k, mean: mb.baseAddress!,
                                                         variance: vb.baseAddress!, invstd: ib.baseAddress!)
                                terms = (head, inv, k)
                            } else {
                                PlaneKernels.normalizeRuns(x: xb.baseAddress!, y: yb.baseAddress!, runs: groups, length: size,
                                                           segment: layout.s, channels: layout.c, eps: eps, weight: w, bias: b,
                                                           mean: mb.baseAddress!, variance: vb.baseAddress!, invstd: ib.baseAddress!)
                            }
                        }
                    }
                }
            }
        }}
        let state = PlaneForwardState(x: x, layout: layout, groupMean: mean, groupInvstd: invstd,
                                      batchStatistics: true, r: nil, d: nil, rowTerms: terms)
        return (y, state, variance)
    }

    static func forward(_ x: Tensor, layout: PlaneLayout, groupMean: [Double], groupInvstd: [Double],
                        weight: Tensor?, bias: Tensor?, r: [Double]? = nil, d: [Double]? = nil,
                        batchStatistics: Bool, output: inout ReusableStorage) -> (Tensor, PlaneForwardState) {
        let c = layout.c, s = layout.s
        let state = PlaneForwardState(x: x, layout: layout, groupMean: groupMean, groupInvstd: groupInvstd,
                                      batchStatistics: batchStatistics, r: r, d: d)
        if layout.usesGroupRows, case let .byGroup(g) = layout.grouping {
            let (head, inv, k) = rowTerms(groupMean, groupInvstd)
            let y = output.tensor(shape: x.shape) { yb in
                x.withUnsafeBufferPointer { xb in
                    withOptionalPointers(weight, bias) { w, b in
                        RowKernels.normalize(x: xb.baseAddress!, y: yb.baseAddress!, rows: layout.n, length: c, segments: g,
                                             head: head, inv: inv, k: k, w: w, b: b)
                    }
                }
            }
            return (y, state)
        }
        let t = ChannelTerms(c: c, weight: weight, bias: bias, r: r, d: d)
        // Head, scale and shift per unit: per channel (per-channel statistics) or per plane.
        let perChannel = layout.grouping == .byChannel
        let units = perChannel ? c : layout.planes
        var mu = [Float](repeating: 0, count: units), scale = mu, shift = mu
        // Per channel, unit u is channel u (no maps to build).
        let maps = perChannel ? nil : unitMaps(layout)
        mu.withUnsafeMutableBufferPointer { mu in scale.withUnsafeMutableBufferPointer { scale in
            shift.withUnsafeMutableBufferPointer { shift in
                for u in 0..<units {
                    let gi = maps?.group[u] ?? u, ch = maps?.channel[u] ?? u
                    let sc = groupInvstd[gi] * t.r[ch] * t.w[ch]
                    let head = Float(groupMean[gi])
                    let tail = groupMean[gi] - Double(head)
                    mu[u] = head; scale[u] = Float(sc); shift[u] = Float(t.w[ch] * t.d[ch] + t.b[ch] - tail * sc)
                }
            }
        }}
        if layout.usesChannelRows {
            let cols = c * s
            let (mu, scale, shift) = (ChannelColumns.repeated(mu, spatial: s), ChannelColumns.repeated(scale, spatial: s), ChannelColumns.repeated(shift, spatial: s))
            let y = output.tensor(shape: x.shape) { yb in
                x.withUnsafeBufferPointer { xb in
                    ChannelKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, rows: layout.n, cols: cols,
                                          mu: mu, scale: scale, shift: shift)
                }
            }
            return (y, state)
        }
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in
                // Batch statistics were just read channel by channel (BN) or plane by plane:
                // normalize in the reverse order to start with what is still cached.
                PlaneKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, planes: layout.planes, length: s, period: units,
                                    mu: mu, scale: scale, shift: shift, floor: nil,
                                    order: !batchStatistics ? .forward : perChannel ? .channelMajorReverse(channels: c) : .reverse)
            }
        }
        return (y, state)
    }

    /// The group and channel of every unit: each channel when the statistics are per
    /// channel, else each plane `n·C + c`.
    private static func unitMaps(_ layout: PlaneLayout) -> (group: [Int], channel: [Int]) {
        let c = layout.c
        switch layout.grouping {
        case .byChannel:
            let ids = Array(0..<c)
            return (ids, ids)
        case .byPlane:
            return (Array(0..<layout.planes), (0..<layout.planes).map { $0 % c })
        case let .byGroup(g):
            let per = c / g
            return ((0..<layout.planes).map { ($0 / c) * g + ($0 % c) / per }, (0..<layout.planes).map { $0 % c })
        }
    }

    /// LayerNorm-style per-group terms: float32 head, 1/σ, and the tail folded as `k = tail/σ`.
    private static func rowTerms(_ mean: [Double], _ invstd: [Double]) -> ([Float], [Float], [Float]) {
        var head = [Float](repeating: 0, count: mean.count), inv = head, k = head
        head.withUnsafeMutableBufferPointer { h in inv.withUnsafeMutableBufferPointer { iv in k.withUnsafeMutableBufferPointer { kk in
            for i in mean.indices {
                h[i] = Float(mean[i])
                iv[i] = Float(invstd[i])
                kk[i] = Float((mean[i] - Double(h[i])) * invstd[i])
            }
        }}}
        return (head, inv, k)
    }

    private static func withOptionalPointers<R>(_ a: Tensor?, _ b: Tensor?,
                                                _ body: (UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
        guard let a else {
            guard let b else { return body(nil, nil) }
            return b.withUnsafeBufferPointer { body(nil, $0.baseAddress) }
        }
        return a.withUnsafeBufferPointer { ap in
            guard let b else { return body(ap.baseAddress, nil) }
            return b.withUnsafeBufferPointer { body(ap.baseAddress, $0.baseAddress) }
        }
    }

    /// Backward for GroupNorm / InstanceNorm layouts with batch statistics: dL/dx fused per
    /// group (``PlaneKernels/normalizeRunsBackward(x:g:gx:runs:length:segment:channels:mean:invstd:weight:sumG:sumGX:)``),
    /// then the per-channel parameter gradients from the per-plane sums, in plane order (the
    /// arithmetic of the general path with `r = 1`, `d = 0`).
    private static func fusedRunsBackward(_ g: Tensor, state st: PlaneForwardState, weight: Tensor?,
                                          wantWeight: Bool, wantBias: Bool, output: inout ReusableStorage) -> (Tensor, Tensor?, Tensor?) {
        let layout = st.layout, c = layout.c, planes = layout.planes
        var sumG = [Double](repeating: 0, count: planes), sumGX = sumG
        let gx = output.tensor(shape: g.shape) { ob in
            st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
                sumG.withUnsafeMutableBufferPointer { sg in sumGX.withUnsafeMutableBufferPointer { sgx in
                    withOptionalPointers(weight, nil) { w, _ in
                        PlaneKernels.normalizeRunsBackward(x: xb.baseAddress!, g: gb.baseAddress!, gx: ob.baseAddress!,
                                                           runs: layout.groupCount, length: layout.groupSize, segment: layout.s,
                                                           channels: c, mean: st.groupMean, invstd: st.groupInvstd, weight: w,
                                                           sumG: sg.baseAddress!, sumGX: sgx.baseAddress!)
                    }
                }}
            }}
        }
        guard wantWeight || wantBias else { return (gx, nil, nil) }
        var gradW = [Double](repeating: 0, count: c), gradB = gradW
        let perGroup = layout.groupSize / layout.s
        sumG.withUnsafeBufferPointer { sg in sumGX.withUnsafeBufferPointer { sgx in st.groupInvstd.withUnsafeBufferPointer { inv in
            gradW.withUnsafeMutableBufferPointer { gw in gradB.withUnsafeMutableBufferPointer { gbias in
                var ch = 0
                for p in 0..<planes {
                    let iv = inv[p / perGroup]
                    gbias[ch] += sg[p]
                    gw[ch] += iv * sgx[p]
                    ch += 1
                    if ch == c { ch = 0 }
                }
            }}
        }}}
        return (gx, wantWeight ? Tensor(shape: [c], doubles: gradW) : nil, wantBias ? Tensor(shape: [c], doubles: gradB) : nil)
    }

    /// The backward of a layer with an optional per-channel affine (BatchNorm, BatchRenorm,
    /// GroupNorm, InstanceNorm): checks `g` against the last forward's input, returns dL/dx
    /// and sets the gradients of the affine parameters that require them (`nil` on the others).
    static func backward(_ g: Tensor, state: PlaneForwardState?, affine: ChannelAffine?, descriptor: NormDescriptor,
                         output: inout ReusableStorage) throws -> Tensor {
        _ = try InputValidation.checkGradient(g, state?.x, descriptor)
        let (gx, gw, gb) = backward(g, state: state!, weight: affine?.weight.value,
                                    wantWeight: affine?.weight.requiresGrad ?? false, wantBias: affine?.bias.requiresGrad ?? false,
                                    output: &output)
        affine?.weight.gradient = gw
        affine?.bias.gradient = gb
        return gx
    }

    /// Returns dL/dx and, when asked, the per-channel dL/dweight and dL/dbias.
    static func backward(_ g: Tensor, state st: PlaneForwardState, weight: Tensor?,
                         wantWeight: Bool, wantBias: Bool, output: inout ReusableStorage) -> (Tensor, Tensor?, Tensor?) {
        let layout = st.layout, c = layout.c, s = layout.s
        if layout.usesGroupRows, case let .byGroup(groups) = layout.grouping {
            let (head, inv, k) = st.rowTerms ?? rowTerms(st.groupMean, st.groupInvstd)
            var gradW = [Float](repeating: 0, count: wantWeight ? c : 0), gradB = [Float](repeating: 0, count: wantBias ? c : 0)
            let gx = output.tensor(shape: g.shape) { ob in
                st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
                    gradW.withUnsafeMutableBufferPointer { gw in gradB.withUnsafeMutableBufferPointer { gbias in
                        withOptionalPointers(weight, nil) { w, _ in
                            RowKernels.backwardRuns(x: xb.baseAddress!, g: gb.baseAddress!, gx: ob.baseAddress!, rows: layout.n, length: c,
                                                    segments: groups, head: head, inv: inv, k: k, w: w,
                                                    gradW: wantWeight ? gw.baseAddress : nil, gradB: wantBias ? gbias.baseAddress : nil)
                        }
                    }}
                }}
            }
            return (gx, wantWeight ? Tensor(shape: [c], scalars: gradW) : nil, wantBias ? Tensor(shape: [c], scalars: gradB) : nil)
        }
        if st.batchStatistics, layout.grouping != .byChannel, st.r == nil, st.d == nil {
            return fusedRunsBackward(g, state: st, weight: weight, wantWeight: wantWeight, wantBias: wantBias, output: &output)
        }
        if st.batchStatistics, fusesChannels(layout) {
            return backwardByChannel(g, state: st, weight: weight, wantWeight: wantWeight, wantBias: wantBias, output: &output)
        }

        let t = ChannelTerms(c: c, weight: weight, bias: nil, r: st.r, d: st.d)
        let channelRows = layout.usesChannelRows
        // Reduction units: channels (per-channel statistics) or planes `n·C + c`.
        let byChannel = layout.grouping == .byChannel
        let units = byChannel ? c : layout.planes
        let (unitGroup, unitChannel) = unitMaps(layout)
        let unitHead = unitGroup.map { Float(st.groupMean[$0]) }
        var sumG = [Double](repeating: 0, count: units), sumGX = sumG
        st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in unitHead.withUnsafeBufferPointer { head in
            sumG.withUnsafeMutableBufferPointer { sg in sumGX.withUnsafeMutableBufferPointer { sgx in
                let xp = xb.baseAddress!, gp = gb.baseAddress!
                if channelRows {
                    let cols = c * s
                    let mu = ChannelColumns.repeated(Array(head), spatial: s)
                    var colG = [Double](repeating: 0, count: cols), colGX = colG
                    colG.withUnsafeMutableBufferPointer { cg in colGX.withUnsafeMutableBufferPointer { cgx in
                        ChannelKernels.gradientSums(x: xp, g: gp, rows: layout.n, cols: cols,
                                                    mu: mu, sumG: cg.baseAddress!, sumGX: cgx.baseAddress!)
                    }}
                    for ch in 0..<c {
                        var a = 0.0, b = 0.0
                        for j in 0..<s { a += colG[ch * s + j]; b += colGX[ch * s + j] }
                        sg[ch] = a; sgx[ch] = b
                    }
                } else if byChannel {
                    // Each channel's N runs in one strided reduction.
                    Parallel.forEach(c, work: 2 * layout.n * c * s) { range in
                        for ch in range {
                            let (a, b) = Reductions.gradientSums(x: xp + ch * s, g: gp + ch * s, segments: layout.n, stride: c * s,
                                                                 length: s, mu: head[ch])
                            sg[ch] = a; sgx[ch] = b
                        }
                    }
                } else {
                    PlaneKernels.gradientSums(x: xp, g: gp, planes: layout.planes, length: s, period: units,
                                              mu: head.baseAddress!, sumG: sg.baseAddress!, sumGX: sgx.baseAddress!)
                }
            }}
        }}}

        // Σ g·(x − μ) with the exact mean (correcting for the float32 head), the parameter
        // gradients, and the group sums of the batch-statistics terms.
        let m = Double(layout.groupSize)
        let batch = st.batchStatistics
        var gradW = [Double](repeating: 0, count: c), gradB = gradW
        var s1 = [Double](repeating: 0, count: batch ? layout.groupCount : 0), s2 = s1
        var a = [Float](repeating: 0, count: units), b = a, cc = a
        // Plain pointer loops: array subscripts inside would re-check uniqueness per element.
        unitGroup.withUnsafeBufferPointer { ug in unitChannel.withUnsafeBufferPointer { uc in
        st.groupMean.withUnsafeBufferPointer { mean in st.groupInvstd.withUnsafeBufferPointer { inv in
        sumG.withUnsafeBufferPointer { sg in sumGX.withUnsafeMutableBufferPointer { sgx in
        gradW.withUnsafeMutableBufferPointer { gw in gradB.withUnsafeMutableBufferPointer { gbias in
        s1.withUnsafeMutableBufferPointer { s1 in s2.withUnsafeMutableBufferPointer { s2 in
        a.withUnsafeMutableBufferPointer { a in b.withUnsafeMutableBufferPointer { b in cc.withUnsafeMutableBufferPointer { cc in
        t.w.withUnsafeBufferPointer { w in t.r.withUnsafeBufferPointer { r in t.d.withUnsafeBufferPointer { d in
            for u in 0..<units {
                let gi = ug[u], ch = uc[u]
                let mu = mean[gi], head = Float(mu)
                sgx[u] -= (mu - Double(head)) * sg[u]
                gbias[ch] += sg[u]
                gw[ch] += inv[gi] * r[ch] * sgx[u] + d[ch] * sg[u]
                if batch {
                    let gain = w[ch] * r[ch]
                    s1[gi] += gain * sg[u]
                    s2[gi] += gain * inv[gi] * sgx[u]
                }
            }
            // gx = a·g + b·(x − head) + cc per unit.
            for u in 0..<units {
                let gi = ug[u], ch = uc[u]
                let iv = inv[gi], mu = mean[gi]
                if batch {
                    let bb = -iv * iv * s2[gi] / m
                    let ccu = -iv * s1[gi] / m
                    a[u] = Float(iv * (w[ch] * r[ch]))
                    b[u] = Float(bb)
                    cc[u] = Float(ccu - bb * (mu - Double(Float(mu))))
                } else {
                    a[u] = Float(iv * w[ch] * r[ch])
                }
            }
        }}}}}}}}}}}}}}}}
        let gx: Tensor
        if channelRows {
            let cols = c * s
            let expanded = [unitHead, a, b, cc].map { ChannelColumns.repeated($0, spatial: s) }
            gx = output.tensor(shape: g.shape) { ob in
                st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
                    ChannelKernels.linearCombination(x: xb.baseAddress!, g: gb.baseAddress!, out: ob.baseAddress!, rows: layout.n, cols: cols,
                                                     mu: expanded[0], a: expanded[1], b: expanded[2], cc: expanded[3])
                }}
            }
        } else {
            gx = output.tensor(shape: g.shape) { ob in
                st.x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in
                    PlaneKernels.linearCombination(x: xb.baseAddress!, g: gb.baseAddress!, out: ob.baseAddress!,
                                                   planes: layout.planes, length: s, period: units, mu: unitHead, a: a, b: b, c: cc,
                                                   order: byChannel ? .channelMajorReverse(channels: c) : .reverse)
                }}
            }
        }
        return (gx,
                wantWeight ? Tensor(shape: [c], doubles: gradW) : nil,
                wantBias ? Tensor(shape: [c], doubles: gradB) : nil)
    }
}
