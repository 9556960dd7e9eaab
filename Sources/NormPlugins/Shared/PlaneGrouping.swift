import NormCore

/// How the `N·C` planes (one `(n, c)` slice of `S` spatial values each) of an input form
/// the groups a method takes statistics over.
enum PlaneGrouping: Equatable {
    /// BatchNorm: one group per channel, over `(N, spatial)`.
    case byChannel
    /// GroupNorm: `G` groups of consecutive channels per sample, over `(C/G, spatial)`.
    case byGroup(Int)
    /// InstanceNorm: one group per `(n, c)`, over the spatial axes.
    case byPlane
}

/// An input's `(N, C, S)` geometry under a grouping.
struct PlaneLayout {
    let n: Int, c: Int, s: Int
    let grouping: PlaneGrouping

    init(_ x: Tensor, _ grouping: PlaneGrouping) {
        n = x.shape[0]; c = x.shape[1]; s = x.spatialCount
        self.grouping = grouping
    }

    var planes: Int { n * c }

    var groupCount: Int {
        switch grouping {
        case .byChannel: return c
        case let .byGroup(g): return n * g
        case .byPlane: return n * c
        }
    }

    /// Values each group's statistics run over.
    var groupSize: Int {
        switch grouping {
        case .byChannel: return n * s
        case let .byGroup(g): return (c / g) * s
        case .byPlane: return s
        }
    }

    func group(ofPlane p: Int) -> Int {
        switch grouping {
        case .byChannel: return p % c
        case let .byGroup(g): return (p / c) * g + (p % c) / (c / g)
        case .byPlane: return p
        }
    }

    /// The memory runs of group `gi`: first offset, number of runs, stride, run length.
    func runs(ofGroup gi: Int) -> (offset: Int, count: Int, stride: Int, length: Int) {
        switch grouping {
        case .byChannel: return (gi * s, n, c * s, s)
        case let .byGroup(g):
            let per = c / g
            return (((gi / g) * c + (gi % g) * per) * s, 1, 0, per * s)
        case .byPlane: return (gi * s, 1, 0, s)
        }
    }

    /// Spatial sizes below this take the channel-row kernels for per-channel statistics
    /// (`(N, C)` inputs: planes of one element would make the per-plane loops degenerate).
    static let channelRowSpatialLimit = 16

    /// Whether this layout runs through ``ChannelKernels`` (`cols = C·S`, per-channel
    /// coefficients): per-channel grouping with a short spatial extent.
    var usesChannelRows: Bool { grouping == .byChannel && s < Self.channelRowSpatialLimit }

    /// Whether this layout runs through ``RowKernels`` with `G` runs per row: GroupNorm on
    /// inputs without spatial extent.
    var usesGroupRows: Bool {
        if case .byGroup = grouping { return s == 1 }
        return false
    }

    /// Per-group mean and biased variance, computed in parallel over groups.
    func batchMoments(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
        if usesChannelRows { return channelRowMoments(x) }
        let groups = groupCount
        var mean = [Double](repeating: 0, count: groups), variance = mean
        let size = Double(groupSize)
        x.withUnsafeBufferPointer { xb in
            let base = xb.baseAddress!
            mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
                Parallel.forEach(groups, work: n * c * s) { range in
                    for gi in range {
                        let r = runs(ofGroup: gi)
                        let (m, m2) = Reductions.moments(base + r.offset, segments: r.count, stride: r.stride, length: r.length)
                        mb[gi] = m; vb[gi] = m2 / size
                    }
                }
            }}
        }
        return (mean, variance)
    }

    /// Per-channel moments over the `(N, C·S)` matrix: column sums shifted by each channel's
    /// first value (as ``Reductions/moments(_:segments:stride:length:)`` shifts by its run's
    /// first value), columns split across threads, then the `S` columns of a channel combined.
    private func channelRowMoments(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
        x.withUnsafeBufferPointer { xb in Self.channelRowMoments(xb.baseAddress!, rows: n, channels: c, spatial: s) }
    }

    /// ``channelRowMoments(_:)`` of the `(rows, channels·spatial)` matrix at `base`; `parallel:
    /// false` keeps it on the calling thread (the same bits).
    static func channelRowMoments(_ base: UnsafePointer<Float>, rows n: Int, channels c: Int, spatial s: Int,
                                  parallel: Bool = true) -> (mean: [Double], variance: [Double]) {
        let cols = c * s
        var mean = [Double](repeating: 0, count: c), variance = mean
        var pilot = [Float](repeating: 0, count: cols)
        pilot.withUnsafeMutableBufferPointer { p in
            for ch in 0..<c { for j in 0..<s { p[ch * s + j] = base[ch * s] } }
        }
        var s1 = [Double](repeating: 0, count: cols), s2 = s1
        pilot.withUnsafeBufferPointer { pb in s1.withUnsafeMutableBufferPointer { s1b in s2.withUnsafeMutableBufferPointer { s2b in
            ChannelKernels.shiftedSums(x: base, rows: n, cols: cols, pilot: pb.baseAddress!, s1: s1b.baseAddress!,
                                       s2: s2b.baseAddress!, parallel: parallel)
        }}}
        let count = Double(n * s)
        // Plain pointer loops (array subscripts would re-check uniqueness per element), compact
        // per channel (``ChannelColumns``).
        var totals = [Double](repeating: 0, count: 2 * c)
        mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in totals.withUnsafeMutableBufferPointer { tb in
        s1.withUnsafeBufferPointer { s1 in s2.withUnsafeBufferPointer { s2 in
            let t1 = tb.baseAddress!, t2 = t1 + c
            ChannelColumns.totals(s1.baseAddress!, channels: c, spatial: s, into: t1)
            ChannelColumns.totals(s2.baseAddress!, channels: c, spatial: s, into: t2)
            for ch in 0..<c {
                let shift = t1[ch] / count
                mb[ch] = Double(base[ch * s]) + shift
                vb[ch] = max(t2[ch] - t1[ch] * shift, 0) / count
            }
        }}}}}
        return (mean, variance)
    }
}
