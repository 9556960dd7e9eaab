import NormCore

/// EvoNorm-S0 (Liu, Brock, Simonyan & Le, 2020), a batch-independent normalization-activation
/// layer, with timm's `EvoNorm2dS0` conventions.
///
/// Per sample, the `C` channels are split into `groups` groups of consecutive channels;
/// `σ = √(var + eps)` is the group's standard deviation over (its channels, spatial) with the
/// **biased** variance (timm's `group_std`), and
/// `y = x · sigmoid(v · x) / σ · weight + bias` with per-channel `v` (initialized to 1),
/// `weight` (1) and `bias` (0). There is no mean subtraction in the numerator and no running
/// statistics: train and eval are identical. The output already contains the nonlinearity,
/// so a model places no activation after it (``Normalization/includesActivation``).
/// Defaults follow timm: `groups = 32`, `eps = 1e-5` (`groups` must divide `C`).
public final class EvoNormS0: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "evonorm_s0", aliases: ["evonorms0", "evonorm-s0"],
        summary: "EvoNorm-S0: x*sigmoid(v*x) / group std, per-channel affine; batch-independent, includes its activation",
        reference: "Liu et al. 2020, arXiv:2004.02967 (EvoNorm-S0); timm EvoNorm2dS0 conventions",
        options: [OptionSpec("groups", .integer(1...Int.max), default: .integer(32), "number of channel groups (timm default 32); must divide C",
                             samples: [.integer(1)]),
                  CommonOptions.eps()],
        ranks: 2...5,
        notes: ["per (n, group): sigma = sqrt(var + eps), biased variance over (C/groups channels, spatial)",
                "y = x * sigmoid(v * x) / sigma * weight + bias; v, weight, bias of shape (C,), initialized 1, 1, 0",
                "no running statistics: train and eval are identical; the output includes the activation"],
        constraints: [.dividesChannels(option: "groups")],
        reduction: .channelGroupsAndSpatial(groupsOption: "groups"))

    let channels: Int
    /// Number of channel groups.
    public let groups: Int
    let eps: Double
    public let weight: Parameter
    public let bias: Parameter
    /// The sigmoid's per-channel slope `v`.
    public let v: Parameter
    /// What backward needs: the input and each (n, group)'s mean and 1/σ.
    private var cache: (x: Tensor, mean: [Double], invSigma: [Double])?
    /// Output blocks reused across calls once the caller dropped the previous result.
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        channels = shape.channels
        groups = options.integer("groups")
        guard channels > 0, channels % groups == 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "C=\(channels) channels are not divisible by groups=\(groups)")
        }
        eps = options.real("eps")
        weight = Parameter(name: "weight", value: .ones([channels]))
        bias = Parameter(name: "bias", value: .zeros([channels]))
        v = Parameter(name: "v", value: .ones([channels]))
    }

    public var parameters: [Parameter] { [weight, bias, v] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }
    public var includesActivation: Bool { true }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let layout = GroupLayout(x, channels: channels, groups: groups)
        guard layout.groupSize > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each group std would be taken over one value (input \(x.shape.shapeText), groups=\(groups))")
        }
        let runs = layout.count, length = layout.groupSize, s = layout.spatial, perGroup = layout.channelsPerGroup
        var mean = [Double](repeating: 0, count: runs), invSigma = mean
        let eps = eps, c = channels
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in weight.value.withUnsafeBufferPointer { wb in bias.value.withUnsafeBufferPointer { bb in
            v.value.withUnsafeBufferPointer { vb in mean.withUnsafeMutableBufferPointer { mb in invSigma.withUnsafeMutableBufferPointer { ib in
                let xp = xb.baseAddress!, op = out.baseAddress!, wp = wb.baseAddress!, bp = bb.baseAddress!, vp = vb.baseAddress!
                let mp = mb.baseAddress!, ip = ib.baseAddress!
                // The sigmoid costs about as much as four copies: weigh the work accordingly.
                PlaneKernels.forEachRunBlock(x: xp, runs: runs, length: length, work: 4 * runs * length) { r0, r1, means, m2s in
                    for r in r0..<r1 {
                        let base = r * length, first = (r * perGroup) % c
                        let m = means[r - r0], m2 = m2s[r - r0]
                        let inv = 1 / (m2 / Double(length) + eps).squareRoot()
                        mp[r] = m; ip[r] = inv
                        if s == 1 {
                            EvoNormS0Kernels.forwardColumns(xp + base, op + base, count: perGroup, inv: Float(inv),
                                                            v: vp + first, w: wp + first, b: bp + first)
                        } else {
                            for j in 0..<perGroup {
                                let ch = first + j, off = base + j * s
                                EvoNormS0Kernels.forwardPlane(xp + off, op + off, length: s, v: vp[ch],
                                                              scale: Float(inv * Double(wp[ch])), shift: bp[ch])
                            }
                        }
                    }
                }
            }}}}}}
        }
        cache = (x, mean, invSigma)
        return y
    }

    /// With `u = x·σ(v·x)`, `y = u·inv·w + b` (`inv = 1/σ_r` of the run):
    /// `dL/dw_c = Σ g·u·inv`, `dL/db_c = Σ g`, `dL/dv_c = Σ g·w·inv·x²·σ(1−σ)`, and
    /// `dL/dx = g·w·inv·(σ + v·x·σ(1−σ)) + dσ_r·(x − μ_r)·inv/M` with
    /// `dσ_r = −inv²·Σ_run g·w·u` (σ_r's gradient reaches x through `(x − μ)/(M σ)`).
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let (mean, invSigma) = (cache!.mean, cache!.invSigma)
        let layout = GroupLayout(x, channels: channels, groups: groups)
        let n = x.shape[0], c = channels, runs = layout.count, length = layout.groupSize
        let s = layout.spatial, perGroup = layout.channelsPerGroup
        // Per plane (n, c): Σ g·u, Σ g, Σ g·x²·σ(1−σ) (s > 1); when s = 1, the per-channel sums
        // of each block of rows (dL/dw, dL/db, dL/dv contributions), added in block order below.
        let rowBlocks = (n + EvoNormS0Kernels.rowBlock - 1) / EvoNormS0Kernels.rowBlock
        var sums = [Double](repeating: 0, count: s == 1 ? 3 * c : 3 * n * c)
        let gx = gradInput.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in weight.value.withUnsafeBufferPointer { wb in
            v.value.withUnsafeBufferPointer { vb in sums.withUnsafeMutableBufferPointer { sb in
                let xp = xb.baseAddress!, gp = gb.baseAddress!, op = out.baseAddress!, wp = wb.baseAddress!, vp = vb.baseAddress!
                let sp = sb.baseAddress!
                if s == 1 {
                    // (N, C): fixed blocks of rows (the same sums for any thread count), rows in order;
                    // the blocks' sums (reused scratch) added in block order.
                    ScratchBuffers.withBuffer(of: Double.self, count: 3 * c * rowBlocks) { blockSums in
                        Parallel.forEach(rowBlocks, work: 8 * runs * length) { range in
                            for k in range {
                                let rows = (k * EvoNormS0Kernels.rowBlock)..<min(n, (k + 1) * EvoNormS0Kernels.rowBlock)
                                EvoNormS0Kernels.backwardRows(x: xp, g: gp, gx: op, rows: rows, channels: c, groups: groups,
                                                              mean: mean, invSigma: invSigma, v: vp, w: wp, sums: blockSums + 3 * c * k)
                            }
                        }
                        for k in 0..<rowBlocks { for j in 0..<(3 * c) { sp[j] += blockSums[3 * c * k + j] } }
                    }
                    return
                }
                Parallel.forEach(runs, work: 8 * runs * length) { range in
                    for r in range {
                        let base = r * length, first = (r * perGroup) % c, inv = invSigma[r]
                        // Pass 1: σ into gx (reread by pass 2 from the cache), the plane sums.
                        var dSigma = 0.0
                        for j in 0..<perGroup {
                            let off = base + j * s, p = r * perGroup + j, ch = first + j
                            let (a, b, d) = EvoNormS0Kernels.planeSums(xp + off, gp + off, op + off, length: s, v: vp[ch])
                            sp[3 * p] = a; sp[3 * p + 1] = b; sp[3 * p + 2] = d
                            dSigma -= Double(wp[ch]) * a
                        }
                        dSigma *= inv * inv
                        let k = dSigma * inv / Double(length), mu = mean[r], head = Float(mu)
                        let shift = Float(-k * (mu - Double(head)))
                        for j in 0..<perGroup {
                            let off = base + j * s, ch = first + j
                            EvoNormS0Kernels.gradientPlane(xp + off, gp + off, op + off, length: s, v: vp[ch],
                                                           scale: Float(Double(wp[ch]) * inv), k: Float(k), head: head, shift: shift)
                        }
                    }
                }
            }}}}}
        }
        var gw = [Double](repeating: 0, count: c), gb = gw, gv = gw
        let w = weight.value.scalars
        if s == 1 {
            for ch in 0..<c { gw[ch] = sums[ch]; gb[ch] = sums[c + ch]; gv[ch] = sums[2 * c + ch] }
        } else {
            for p in 0..<(n * c) {
                let ch = p % c, inv = invSigma[p / perGroup]
                gw[ch] += sums[3 * p] * inv
                gb[ch] += sums[3 * p + 1]
                gv[ch] += sums[3 * p + 2] * Double(w[ch]) * inv
            }
        }
        for (p, g) in [(weight, gw), (bias, gb), (v, gv)] {
            p.gradient = p.requiresGrad ? Tensor(shape: [channels], doubles: g) : nil
        }
        return gx
    }
}

