import NormCore

/// A CNN built from a ``ModelSpec`` with every block's norm slot filled through a
/// ``NormRegistry`` (any built-in, a custom Swift plugin, or a Python plugin): the plain conv
/// stack (``ConvBlock``s) or a CIFAR-style ResNet (``ResidualBlock``s, ``ResNetBuilder``).
///
/// The model's mode is only a request: each norm layer runs in its freeze policy's
/// effective mode, so ``setMode(_:)`` to `.train` never undoes `norm_eval`, and frozen
/// parameters (`requires_grad: false`, `frozen_stages`) never get gradients.
public final class Model {
    public let spec: ModelSpec
    /// The plain net's blocks (empty for a ResNet).
    public let blocks: [ConvBlock]
    /// A ResNet's residual blocks in order (empty for the plain net).
    public let residualBlocks: [ResidualBlock]
    /// An MLP's hidden blocks in order (empty for conv nets).
    public let denseBlocks: [DenseBlock]
    /// Global pooling or flatten before the classifier.
    public let headPool: Layer
    public let classifier: Linear
    public private(set) var mode: Mode = .train
    /// Per-sample feature shape entering the head.
    public let featureShape: [Int]
    /// Every top-level layer in execution order with its dotted name (a residual block is one).
    public let layers: [(name: String, layer: Layer)]
    /// Every non-composite layer with its dotted name (the layers inside residual blocks
    /// named `layer1.0.conv1`, …); equal to `layers` for the plain net.
    public let leafLayers: [(name: String, layer: Layer)]

    /// Builds and initializes the model; `seed` drives every initial weight.
    public init(spec: ModelSpec, registry: NormRegistry, seed: UInt64) throws {
        try spec.validate()
        self.spec = spec
        var rng = SeededGenerator(seed: seed)
        let (normOptions, includesActivation) = try Self.resolveNorm(spec, registry: registry)
        var body: [(String, Layer)] = []
        if spec.family == .resnet {
            let resnet = try ResNetBuilder(spec: spec, registry: registry, normOptions: normOptions,
                                           normIncludesActivation: includesActivation).build(using: &rng)
            blocks = []
            residualBlocks = resnet.blocks
            denseBlocks = []
            featureShape = resnet.featureShape
            body = resnet.layers
        } else if spec.family == .mlp {
            var mlpShape: [Int] = []
            denseBlocks = try Self.denseBlocks(spec, registry: registry, normOptions: normOptions,
                                               normIncludesActivation: includesActivation, shape: &mlpShape, using: &rng)
            blocks = []
            residualBlocks = []
            featureShape = mlpShape
            body = [("flatten", Flatten())]
            for b in denseBlocks { body += b.layers.map { ("blocks.\(b.index).\($0.name)", $0.layer) } }
        } else {
            var plainShape: [Int] = []
            blocks = try Self.plainBlocks(spec, registry: registry, normOptions: normOptions,
                                          tluReplacesActivation: includesActivation, shape: &plainShape, using: &rng)
            featureShape = plainShape
            residualBlocks = []
            denseBlocks = []
            for b in blocks { body += b.layers.map { ("blocks.\(b.index).\($0.name)", $0.layer) } }
        }
        let shape = featureShape

        let features: Int
        switch spec.head {
        case .globalAvgPool: headPool = GlobalAvgPool(); features = shape[0]
        case .flatten: headPool = Flatten(); features = shape.product
        }
        classifier = try Linear(inFeatures: features, outFeatures: spec.classes)
        classifier.weight.value = Initializers.pytorchDefault(classifier.weight.value.shape, fanIn: features, using: &rng)
        classifier.bias!.value = Initializers.pytorchDefault([spec.classes], fanIn: features, using: &rng)

        var seq = body
        seq.append(("head", headPool))
        // Drawn after every initial weight, so a model without dropout initializes as before.
        let dropoutSeed = rng.next()
        if spec.dropout > 0 { seq.append(("dropout", try Dropout(probability: spec.dropout, seed: dropoutSeed))) }
        seq.append(("classifier", classifier))
        layers = seq
        leafLayers = flattenedLayers(seq)
        layers.first?.layer.computesInputGradient = false
        // An MLP starts with a reshape: its first linear layer needs no input gradient either.
        denseBlocks.first?.linear.computesInputGradient = false
    }

    /// The norm's resolved options, and whether its output includes the activation placed
    /// before it (FRN's TLU, EvoNorm-S0): asked of a layer of the method built for the first
    /// slot (``Normalization/includesActivation``), never inferred from its name.
    private static func resolveNorm(_ spec: ModelSpec, registry: NormRegistry) throws -> (NormOptions?, Bool) {
        guard let norm = spec.norm else { return (nil, false) }
        let options = try registry.options(for: norm)
        let first = spec.family == .mlp
            ? FeatureShape(channels: spec.hidden.first ?? 1, spatial: [])
            : FeatureShape(channels: spec.width, spatial: Array(spec.inputShape.dropFirst()))
        // A method that refuses this shape fails again, named, when its first slot is built.
        guard let probe = try? registry.make(norm, shape: first) else { return (options, false) }
        return (options, spec.normPosition == .before && probe.includesActivation)
    }

