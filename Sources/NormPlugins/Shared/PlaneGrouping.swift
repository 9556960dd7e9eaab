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

    /// Per-group mean and biased variance, computed in parallel over groups.
    func batchMoments(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
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
}
