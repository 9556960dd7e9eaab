import NormCore

/// A CNN built from a ``ModelSpec`` with every block's norm slot filled through a
/// ``NormRegistry`` (any built-in, a custom Swift plugin, or a Python plugin).
///
/// The model's mode is only a request: each norm layer runs in its freeze policy's
/// effective mode, so ``setMode(_:)`` to `.train` never undoes `norm_eval`, and frozen
/// parameters (`requires_grad: false`, `frozen_stages`) never get gradients.
public final class Model {
    public let spec: ModelSpec
    public let blocks: [ConvBlock]
    /// Global pooling or flatten before the classifier.
    public let headPool: Layer
    public let classifier: Linear
    public private(set) var mode: Mode = .train
    /// Per-sample feature shape entering the head.
    public let featureShape: [Int]
    /// Every layer in execution order with its dotted name.
    public let layers: [(name: String, layer: Layer)]

    /// Builds and initializes the model; `seed` drives every initial weight.
    public init(spec: ModelSpec, registry: NormRegistry, seed: UInt64) throws {
        try spec.validate()
        self.spec = spec
        var rng = SeededGenerator(seed: seed)
        let twoD = spec.inputShape.count == 3
        var shape = spec.inputShape
        var channels = spec.width
        var strideNext = false
        var resolution: [Int] = []
        var group = 0
        var built: [(conv: Convolution, norm: NormSlot?, act: Layer?, pool: Layer?)] = []

        let normOptions = try spec.norm.map { try registry.options(for: $0) }

        for i in 0..<spec.depth {
            let stride = strideNext ? 2 : 1
            strideNext = false
            let pad = spec.kernel / 2
            let conv: Convolution = twoD
                ? try Conv2d(inChannels: shape[0], outChannels: channels, kernel: spec.kernel, stride: stride, padding: pad, bias: spec.convBias)
                : try Conv1d(inChannels: shape[0], outChannels: channels, kernel: spec.kernel, stride: stride, padding: pad, bias: spec.convBias)
            let out = try conv.outputShape(forSample: shape)
            resolution.append(group)
            var slot: NormSlot?
            if let norm = spec.norm, let options = normOptions {
                let fshape = FeatureShape(channels: channels, spatial: Array(out.dropFirst()))
                let plugin = try registry.make(norm, shape: fshape)
                // The freeze policy is applied below, once stages are known.
                slot = NormSlot(name: "blocks.\(i).norm", spec: norm, options: options, shape: fshape,
                                layer: try NormLayer(plugin, freeze: .none))
            }
            // A norm whose output includes its activation (FRN's TLU, EvoNorm-S0) replaces the
            // block's activation when it sits before it: the layer says so itself.
            let normReplacesActivation = spec.normPosition == .before && slot?.layer.plugin.includesActivation == true
            let act: Layer? = normReplacesActivation ? nil : (spec.activation == .relu ? ReLU() as Layer : Sigmoid())
            shape = out
            var pool: Layer?
            let spatial = Array(shape.dropFirst())
            if i < spec.depth - 1, spec.downsample != .none, (i + 1) % spec.downsampleEvery == 0 {
                let fits: Bool
                switch spec.downsample {
                case .maxPool, .avgPool: fits = spatial.allSatisfy { $0 / 2 >= spec.minSpatial }
                case .strided: fits = spatial.allSatisfy { ($0 + 1) / 2 >= spec.minSpatial }
                case .none: fits = false
                }
                if fits {
                    group += 1
                    channels *= spec.widthGrowth
                    switch spec.downsample {
                    case .maxPool, .avgPool:
                        let window = try PoolWindow(kernel: spatial.map { _ in 2 })
                        pool = spec.downsample == .maxPool ? MaxPool(window) : AvgPool(window)
                        shape = try window.outputShape(forSample: shape)
                    case .strided: strideNext = true
                    case .none: break
                    }
                }
            }
            // Initialization in a fixed order: conv weight (Kaiming normal, fan-in), bias zero.
            let gain = spec.activation == .relu && !normReplacesActivation ? 2.0.squareRoot() : 1.0
            conv.weight.value = Initializers.kaimingNormal(conv.weight.value.shape, fan: conv.fanIn, gain: gain, using: &rng)
            built.append((conv, slot, act, pool))
        }

        // Stages: stem = block 0; then groups of blocks sharing a resolution.
        let restOfFirst = resolution.dropFirst().contains(0)
        let stages = resolution.enumerated().map { i, r in i == 0 ? 0 : r + (restOfFirst ? 1 : 0) }

        var blocks: [ConvBlock] = []
        for (i, b) in built.enumerated() {
            let frozenStage = stages[i] <= spec.freeze.frozenStages
            if let slot = b.norm {
                var policy = spec.freeze.perLayer[i] ?? spec.freeze.global
                if frozenStage {
                    policy.freezesAffine = true
                    if slot.layer.plugin.tracksRunningStatistics { policy.freezesStatistics = true }
                }
                do { try slot.layer.setFreeze(policy) } catch let error as NormError {
                    throw NetError("block \(i): \(error.description)")
                }
            } else if let p = spec.freeze.perLayer[i], p != .none {
                throw NetError("block \(i): a freeze policy was given but the model has no norm layers")
            }
            if frozenStage { for p in b.conv.parameters { p.requiresGrad = false } }
            blocks.append(ConvBlock(index: i, stage: stages[i], conv: b.conv, norm: b.norm, activation: b.act, pool: b.pool,
                                    position: spec.normPosition, convFrozen: frozenStage))
        }
        self.blocks = blocks
        featureShape = shape

        let features: Int
        switch spec.head {
        case .globalAvgPool: headPool = GlobalAvgPool(); features = shape[0]
        case .flatten: headPool = Flatten(); features = shape.product
        }
        classifier = try Linear(inFeatures: features, outFeatures: spec.classes)
        classifier.weight.value = Initializers.pytorchDefault(classifier.weight.value.shape, fanIn: features, using: &rng)
        classifier.bias!.value = Initializers.pytorchDefault([spec.classes], fanIn: features, using: &rng)

        var seq: [(String, Layer)] = []
        for b in blocks { seq += b.layers.map { ("blocks.\(b.index).\($0.name)", $0.layer) } }
        seq.append(("head", headPool))
        seq.append(("classifier", classifier))
        layers = seq
        layers.first?.layer.computesInputGradient = false
    }