    /// The plain net's blocks; `shape` ends as the per-sample feature shape entering the head.
    private static func plainBlocks(_ spec: ModelSpec, registry: NormRegistry, normOptions: NormOptions?, tluReplacesActivation: Bool,
                                    shape: inout [Int], using rng: inout SeededGenerator) throws -> [ConvBlock] {
        let twoD = spec.inputShape.count == 3
        shape = spec.inputShape
        var channels = spec.width
        var strideNext = false
        var resolution: [Int] = []
        var group = 0
        var built: [(conv: Convolution, norm: NormSlot?, act: Layer?, pool: Layer?)] = []

        for i in 0..<spec.depth {
            let stride = strideNext ? 2 : 1
            strideNext = false
            let pad = spec.kernel / 2
            let conv: Convolution = twoD
                ? try Conv2d(inChannels: shape[0], outChannels: channels, kernel: spec.kernel, stride: stride, padding: pad, bias: spec.convBias)
                : try Conv1d(inChannels: shape[0], outChannels: channels, kernel: spec.kernel, stride: stride, padding: pad, bias: spec.convBias)
            conv.weightStandardization = spec.weightStandardization
            let out = try conv.outputShape(forSample: shape)
            resolution.append(group)
            var slot: NormSlot?
            if let norm = spec.norm, let options = normOptions {
                let fshape = FeatureShape(channels: channels, spatial: Array(out.dropFirst()))
                let plugin: any Normalization
                do { plugin = try registry.make(norm, shape: fshape) } catch let error as NormError {
                    throw NetError("blocks.\(i).norm (\(channels) channels, \(fshape.perSampleShape.map(\.shapeText) ?? "")): \(error.description)")
                }
                // The freeze policy is applied below, once stages are known.
                slot = NormSlot(name: "blocks.\(i).norm", spec: norm, options: options, shape: fshape,
                                layer: try NormLayer(plugin, freeze: .none))
            }
            let act: Layer? = tluReplacesActivation ? nil : spec.activation.makeLayer()
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
            let gain = spec.activation == .relu && !tluReplacesActivation ? 2.0.squareRoot() : 1.0
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
        return blocks
    }

    /// The number every train-mode batch must be a multiple of: the least common multiple of
    /// the values of every norm option declared to divide the batch (``NormConstraint/dividesBatch(option:)``,
    /// e.g. Ghost BN's `virtual_batch_size`); 1 when no layer splits the batch.
    public var batchMultiple: Int {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        var m = 1
        for slot in normSlots {
            for case let .dividesBatch(option) in slot.layer.descriptor.constraints {
                if case let .integer(k)? = slot.options.values[option], k > 0 { m = m / gcd(m, k) * k }
            }
        }
        return m
    }

    /// Every norm slot in execution order.
    public var normSlots: [NormSlot] { leafLayers.compactMap { $0.layer as? NormSlot } }

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
        leafLayers.flatMap { entry in
            entry.layer.parameters.map { p in
                let isWeight = (entry.layer is Convolution || entry.layer is Linear) && p.name == "weight"
                return ("\(entry.name).\(p.name)", p, isWeight || spec.decayAllParameters)
            }
        }
    }

    /// Every buffer (running statistics, counters, folded affines) with its dotted name.
    public var namedBuffers: [(name: String, buffer: Buffer)] {
        leafLayers.flatMap { entry in entry.layer.buffers.map { ("\(entry.name).\($0.name)", $0) } }
    }

    /// Number of learnable scalars.
    public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.parameter.value.count } }

    /// L2 norm of every convolution and linear weight together (biases and norm affines
    /// excluded): the quantity whose growth signals a blow-up under normalization with
    /// statistics outside the gradient (Ioffe 2017, §2).
    public var weightNorm: Double {
        var sum = 0.0
        for (_, layer) in leafLayers where layer is Convolution || layer is Linear {
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
        for case let conv as Convolution in leafLayers.map(\.layer) {
            guard let g = conv.parameters.first(where: { $0.name == "bias" })?.gradient else { continue }
            g.withUnsafeBufferPointer { p in for v in p { sum += Double(v) * Double(v) } }
            count += g.count
        }
        return count > 0 ? (sum / Double(count)).squareRoot() : nil
    }

    /// Turns per-layer telemetry recording on or off.
    public func recordTelemetry(_ on: Bool) { for s in normSlots { s.recordsTelemetry = on } }
}
