import NormCore

/// Layer Normalization (Ba, Kiros & Hinton, 2016) over every non-batch axis, with
/// PyTorch's `nn.LayerNorm(x.shape[1:])` semantics.
///
/// Each sample is normalized with its mean and biased variance over `(C, spatial...)`;
/// the affine weight and bias are **elementwise**, of shape `x.shape[1:]` (unlike
/// GroupNorm(1)'s per-channel affine). Same computation in train and eval. The layer must
/// know its per-sample shape when built.
public final class LayerNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "layer_norm", aliases: ["ln", "layernorm"],
        summary: "Layer Normalization: per-sample statistics over all non-batch axes",
        reference: "Ba, Kiros & Hinton 2016, arXiv:1607.06450; PyTorch nn.LayerNorm(x.shape[1:])",
        options: [CommonOptions.eps(), OptionSpec("affine", .bool, default: .bool(true), "learnable elementwise weight and bias of shape x.shape[1:]")],
        ranks: 2...5,
        notes: ["per sample over (C, spatial...); biased variance",
                "elementwise affine of shape x.shape[1:] (GN(num_groups=1) is per-channel instead)"],
        reduction: .channelsAndSpatial)

    /// The normalized shape `(C, spatial...)`.
    public let normalizedShape: [Int]
    let eps: Double
    let affine: ChannelAffine?
    private var cache: (x: Tensor, head: [Float], inv: [Float], k: [Float])?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()
    /// Two blocks each: the optimizer may still hold the previous step's gradient.
    private var weightGradient = ReusableStorage(slots: 2)
    private var biasGradient = ReusableStorage(slots: 2)

    public init(shape: FeatureShape, options: NormOptions) throws {
        guard let perSample = shape.perSampleShape else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "layer_norm needs the per-sample shape (C, spatial...) to size its elementwise affine")
        }
        guard perSample.allSatisfy({ $0 > 0 }) else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "per-sample shape \(perSample.shapeText) has an empty axis")
        }
        normalizedShape = perSample
        eps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: perSample) : nil
    }

    public var parameters: [Parameter] { affine?.parameters ?? [] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: normalizedShape[0])
        guard Array(x.shape.dropFirst()) == normalizedShape else {
            throw NormError.invalidInput(method: Self.descriptor.name,
                reason: "input of shape \(x.shape.shapeText) does not match the normalized shape \(normalizedShape.shapeText)")
        }
        let rows = x.shape[0], m = normalizedShape.product
        guard m > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each sample holds a single value, input of shape \(x.shape.shapeText)")
        }
        var head = [Float](repeating: 0, count: rows), inv = head, k = head
        let eps = self.eps
        // Statistics and output in one pass over each row (the row is re-read from cache).
        let y = output.tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in
                withAffine { w, b in
                    head.withUnsafeMutableBufferPointer { h in inv.withUnsafeMutableBufferPointer { iv in k.withUnsafeMutableBufferPointer { kk in
                        RowKernels.normalizeRuns(x: xb.baseAddress!, y: yb.baseAddress!, rows: rows, length: m, segments: 1, eps: eps,
                                                 w: w, b: b, head: h.baseAddress!, inv: iv.baseAddress!, k: kk.baseAddress!)
                    }}}
                }
            }
        }
        cache = (x, head, inv, k)
        return y
    }

    private func withAffine<R>(_ body: (UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
        guard let affine else { return body(nil, nil) }
        return affine.weight.value.withUnsafeBufferPointer { w in
            affine.bias.value.withUnsafeBufferPointer { b in body(w.baseAddress, b.baseAddress) }
        }
    }

    private func withOutputPointer<R>(_ t: Tensor?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
        guard let t else { return body(nil) }
        return t.withUnsafeOutputBuffer { body($0.baseAddress) }
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let c = cache!, rows = x.shape[0], m = normalizedShape.product
        let wantW = affine?.weight.requiresGrad ?? false, wantB = affine?.bias.requiresGrad ?? false
        // Parameter gradients (m values each) are written into reusable blocks as well: a fresh
        // block per call would cost page faults comparable to the kernel itself.
        let gw: Tensor? = wantW ? weightGradient.tensor(shape: normalizedShape) : nil
        let gb: Tensor? = wantB ? biasGradient.tensor(shape: normalizedShape) : nil
        let gx = gradInput.tensor(shape: x.shape) { ob in
            x.withUnsafeBufferPointer { xb in gradOutput.withUnsafeBufferPointer { gbuf in
                withOutputPointer(gw) { gwp in withOutputPointer(gb) { gbp in
                    c.head.withUnsafeBufferPointer { h in c.inv.withUnsafeBufferPointer { iv in c.k.withUnsafeBufferPointer { kk in
                        withAffine { w, _ in
                            RowKernels.backwardRuns(x: xb.baseAddress!, g: gbuf.baseAddress!, gx: ob.baseAddress!, rows: rows, length: m,
                                                    segments: 1, head: h.baseAddress!, inv: iv.baseAddress!, k: kk.baseAddress!, w: w,
                                                    gradW: gwp, gradB: gbp)
                        }
                    }}}
                }}
            }}
        }
        affine?.weight.gradient = gw
        affine?.bias.gradient = gb
        return gx
    }
}