    /// Every norm slot in block order.
    public var normSlots: [NormSlot] { blocks.compactMap(\.norm) }

    /// Asks every layer to run in `mode`; freezes still win inside each norm layer.
    public func setMode(_ mode: Mode) { self.mode = mode }

    /// Logits `(N, classes)` for a batch `(N, inputShape...)`.
    public func forward(_ x: Tensor) throws -> Tensor {
        guard Array(x.shape.dropFirst()) == spec.inputShape, x.shape.first ?? 0 > 0 else {
            throw NetError("model: input of shape \(x.shape.shapeText), expected (N, \(spec.inputShape.map(String.init).joined(separator: ", ")))")
        }
        var h = x
        for (_, layer) in layers { h = try layer.forward(h, mode: mode) }
        return h
    }

    /// Back-propagates dL/dlogits; sets every trainable parameter's gradient.
    public func backward(_ gradLogits: Tensor) throws {
        var g = gradLogits
        for (_, layer) in layers.reversed() { g = try layer.backward(g) }
    }

    /// Every parameter with its dotted name, and whether weight decay applies to it.
    public var namedParameters: [(name: String, parameter: Parameter, decays: Bool)] {
        layers.flatMap { entry in
            entry.layer.parameters.map { p in
                let isWeight = (entry.layer is Convolution || entry.layer is Linear) && p.name == "weight"
                return ("\(entry.name).\(p.name)", p, isWeight || spec.decayAllParameters)
            }
        }
    }

    /// Every buffer (running statistics, counters, folded affines) with its dotted name.
    public var namedBuffers: [(name: String, buffer: Buffer)] {
        layers.flatMap { entry in entry.layer.buffers.map { ("\(entry.name).\($0.name)", $0) } }
    }

    /// Number of learnable scalars.
    public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.parameter.value.count } }

    /// L2 norm of every convolution and linear weight together (biases and norm affines
    /// excluded): the quantity whose growth signals a blow-up under normalization with
    /// statistics outside the gradient (Ioffe 2017, §2).
    public var weightNorm: Double {
        var sum = 0.0
        for (_, layer) in layers where layer is Convolution || layer is Linear {
            for p in layer.parameters where p.name == "weight" {
                p.value.withUnsafeBufferPointer { b in for v in b { sum += Double(v) * Double(v) } }
            }
        }
        return sum.squareRoot()
    }

    /// Root mean square of the convolution biases' current gradients, over every bias element
    /// of every convolution that has one; nil when none has a bias gradient.
    public var convBiasGradientRMS: Double? {
        var sum = 0.0, count = 0
        for b in blocks {
            guard let g = b.conv.parameters.first(where: { $0.name == "bias" })?.gradient else { continue }
            g.withUnsafeBufferPointer { p in for v in p { sum += Double(v) * Double(v) } }
            count += g.count
        }
        return count > 0 ? (sum / Double(count)).squareRoot() : nil
    }

    /// Turns per-layer telemetry recording on or off.
    public func recordTelemetry(_ on: Bool) { for s in normSlots { s.recordsTelemetry = on } }
}
