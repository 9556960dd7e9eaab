import NormCore

/// Ghost Batch Normalization (Hoffer, Hubara & Soudry, 2017, "Train longer, generalize
/// better", Algorithm 1): BatchNorm whose train-mode statistics are taken over *virtual*
/// sub-batches of `virtual_batch_size` consecutive samples.
///
/// Train mode splits the batch `(N, C, ...)` into `N / virtual_batch_size` chunks of
/// consecutive samples (PyTorch's `x.chunk`/`x.split` along axis 0); each chunk is normalized
/// with its own per-channel mean and **biased** variance over (its samples, spatial), as
/// BatchNorm would normalize that chunk alone, and the gradient flows through each chunk's
/// statistics only. The running statistics are updated **once per chunk, in order**, exactly
/// as BatchNorm called on each chunk in turn would update them (the paper's and the common
/// PyTorch implementations' loop over chunks): PyTorch momentum, unbiased `running_var`,
/// `num_batches_tracked` counting chunks. Eval mode is BatchNorm eval (running statistics,
/// any batch size); with `track_running_stats=false` eval normalizes with the statistics of
/// each virtual batch, like train. A batch that uses batch statistics and is not a multiple
/// of `virtual_batch_size` is an error naming both numbers. With `virtual_batch_size = N`
/// the layer is exactly BatchNorm.
///
/// `virtual_batch_size` defaults to 32 (an assumption: the paper uses |B_S| = 128 on
/// ImageNet and 32-sample ghost batches in its CIFAR experiments; timm's `SplitBatchNorm2d`
/// takes a number of splits instead). ``lastBatchMoments`` reports the moments of the whole
/// last batch per channel (the chunks pooled exactly, `count = N·spatial`), which is what
/// PreciseBN pools into population statistics.
public final class GhostBatchNorm: NormalizationPlugin, RunningStatisticsProviding, BatchStatisticsReporting, AffineFolding {
    public static let descriptor = NormDescriptor(
        name: "ghost_batch_norm", aliases: ["ghost_bn", "gbn"],
        summary: "Ghost Batch Normalization: BN statistics per virtual batch of virtual_batch_size consecutive samples",
        reference: "Hoffer, Hubara & Soudry 2017, arXiv:1705.08741, Algorithm 1; PyTorch BatchNorm conventions per chunk",
        options: [OptionSpec("virtual_batch_size", .integer(1...Int.max), default: .integer(32),
                             "samples per virtual batch (consecutive); must divide the batch size when batch statistics are used",
                             samples: [.integer(1), .integer(2)]),
                  CommonOptions.eps(), CommonOptions.affine(default: true)] + CommonOptions.runningStatistics(track: true),
        ranks: 2...5,
        notes: ["train: per virtual batch of virtual_batch_size consecutive samples, per channel over (its samples, spatial); biased variance",
                "running statistics updated once per virtual batch, in order (BN called on each chunk): PyTorch momentum, "
                    + "running_var unbiased over the chunk, num_batches_tracked counts chunks",
                "eval = BN eval with the running statistics (any batch size); track_running_stats=false: per-virtual-batch statistics",
                "the batch must be a multiple of virtual_batch_size whenever batch statistics are used; virtual_batch_size = N is BN",
                "affine weight/bias of shape (C,); lastBatchMoments = the whole batch's per-channel moments (chunks pooled)"],
        constraints: [.dividesBatch(option: "virtual_batch_size")] + CommonOptions.runningStatisticsConstraints,
        reduction: .virtualBatchAndSpatial(option: "virtual_batch_size"))

