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
    /// What backward needs: the input, per-plane 1/√(ν² + |eps|), scale and shift, τ and eps as used.
    private var cache: (x: Tensor, invr: [Double], scale: [Float], shift: [Float], tau: Tensor?, eps: Double)?
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
    /// With the TLU the output is already activated: a model adds no activation after it.
    public var includesActivation: Bool { tau != nil }

    /// The eps in use (the learned value when learnable).
    public var eps: Double { learnedEps.map { Double($0.value[flat: 0]) } ?? fixedEps }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let planes = x.shape[0] * channels, s = x.spatialCount
        let eps = self.eps, absEps = abs(eps)
        var invr = [Double](repeating: 0, count: planes)
        var scale = [Float](repeating: 0, count: planes), shift = scale
        // The mean square and the output fused per plane (the plane is re-read from cache).
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in
                withParameterPointers { w, b, t in
                    ThresholdKernels.forward(x: xb.baseAddress!, y: yb.baseAddress!, planes: planes, length: s, channels: channels,
                                             absEps: absEps, weight: w, bias: b, tau: t,
                                             invr: &invr, scale: &scale, shift: &shift)
                }
            }
        }
        cache = (x, invr, scale, shift, tau?.value, eps)
        return y
    }

    /// The weight, bias and tau values (nil when absent); `tau` replaces the current τ.
    private func withParameterPointers<R>(tau: Tensor?? = nil,
                                          _ body: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
        func with(_ t: Tensor?, _ f: (UnsafePointer<Float>?) -> R) -> R {
            guard let t else { return f(nil) }
            return t.withUnsafeBufferPointer { f($0.baseAddress) }
        }
        let t = tau ?? self.tau?.value
        return with(affine?.weight.value) { w in with(affine?.bias.value) { b in with(t) { t in body(w, b, t) } } }
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let c = cache!, planes = x.shape[0] * channels, s = x.spatialCount
        var passG = [Double](repeating: 0, count: planes), passGX = passG, sumG = passG
        // The per-plane sums and dL/dx fused per plane; the parameter gradients from the sums.
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gbuf in
                withParameterPointers(tau: c.tau) { w, _, t in
                    ThresholdKernels.backward(x: xb.baseAddress!, g: gbuf.baseAddress!, gx: ob.baseAddress!, planes: planes, length: s,
                                              channels: channels, invr: c.invr, scale: c.scale, shift: c.shift, tau: t, weight: w,
                                              passG: &passG, passGX: &passGX, sumG: &sumG)
                }
            }}
        }
        var gw = [Double](repeating: 0, count: channels), gb = gw, gt = gw
        var gEps = 0.0
        let signEps: Double = c.eps > 0 ? 1 : (c.eps < 0 ? -1 : 0)
        // Plain pointer loop: array accesses here would retain and check uniqueness per plane.
        withParameterPointers(tau: c.tau) { w, _, _ in
            c.invr.withUnsafeBufferPointer { invr in
                passG.withUnsafeBufferPointer { pg in passGX.withUnsafeBufferPointer { pgx in sumG.withUnsafeBufferPointer { sg in
                    gw.withUnsafeMutableBufferPointer { gw in gb.withUnsafeMutableBufferPointer { gb in gt.withUnsafeMutableBufferPointer { gt in
                        var ch = 0
                        for p in 0..<planes {
                            let inv = invr[p], wc = Double(w?[ch] ?? 1)
                            gw[ch] += inv * pgx[p]
                            gb[ch] += pg[p]
                            gt[ch] += sg[p] - pg[p]
                            gEps += -0.5 * signEps * inv * inv * inv * wc * pgx[p]
                            ch += 1
                            if ch == channels { ch = 0 }
                        }
                    }}}
                }}}
            }
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