/// EvoNorm-S0's float32 passes, eight lanes at a time; a tail shorter than eight is computed
/// in a zero-padded vector (the same arithmetic, and zeros add nothing to the sums).
private enum EvoNormS0Kernels {
    typealias V = SigmoidLanes.Lanes
    typealias IntLanes = SIMD8<Int32>
    /// Lane indices (the masks of a plane's tail).
    static let lanes = IntLanes(0, 1, 2, 3, 4, 5, 6, 7)

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ count: Int) -> V {
        if count == 8 { return load(p) }
        var v = V()
        for i in 0..<count { v[i] = p[i] }
        return v
    }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if count == 8 { store(v, p); return }
        for i in 0..<count { p[i] = v[i] }
    }

    /// `x·σ(v·x) = x / (1 + e^(−v·x))` with `nv = −v` (exact): one division instead of the
    /// sigmoid's reciprocal and a product, and no negation of the argument.
    @inline(__always) static func gated(_ x: V, _ nv: V) -> V { x / (SigmoidLanes.exp(nv * x) + V(repeating: 1)) }

    /// `y = x·σ(v·x)·scale + shift` over one plane.
    static func forwardPlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, length: Int, v: Float, scale: Float, shift: Float) {
        let nv = V(repeating: -v), a = V(repeating: scale), b = V(repeating: shift)
        var i = 0
        while i + 8 <= length {
            store(b.addingProduct(gated(load(x + i), nv), a), y + i)
            i += 8
        }
        if i < length {
            // The tail as the plane's last whole vector when there is one (the lanes it shares
            // with the previous vector get the same values again), else zero-padded.
            let j = length >= 8 ? length - 8 : i, k = length - j
            store(b.addingProduct(gated(load(x + j, k), nv), a), y + j, k)
        }
    }

    /// `y_j = x_j·σ(v_j·x_j)·w_j·inv + b_j` over `count` consecutive channels of one sample.
    static func forwardColumns(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, inv: Float,
                               v: UnsafePointer<Float>, w: UnsafePointer<Float>, b: UnsafePointer<Float>) {
        let iv = V(repeating: inv)
        var i = 0
        while i + 8 <= count {
            store(gated(load(x + i), -load(v + i)) * (load(w + i) * iv) + load(b + i), y + i)
            i += 8
        }
        if i < count {
            // The last whole vector when there is one (as in ``forwardPlane``), else zero-padded.
            let j = count >= 8 ? count - 8 : i, k = count - j
            store(gated(load(x + j, k), -load(v + j, k)) * (load(w + j, k) * iv) + load(b + j, k), y + j, k)
        }
    }

    /// Writes `σ(v·x)` (``SigmoidLanes/sigmoid(_:)``'s arithmetic, its argument's negation folded
    /// into `−v`: the same values) into `sig` and returns `(Σ g·u, Σ g, Σ g·x²·σ(1−σ))` with `u = x·σ`;
    /// float32 lanes over blocks of 128 values, added into float64.
    static func planeSums(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ sig: UnsafeMutablePointer<Float>, length: Int,
                          v: Float) -> (Double, Double, Double) {
        let nv = V(repeating: -v), one = V(repeating: 1)
        var sa = 0.0, sb = 0.0, sd = 0.0
        var i = 0
        while i < length {
            let end = min(i + 128, length)
            var a = V(), b = V(), d = V()
            while i + 8 <= end {
                let xi = load(x + i), gi = load(g + i), si = one / (SigmoidLanes.exp(nv * xi) + one)
                store(si, sig + i)
                let gx = gi * xi
                a += gx * si; b += gi; d += gx * xi * si * (one - si)
                i += 8
            }
            if i < end {
                let k = end - i
                var xi: V, gi: V, si: V
                if length >= 8 {
                    // The plane's last whole vector; the lanes before the tail (already summed)
                    // are zeroed after the sigmoid is stored (the same values again there).
                    let j = end - 8, keep = lanes .>= IntLanes(repeating: Int32(8 - k))
                    xi = load(x + j); gi = load(g + j); si = one / (SigmoidLanes.exp(nv * xi) + one)
                    store(si, sig + j)
                    xi = V().replacing(with: xi, where: keep); gi = V().replacing(with: gi, where: keep)
                    si = V().replacing(with: si, where: keep)
                } else {
                    xi = load(x + i, k); gi = load(g + i, k); si = one / (SigmoidLanes.exp(nv * xi) + one)
                    store(si, sig + i, k)
                }
                let gx = gi * xi
                a += gx * si; b += gi; d += gx * xi * si * (one - si)
                i = end
            }
            sa += Double(Reductions.hsum(a)); sb += Double(Reductions.hsum(b)); sd += Double(Reductions.hsum(d))
        }
        return (sa, sb, sd)
    }

    /// `gx = g·scale·(σ + v·x·σ(1−σ)) + k·(x − head) + shift`, with `σ` read from `gx`.
    static func gradientPlane(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, length: Int,
                              v: Float, scale: Float, k: Float, head: Float, shift: Float) {
        let vv = V(repeating: v), a = V(repeating: scale), kk = V(repeating: k), h = V(repeating: head), b = V(repeating: shift)
        let one = V(repeating: 1)
        // A tail is taken as the plane's last whole vector, computed before the loop overwrites
        // the σ it reads and stored after it (the same values again on the shared lanes).
        let tail = length % 8, j = length - 8
        var last = V()
        if tail != 0 && length >= 8 {
            let xi = load(x + j), si = load(gx + j)
            last = load(g + j) * a * (si + vv * xi * si * (one - si)) + kk * (xi - h) + b
        }
        var i = 0
        while i + 8 <= length {
            let xi = load(x + i), si = load(gx + i)
            store(load(g + i) * a * (si + vv * xi * si * (one - si)) + kk * (xi - h) + b, gx + i)
            i += 8
        }
        if tail != 0 && length >= 8 {
            store(last, gx + j)
        } else if i < length {
            let c = length - i, xi = load(x + i, c), si = load(gx + i, c)
            store(load(g + i, c) * a * (si + vv * xi * si * (one - si)) + kk * (xi - h) + b, gx + i, c)
        }
    }

    /// Rows per block of the `(N, C)` backward.
    static let rowBlock = 16

    /// The backward of the samples `rows` of an `(N, C)` input, in order: per (sample, group)
    /// the σ of its values, its `dσ` and `dL/dx`; the parameter gradients' contributions are
    /// accumulated per channel over the block in float32 lanes and stored as float64 in
    /// `sums[0..<C]` (dL/dw), `sums[C..<2C]` (dL/db), `sums[2C..<3C]` (dL/dv).
    static func backwardRows(x: UnsafePointer<Float>, g: UnsafePointer<Float>, gx: UnsafeMutablePointer<Float>,
                             rows: Range<Int>, channels c: Int, groups: Int, mean: [Double], invSigma: [Double],
                             v: UnsafePointer<Float>, w: UnsafePointer<Float>, sums: UnsafeMutablePointer<Double>) {
        let count = c / groups, one = V(repeating: 1)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * c + count + 8) { buf in
            let acc = buf.baseAddress!, sig = acc + 3 * c
            acc.update(repeating: 0, count: 3 * c)
            for n in rows {
                for group in 0..<groups {
                    let r = n * groups + group, inv = invSigma[r], first = group * count, off = n * c + first
                    let iv = V(repeating: Float(inv))
                    var dw = V()
                    var i = 0
                    // Full vectors, then one zero-padded tail (kept apart so the full loop stays in registers).
                    while i + 8 <= count {
                        let xi = load(x + off + i), gi = load(g + off + i), wi = load(w + first + i)
                        let si = SigmoidLanes.sigmoid(load(v + first + i) * xi)
                        store(si, sig + i)
                        let gu = gi * xi * si
                        dw += wi * gu
                        let a = acc + first + i
                        store(load(a) + gu * iv, a)
                        store(load(a + c) + gi, a + c)
                        store(load(a + 2 * c) + gi * xi * xi * si * (one - si) * wi * iv, a + 2 * c)
                        i += 8
                    }
                    if i < count {
                        let k = count - i
                        let xi = load(x + off + i, k), gi = load(g + off + i, k), wi = load(w + first + i, k)
                        let si = SigmoidLanes.sigmoid(load(v + first + i, k) * xi)
                        store(si, sig + i, k)
                        let gu = gi * xi * si
                        dw += wi * gu
                        let a = acc + first + i
                        store(load(a, k) + gu * iv, a, k)
                        store(load(a + c, k) + gi, a + c, k)
                        store(load(a + 2 * c, k) + gi * xi * xi * si * (one - si) * wi * iv, a + 2 * c, k)
                    }
                    let dSigma = -inv * inv * Double(Reductions.hsum(dw))
                    let kk = dSigma * inv / Double(count), mu = mean[r], head = Float(mu)
                    let kv = V(repeating: Float(kk)), h = V(repeating: head), b = V(repeating: Float(-kk * (mu - Double(head))))
                    i = 0
                    while i + 8 <= count {
                        let xi = load(x + off + i), gi = load(g + off + i), si = load(sig + i)
                        let gv = gi * load(w + first + i) * iv * (si + load(v + first + i) * xi * si * (one - si)) + kv * (xi - h) + b
                        store(gv, gx + off + i)
                        i += 8
                    }
                    if i < count {
                        let k = count - i
                        let xi = load(x + off + i, k), gi = load(g + off + i, k), si = load(sig + i, k)
                        let gv = gi * load(w + first + i, k) * iv * (si + load(v + first + i, k) * xi * si * (one - si)) + kv * (xi - h) + b
                        store(gv, gx + off + i, k)
                    }
                }
            }
            for j in 0..<(3 * c) { sums[j] = Double(acc[j]) }
        }
    }
}

/// The contiguous runs of one (sample, channel group) in an `(N, C, spatial...)` tensor.
private struct GroupLayout {
    let spatial: Int
    let channelsPerGroup: Int
    let channels: Int
    /// Number of (sample, group) runs.
    let count: Int

    init(_ x: Tensor, channels: Int, groups: Int) {
        self.channels = channels
        spatial = x.spatialCount
        channelsPerGroup = channels / groups
        count = x.shape[0] * groups
    }

    var groupSize: Int { channelsPerGroup * spatial }
    func range(_ r: Int) -> Range<Int> { (r * groupSize)..<((r + 1) * groupSize) }
    func channel(of index: Int) -> Int { (index / spatial) % channels }
}
