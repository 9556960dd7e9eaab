import NormCore

/// Builds the body of a CIFAR-style ResNet-(6n+2) (He et al. 2016, §4.2) for ``Model``: the
/// stem, three stages of `n` ``ResidualBlock``s, and (pre-activation) the final norm + act.
///
/// Names (checkpoints): `stem.conv`, `stem.norm`, `layer{1,2,3}.{i}.conv1|norm1|conv2|norm2`,
/// `layer{s}.{i}.shortcut.conv|norm` (option B), `final.norm` (pre-activation).
/// Stages for `frozen_stages`: the stem is stage 0, `layer{s}` stage `s`; the final norm of a
/// pre-activation net belongs to stage 3 (it normalizes stage 3's output).
/// Weights are drawn in execution order: stem conv, then per block conv1, conv2, shortcut conv.
struct ResNetBuilder {
    let spec: ModelSpec
    let registry: NormRegistry
    /// The resolved norm options, if the model has norms.
    let normOptions: NormOptions?
    /// The norm's output includes its activation (FRN with its TLU): no activation follows it.
    let normIncludesActivation: Bool

    struct Body {
        var layers: [(name: String, layer: Layer)]
        var blocks: [ResidualBlock]
        var featureShape: [Int]
    }

    func build(using rng: inout SeededGenerator) throws -> Body {
        var shape = spec.inputShape
        var layers: [(name: String, layer: Layer)] = []
        // Stem: conv (→ norm → act in the original form; the first block's norm1 follows it in the pre-activation form).
        let stem = try conv(from: shape[0], to: spec.width, kernel: spec.kernel, stride: 1, shape: shape, stage: 0, using: &rng)
        shape = try stem.outputShape(forSample: shape)
        layers.append(("stem.conv", stem))
        if !spec.resnet.preActivation {
            layers += try normAndActivation(names: ("stem.norm", "stem.act"), prefix: "", shape: shape, stage: 0)
        }
        var blocks: [ResidualBlock] = []
        var channels = spec.width
        for stage in 1...3 {
            if stage > 1 { channels *= spec.widthGrowth }
            for index in 0..<spec.blocksPerStage {
                let stride = stage > 1 && index == 0 ? 2 : 1
                let name = "layer\(stage).\(index)"
                let (block, out) = try residualBlock(name: name, stage: stage, index: index, from: shape, to: channels,
                                                     stride: stride, using: &rng)
                layers.append((name, block))
                blocks.append(block)
                shape = out
            }
        }
        if spec.resnet.preActivation {
            layers += try normAndActivation(names: ("final.norm", "final.act"), prefix: "", shape: shape, stage: 3)
        }
        return Body(layers: layers, blocks: blocks, featureShape: shape)
    }

    private func residualBlock(name: String, stage: Int, index: Int, from input: [Int], to channels: Int, stride: Int,
                               using rng: inout SeededGenerator) throws -> (ResidualBlock, [Int]) {
        let preact = spec.resnet.preActivation
        let conv1 = try conv(from: input[0], to: channels, kernel: spec.kernel, stride: stride, shape: input, stage: stage, using: &rng)
        let mid = try conv1.outputShape(forSample: input)
        let conv2 = try conv(from: channels, to: channels, kernel: spec.kernel, stride: 1, shape: mid, stage: stage, using: &rng)
        let out = try conv2.outputShape(forSample: mid)

        var pre: [(name: String, layer: Layer)] = []
        var branch: [(name: String, layer: Layer)] = [("conv1", conv1)]
        if preact {
            pre = try normAndActivation(names: ("norm1", "act1"), prefix: name, shape: input, stage: stage)
            branch += try normAndActivation(names: ("norm2", "act2"), prefix: name, shape: mid, stage: stage)
            branch.append(("conv2", conv2))
        } else {
            branch += try normAndActivation(names: ("norm1", "act1"), prefix: name, shape: mid, stage: stage)
            branch.append(("conv2", conv2))
            if let n = try norm(named: "\(name).norm2", shape: out, stage: stage) { branch.append(("norm2", n)) }
        }
        let lastNorm = (preact ? branch.first { $0.name == "norm2" } : branch.last { $0.name == "norm2" })?.layer as? NormSlot
        if spec.resnet.zeroInitResidual { try zeroScale(lastNorm, block: name) }

        var shortcut: [(name: String, layer: Layer)] = []
        if stride != 1 || input[0] != channels {
            switch spec.resnet.shortcut {
            case .a:
                let pad = try ZeroPadShortcut(inChannels: input[0], outChannels: channels, stride: stride)
                shortcut.append(("pad", pad))
            case .b:
                let projection = try conv(from: input[0], to: channels, kernel: 1, stride: stride, shape: input, stage: stage, using: &rng)
                shortcut.append(("conv", projection))
                // The norm slot after every convolution; in the pre-activation form the
                // projection reads the already normalized p = act(norm1(x)).
                if !preact, let n = try norm(named: "\(name).shortcut.norm", shape: out, stage: stage) { shortcut.append(("norm", n)) }
            }
        }
        let post: Layer? = preact ? nil : spec.activation.makeLayer()
        let block = ResidualBlock(stage: stage, index: index, preActivation: preact, pre: pre, branch: branch,
                                  shortcut: shortcut, post: post, lastNorm: lastNorm)
        return (block, out)
    }

