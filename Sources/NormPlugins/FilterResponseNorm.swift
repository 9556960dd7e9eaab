import NormCore

/// Filter Response Normalization with the Thresholded Linear Unit (Singh & Krishnan, 2019).
///
/// Per `(n, c)`: `ν² = mean(x²)` over the spatial axes (no mean subtraction),
/// `x̂ = x / √(ν² + |eps|)`, `y = max(weight·x̂ + bias, τ)` with the TLU (`tlu=true`, default)
/// or `weight·x̂ + bias` without it. `τ` is a learnable per-channel threshold (default 0);
/// `learnable_eps=true` makes eps a learnable scalar (the paper's remedy for 1×1 feature
/// maps). Needs at least one spatial axis; a 1×1 map is allowed (no centering happens, so a
/// single value is not degenerate). The TLU's gradient goes to the affine branch on ties.
public final class FilterResponseNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "filter_response_norm", aliases: ["frn", "filterresponsenorm"],
        summary: "Filter Response Normalization + TLU: per-sample, per-channel mean square, no centering",
        reference: "Singh & Krishnan 2019, arXiv:1911.09737",
        options: [OptionSpec("eps", .real(-Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude), default: .real(1e-6),
                             "added (as |eps|) to the mean square; the initial value when learnable_eps=true"),
                  OptionSpec("tlu", .bool, default: .bool(true), "apply the thresholded linear unit max(y, tau)"),
                  OptionSpec("learnable_eps", .bool, default: .bool(false), "make eps a learnable parameter"),
                  CommonOptions.affine(default: true)],
        ranks: 3...5,
        notes: ["per (n, c): nu2 = mean(x^2) over spatial axes; x_hat = x / sqrt(nu2 + |eps|)",
                "parameters: weight, bias (affine); tau (tlu=true), shape (C,); eps (learnable_eps=true), shape (1,)",
                "1x1 spatial maps are valid; the TLU gradient goes to the affine branch on ties"])

    let channels: Int
    let affine: ChannelAffine?
    /// The TLU threshold τ, when `tlu=true`.
    public let tau: Parameter?
    /// Learnable eps, when `learnable_eps=true`.
    public let learnedEps: Parameter?
    let fixedEps: Double
    private var cache: (x: Tensor, invr: [Double], scale: [Float], shift: [Float], floor: [Float], eps: Double)?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive, got \(shape.channels)")
        }
        channels = shape.channels
        fixedEps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: [channels]) : nil
        tau = options.bool("tlu") ? Parameter(name: "tau", value: .zeros([channels])) : nil
        learnedEps = options.bool("learnable_eps") ? Parameter(name: "eps", value: Tensor(shape: [1], scalars: [Float(fixedEps)])) : nil
    }

    public var parameters: [Parameter] { (affine?.parameters ?? []) + [tau, learnedEps].compactMap { $0 } }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }

    /// The eps in use (the learned value when learnable).
    public var eps: Double { learnedEps.map { Double($0.value[flat: 0]) } ?? fixedEps }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let planes = x.shape[0] * channels, s = x.spatialCount
        let eps = self.eps, absEps = abs(eps)
        var invr = [Double](repeating: 0, count: planes)
        x.withUnsafeBufferPointer { xb in
            invr.withUnsafeMutableBufferPointer { ib in
                Parallel.forEach(planes, work: planes * s) { range in
                    for p in range {
                        let nu2 = Reductions.sumOfSquares(xb.baseAddress! + p * s, length: s) / Double(s)
                        ib[p] = 1 / (nu2 + absEps).squareRoot()
                    }
                }
            }
        }
        let w = affine?.weight.value.scalars, b = affine?.bias.value.scalars, t = tau?.value.scalars
        var scale = [Float](repeating: 0, count: planes), shift = scale
        var floor = [Float](repeating: -.infinity, count: planes)
        for p in 0..<planes {
            let c = p % channels
            scale[p] = Float(invr[p] * Double(w?[c] ?? 1))
            shift[p] = b?[c] ?? 0
            if let t { floor[p] = t[c] }
        }
        let zeros = [Float](repeating: 0, count: planes)
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in
                PlaneKernels.affine(x: xb.baseAddress!, y: yb.baseAddress!, planes: planes, length: s,
                                    mu: zeros, scale: scale, shift: shift, floor: tau == nil ? nil : floor)
            }
        }
        cache = (x, invr, scale, shift, floor, eps)
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let c = cache!, planes = x.shape[0] * channels, s = x.spatialCount
        let (passG, passGX, sumG) = x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gb in
            ThresholdKernels.gradientSums(x: xb.baseAddress!, g: gb.baseAddress!, planes: planes, length: s,
                                          scale: c.scale, shift: c.shift, floor: c.floor)
        }}
        let w = affine?.weight.value.scalars
        var gw = [Double](repeating: 0, count: channels), gb = gw, gt = gw
        var gEps = 0.0
        var a = [Float](repeating: 0, count: planes), bCoef = a
        let signEps: Double = c.eps > 0 ? 1 : (c.eps < 0 ? -1 : 0)
        for p in 0..<planes {
            let ch = p % channels, inv = c.invr[p], wc = Double(w?[ch] ?? 1)
            gw[ch] += inv * passGX[p]
            gb[ch] += passG[p]
            gt[ch] += sumG[p] - passG[p]
            gEps += -0.5 * signEps * inv * inv * inv * wc * passGX[p]
            a[p] = Float(inv * wc)
            bCoef[p] = Float(-wc * inv * inv * inv * passGX[p] / Double(s))
        }
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gbuf in
                ThresholdKernels.maskedLinear(x: xb.baseAddress!, g: gbuf.baseAddress!, out: ob.baseAddress!, planes: planes, length: s,
                                              scale: c.scale, shift: c.shift, floor: c.floor, a: a, b: bCoef)
            }}
        }
        if let affine {
            affine.weight.gradient = affine.weight.requiresGrad ? Tensor(shape: [channels], doubles: gw) : nil
            affine.bias.gradient = affine.bias.requiresGrad ? Tensor(shape: [channels], doubles: gb) : nil
        }
        if let tau { tau.gradient = tau.requiresGrad ? Tensor(shape: [channels], doubles: gt) : nil }
        if let learnedEps { learnedEps.gradient = learnedEps.requiresGrad ? Tensor(shape: [1], doubles: [gEps]) : nil }
        return gx
    }
}