    let channels: Int
    /// Samples per virtual batch.
    public let virtualBatchSize: Int
    let eps: Double
    let affine: ChannelAffine?
    /// The running statistics, when tracked.
    public let runningStatistics: RunningStatistics?
    /// The last forward's input and the state of each chunk it normalized (one state when it
    /// normalized the whole input at once).
    private var cache: (x: Tensor, states: [PlaneForwardState])?
    /// Per virtual batch, the per-channel mean and 1/σ, when the last forward took the
    /// channel-row path over the whole tensors (``forwardChunkRows(_:count:mode:)``).
    private var chunkRows: [ChunkStatistics]?
    private var pooled: BatchMoments?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()
    private var chunkScratch = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        virtualBatchSize = options.integer("virtual_batch_size")
        eps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: [channels]) : nil
        runningStatistics = options.bool("track_running_stats") ? try RunningStatistics(channels: channels, options: options) : nil
        if runningStatistics == nil, options.isSet("momentum") || options.isSet("keras_decay") {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "momentum/keras_decay set but track_running_stats=false keeps no running statistics")
        }
    }

    public var parameters: [Parameter] { affine?.parameters ?? [] }
    public var buffers: [Buffer] { runningStatistics?.buffers ?? [] }
    public var tracksRunningStatistics: Bool { runningStatistics != nil }

    public var evalStatistics: EvalStatistics? {
        runningStatistics.map { EvalStatistics(mean: $0.mean, variance: $0.variance, storesUnbiasedVariance: $0.estimator == .unbiased, eps: eps) }
    }
    public var lastBatchMoments: BatchMoments? { pooled }
    public func foldedIntoAffine() -> Result<any Normalization, FoldingRefusal> { FrozenBatchNorm.folding(self) }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        if mode == .eval, let running = runningStatistics {
            let (y, state) = normalizeWithRunningStatistics(x, running)
            cache = (x, [state])
            chunkRows = nil
            return y
        }
        let count = try virtualBatchCount(x)
        if count == 1 {
            let (y, state, moments) = normalizeChunk(x, output: &output)
            finish(x, states: [state], moments: [moments], mode: mode)
            return y
        }
        if PlaneLayout(x, .byChannel).usesChannelRows { return forwardChunkRows(x, count: count, mode: mode) }
        let perChunk = x.count / count, chunkShape = [virtualBatchSize] + x.shape.dropFirst()
        var states: [PlaneForwardState] = [], moments: [(mean: [Double], variance: [Double])] = []
        let y = output.tensor(shape: x.shape)
        for k in 0..<count {
            let xk = Self.slice(x, offset: k * perChunk, shape: chunkShape)
            let (yk, state, m) = normalizeChunk(xk, output: &chunkScratch)
            Self.copy(yk, into: y, offset: k * perChunk)
            states.append(state); moments.append(m)
        }
        finish(x, states: states, moments: moments, mode: mode)
        return y
    }

    /// The number of virtual batches in `x`, after checking it splits into them and that each
    /// statistic covers at least two values.
    private func virtualBatchCount(_ x: Tensor) throws -> Int {
        let n = x.shape[0]
        guard n % virtualBatchSize == 0 else {
            throw NormError.invalidInput(method: Self.descriptor.name,
                reason: "a batch of \(n) samples is not divisible by virtual_batch_size=\(virtualBatchSize)")
        }
        guard virtualBatchSize * x.spatialCount > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each virtual batch holds 1 value per channel (input \(x.shape.shapeText), virtual_batch_size=\(virtualBatchSize))")
        }
        return n / virtualBatchSize
    }

    /// BatchNorm's train-mode normalization of one chunk (BatchStatisticsCore's arithmetic).
    private func normalizeChunk(_ x: Tensor, output: inout ReusableStorage)
        -> (Tensor, PlaneForwardState, (mean: [Double], variance: [Double])) {
        let layout = PlaneLayout(x, .byChannel)
        if PlaneNormalizer.fusesChannels(layout) {
            // BatchNorm's fused per-channel pass (statistics and output per channel in one visit).
            let (y, mean, variance, invstd) = PlaneNormalizer.forwardByChannel(x, layout: layout, eps: eps, weight: affine?.weight.value,
                                                                               bias: affine?.bias.value, renorm: nil, output: &output)
            let state = PlaneForwardState(x: x, layout: layout, groupMean: mean, groupInvstd: invstd, batchStatistics: true, r: nil, d: nil)
            return (y, state, (mean, variance))
        }
        let (mean, variance) = layout.batchMoments(x)
        var invstd = [Double](repeating: 0, count: channels)
        invstd.withUnsafeMutableBufferPointer { ChannelMath.inverseStandardDeviation(variance, eps: eps, count: channels, into: $0.baseAddress!) }
        let (y, state) = PlaneNormalizer.forward(x, layout: layout, groupMean: mean, groupInvstd: invstd,
                                                 weight: affine?.weight.value, bias: affine?.bias.value,
                                                 batchStatistics: true, output: &output)
        return (y, state, (mean, variance))
    }

    /// Caches the chunk states, pools the chunk moments, and (train mode) updates the running
    /// statistics once per chunk in order.
    private func finish(_ x: Tensor, states: [PlaneForwardState], moments: [(mean: [Double], variance: [Double])], mode: Mode) {
        cache = (x, states)
        chunkRows = nil
        let perChunk = virtualBatchSize * x.spatialCount
        if mode == .train, let running = runningStatistics {
            for m in moments { running.update(batchMean: m.mean, biasedVariance: m.variance, count: perChunk) }
        }
        // Equal counts: pooled mean = mean of the means; variance = mean within + spread of the means.
        let k = Double(moments.count)
        var mean = [Double](repeating: 0, count: channels), variance = mean
        for c in 0..<channels {
            let mu = moments.reduce(0.0) { $0 + $1.mean[c] } / k
            mean[c] = mu
            variance[c] = moments.reduce(0.0) { $0 + $1.variance[c] + ($1.mean[c] - mu) * ($1.mean[c] - mu) } / k
        }
        pooled = BatchMoments(mean: mean, variance: variance, count: x.shape[0] * x.spatialCount, perInstance: false)
    }

    /// BatchNorm eval: the running statistics as constants.
    private func normalizeWithRunningStatistics(_ x: Tensor, _ running: RunningStatistics) -> (Tensor, PlaneForwardState) {
        let mean = running.mean.value.scalars.map(Double.init)
        var invstd = [Double](repeating: 0, count: channels)
        running.variance.value.withUnsafeBufferPointer { rv in invstd.withUnsafeMutableBufferPointer { iv in
            ChannelMath.inverseStandardDeviation(rv.baseAddress!, eps: eps, count: channels, into: iv.baseAddress!)
        }}
        return PlaneNormalizer.forward(x, layout: PlaneLayout(x, .byChannel), groupMean: mean, groupInvstd: invstd,
                                       weight: affine?.weight.value, bias: affine?.bias.value,
                                       batchStatistics: false, output: &output)
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let states = cache!.states
        if let chunkRows { return backwardChunkRows(gradOutput, x: x, chunks: chunkRows) }
        if states.count == 1 {
            return try PlaneNormalizer.backward(gradOutput, state: states[0], affine: affine, descriptor: Self.descriptor, output: &gradInput)
        }
        let wantW = affine?.weight.requiresGrad ?? false, wantB = affine?.bias.requiresGrad ?? false
        let perChunk = x.count / states.count, chunkShape = [virtualBatchSize] + x.shape.dropFirst()
        var gw = [Double](repeating: 0, count: channels), gb = gw
        let gx = gradInput.tensor(shape: x.shape)
        for (k, state) in states.enumerated() {
            let gk = Self.slice(gradOutput, offset: k * perChunk, shape: chunkShape)
            let (gxk, gwk, gbk) = PlaneNormalizer.backward(gk, state: state, weight: affine?.weight.value,
                                                           wantWeight: wantW, wantBias: wantB, output: &chunkScratch)
            Self.copy(gxk, into: gx, offset: k * perChunk)
            if let gwk { for c in 0..<channels { gw[c] += Double(gwk[flat: c]) } }
            if let gbk { for c in 0..<channels { gb[c] += Double(gbk[flat: c]) } }
        }
        affine?.weight.gradient = wantW ? Tensor(shape: [channels], doubles: gw) : nil
        affine?.bias.gradient = wantB ? Tensor(shape: [channels], doubles: gb) : nil
        return gx
    }

    /// Several virtual batches of an `(N, C)` (or short-spatial) input: each chunk is a block of
    /// `virtual_batch_size` rows of the `(N, C·S)` matrix, normalized with BatchNorm's
    /// channel-row kernels (``ChannelKernels``: column sums shifted by the chunk's first row,
    /// `y = (x − head)·scale + shift` per column) straight from and into the whole tensors.
    /// The chunks go to the threads whole (each on one thread, in a fixed order: the same
    /// bits for any thread count).
    private func forwardChunkRows(_ x: Tensor, count: Int, mode: Mode) -> Tensor {
        let block = virtualBatchSize * channels * x.spatialCount, s = x.spatialCount
        let affine = AffineTerms(affine, channels: channels)
        var results = [ChunkStatistics?](repeating: nil, count: count)
        let y = output.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in results.withUnsafeMutableBufferPointer { r in
                Parallel.forEach(count, work: x.count) { chunks in
                    for k in chunks {
                        r[k] = normalizeChunkRows(xb.baseAddress! + k * block, into: out.baseAddress! + k * block,
                                                  spatial: s, affine: affine)
                    }
                }
            }}
        }
        let chunks = results.map { $0! }
        finish(x, states: [], moments: chunks.map { ($0.mean, $0.variance) }, mode: mode)
        chunkRows = chunks
        return y
    }

    /// One virtual batch's per-channel moments and 1/σ.
    private struct ChunkStatistics { var mean: [Double], variance: [Double], invstd: [Double] }

    /// The affine weight and bias as float64 (1 and 0 without affine parameters: the same
    /// arithmetic either way).
    private struct AffineTerms {
        var gain: [Double], offset: [Double]
        init(_ affine: ChannelAffine?, channels: Int) {
            gain = affine?.weight.value.scalars.map(Double.init) ?? [Double](repeating: 1, count: channels)
            offset = affine?.bias.value.scalars.map(Double.init) ?? [Double](repeating: 0, count: channels)
        }
    }

    /// One virtual batch of ``forwardChunkRows(_:count:mode:)`` (`virtual_batch_size` rows of
    /// `C·S` columns from `xk`), on the calling thread; its output goes to `yk`.
    private func normalizeChunkRows(_ xk: UnsafePointer<Float>, into yk: UnsafeMutablePointer<Float>,
                                    spatial s: Int, affine: AffineTerms) -> ChunkStatistics {
        let cols = channels * s, rows = virtualBatchSize
        let (mean, variance) = PlaneLayout.channelRowMoments(xk, rows: rows, channels: channels, spatial: s, parallel: false)
        var invstd = [Double](repeating: 0, count: channels)
        variance.withUnsafeBufferPointer { vb in invstd.withUnsafeMutableBufferPointer { ib in
            ChannelMath.inverseStandardDeviation(vb.baseAddress!, eps: eps, count: channels, into: ib.baseAddress!)
        }}
        // head, scale, shift per column; plain pointer loops (array subscripts would re-check
        // uniqueness per element).
        var columns = [Float](repeating: 0, count: 3 * cols)
        columns.withUnsafeMutableBufferPointer { cb in
        mean.withUnsafeBufferPointer { m in invstd.withUnsafeBufferPointer { iv in
        affine.gain.withUnsafeBufferPointer { w in affine.offset.withUnsafeBufferPointer { b in
            let head = cb.baseAddress!, scale = head + cols, shift = scale + cols
            for ch in 0..<channels {
                let h = Float(m[ch]), sc = iv[ch] * w[ch]
                head[ch] = h; scale[ch] = Float(sc); shift[ch] = Float(b[ch] - (m[ch] - Double(h)) * sc)
            }
            for p in [head, scale, shift] { ChannelColumns.spread(p, channels: channels, spatial: s) }
            ChannelKernels.affine(x: xk, y: yk, rows: rows, cols: cols, mu: head, scale: scale, shift: shift, parallel: false)
        }}}}}
        return ChunkStatistics(mean: mean, variance: variance, invstd: invstd)
    }

    /// The backward of ``forwardChunkRows(_:count:mode:)``, chunks on the threads whole as
    /// there; the affine gradients are summed over the chunks in order afterwards.
    private func backwardChunkRows(_ gradOutput: Tensor, x: Tensor, chunks: [ChunkStatistics]) -> Tensor {
        let block = virtualBatchSize * channels * x.spatialCount, s = x.spatialCount
        let wantW = affine?.weight.requiresGrad ?? false, wantB = affine?.bias.requiresGrad ?? false
        let gain = AffineTerms(affine, channels: channels).gain
        var sums = [(g: [Double], gxhat: [Double])?](repeating: nil, count: chunks.count)
        let gx = gradInput.tensor(shape: x.shape) { out in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gyb in sums.withUnsafeMutableBufferPointer { r in
                Parallel.forEach(chunks.count, work: 2 * x.count) { range in
                    for k in range {
                        r[k] = backwardChunkRow(chunks[k], x: xb.baseAddress! + k * block, gradOutput: gyb.baseAddress! + k * block,
                                                into: out.baseAddress! + k * block, spatial: s, gain: gain)
                    }
                }
            }}}
        }
        var gw = [Double](repeating: 0, count: channels), gb = gw
        for chunk in sums.map({ $0! }) {
            for ch in 0..<channels { gb[ch] += chunk.g[ch]; gw[ch] += chunk.gxhat[ch] }
        }
        affine?.weight.gradient = wantW ? Tensor(shape: [channels], doubles: gw) : nil
        affine?.bias.gradient = wantB ? Tensor(shape: [channels], doubles: gb) : nil
        return gx
    }

    /// One virtual batch of ``backwardChunkRows(_:x:chunks:)``, on the calling thread: the column
    /// sums `Σ g`, `Σ g·(x − head)` (``ChannelKernels/gradientSums(x:g:rows:cols:mu:sumG:sumGX:parallel:)``),
    /// then `dL/dx = a·g + k·(x − head) + c` per column (BatchNorm's gradient through the chunk's
    /// statistics) into `ok`. Returns the chunk's per-channel `Σ g` and `Σ g·x̂`.
    private func backwardChunkRow(_ chunk: ChunkStatistics, x xk: UnsafePointer<Float>,
                                  gradOutput gk: UnsafePointer<Float>, into ok: UnsafeMutablePointer<Float>,
                                  spatial s: Int, gain: [Double]) -> (g: [Double], gxhat: [Double]) {
        let cols = channels * s, rows = virtualBatchSize, m = Double(rows * s)
        var columns = [Float](repeating: 0, count: 4 * cols), sums = [Double](repeating: 0, count: 2 * cols + channels)
        var g = [Double](repeating: 0, count: channels), gxhat = g
        columns.withUnsafeMutableBufferPointer { cb in sums.withUnsafeMutableBufferPointer { sb in
        chunk.mean.withUnsafeBufferPointer { mean in chunk.invstd.withUnsafeBufferPointer { inv in gain.withUnsafeBufferPointer { w in
        g.withUnsafeMutableBufferPointer { g in gxhat.withUnsafeMutableBufferPointer { gxhat in
            let head = cb.baseAddress!, a = head + cols, slope = a + cols, shift = slope + cols
            let sumG = sb.baseAddress!, sumGX = sumG + cols, totalGX = sumGX + cols
            for ch in 0..<channels { head[ch] = Float(mean[ch]) }
            ChannelColumns.spread(head, channels: channels, spatial: s)
            ChannelKernels.gradientSums(x: xk, g: gk, rows: rows, cols: cols, mu: head, sumG: sumG, sumGX: sumGX, parallel: false)
            ChannelColumns.totals(sumG, channels: channels, spatial: s, into: g.baseAddress!)
            ChannelColumns.totals(sumGX, channels: channels, spatial: s, into: totalGX)
            for ch in 0..<channels {
                let tg = g[ch], mu = mean[ch], iv = inv[ch], tail = mu - Double(Float(mu))
                let sgx = totalGX[ch] - tail * tg
                gxhat[ch] = iv * sgx
                let kk = -iv * iv * iv * w[ch] * sgx / m, cc = -iv * w[ch] * tg / m - kk * tail
                a[ch] = Float(iv * w[ch]); slope[ch] = Float(kk); shift[ch] = Float(cc)
            }
            for p in [a, slope, shift] { ChannelColumns.spread(p, channels: channels, spatial: s) }
            ChannelKernels.linearCombination(x: xk, g: gk, out: ok, rows: rows, cols: cols, mu: head, a: a, b: slope, cc: shift,
                                             parallel: false)
        }}}}}}}
        return (g, gxhat)
    }

    /// A copy of `shape.product` consecutive elements of `t` from `offset`.
    private static func slice(_ t: Tensor, offset: Int, shape: [Int]) -> Tensor {
        Tensor(shape: shape) { out in
            t.withUnsafeBufferPointer { src in out.baseAddress!.update(from: src.baseAddress! + offset, count: out.count) }
        }
    }

    /// Writes `chunk` into `whole` (a block just handed out by a ``ReusableStorage``) at `offset`.
    private static func copy(_ chunk: Tensor, into whole: Tensor, offset: Int) {
        chunk.withUnsafeBufferPointer { src in whole.withUnsafeOutputBuffer { dst in
            (dst.baseAddress! + offset).update(from: src.baseAddress!, count: src.count)
        }}
    }
}