    /// Convolution with Kaiming-normal (fan-in) weights, frozen when its stage is.
    private func conv(from inChannels: Int, to outChannels: Int, kernel: Int, stride: Int, shape: [Int], stage: Int,
                      using rng: inout SeededGenerator) throws -> Convolution {
        let pad = kernel / 2
        let c: Convolution = shape.count == 3
            ? try Conv2d(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride, padding: pad, bias: spec.convBias)
            : try Conv1d(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride, padding: pad, bias: spec.convBias)
        c.weightStandardization = spec.weightStandardization
        let gain = spec.activation == .relu && !normIncludesActivation ? 2.0.squareRoot() : 1.0
        c.weight.value = Initializers.kaimingNormal(c.weight.value.shape, fan: c.fanIn, gain: gain, using: &rng)
        if stageIsFrozen(stage) { for p in c.parameters { p.requiresGrad = false } }
        return c
    }

    /// The norm slot (if any) and the activation, unless the norm includes it — in that order,
    /// or activation then norm with `norm_position: after` (the conv-act-norm placement: it
    /// moves every norm that precedes an activation — the stem's and each block's `norm1` —
    /// behind it; `norm2` and a projection's norm precede the addition, not an activation,
    /// and stay after their convolution). `prefix` makes the slot's model-wide dotted name
    /// (`layer1.0` + `norm1`).
    private func normAndActivation(names: (norm: String, act: String), prefix: String, shape: [Int], stage: Int) throws -> [(name: String, layer: Layer)] {
        let slotName = prefix.isEmpty ? names.norm : "\(prefix).\(names.norm)"
        let slot: [(name: String, layer: Layer)] = try norm(named: slotName, shape: shape, stage: stage).map { [(names.norm, $0)] } ?? []
        if normIncludesActivation && !slot.isEmpty { return slot }
        let act: [(name: String, layer: Layer)] = [(names.act, spec.activation.makeLayer())]
        return spec.normPosition == .after ? act + slot : slot + act
    }

    private func stageIsFrozen(_ stage: Int) -> Bool { stage <= spec.freeze.frozenStages }

    /// A norm slot for per-sample features `shape`, with the model's freeze policy and the
    /// stage freeze applied; nil when the model has no norm.
    private func norm(named name: String, shape: [Int], stage: Int) throws -> NormSlot? {
        guard let norm = spec.norm, let options = normOptions else { return nil }
        let fshape = FeatureShape(channels: shape[0], spatial: Array(shape.dropFirst()))
        let plugin: any Normalization
        do { plugin = try registry.make(norm, shape: fshape) } catch let error as NormError {
            throw NetError("\(name) (\(fshape.channels) channels, \(fshape.perSampleShape.map(\.shapeText) ?? "")): \(error.description)")
        }
        var policy = spec.freeze.global
        if stageIsFrozen(stage) {
            policy.freezesAffine = true
            if plugin.tracksRunningStatistics { policy.freezesStatistics = true }
        }
        do {
            return NormSlot(name: name, spec: norm, options: options, shape: fshape, layer: try NormLayer(plugin, freeze: policy))
        } catch let error as NormError {
            throw NetError("\(name): \(error.description)")
        }
    }

    /// Goyal et al. 2017 (§5.1): the block's last norm scale starts at zero.
    private func zeroScale(_ slot: NormSlot?, block: String) throws {
        guard let slot else { throw NetError("model: zero_init_residual needs a norm layer in each block, but norm is none") }
        guard let weight = slot.layer.plugin.parameter(named: "weight") else {
            throw NetError("model: zero_init_residual needs the norm's scale parameter 'weight', but \(slot.method) in \(block) has none (affine=false?)")
        }
        weight.value = .zeros(weight.value.shape)
    }
}
