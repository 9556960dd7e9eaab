import NormCore

/// One hidden layer of a fully-connected ``Model`` (`family == .mlp`): a linear layer, its
/// norm slot (or none) and the activation (or none, when the norm includes it), in the order
/// ``ModelSpec/normPosition`` gives — `before` is the BN paper's "BN before the nonlinearity"
/// (Ioffe & Szegedy 2015, §3.2 and Figure 1).
public final class DenseBlock {
    public let index: Int
    public let linear: Linear
    /// The norm over the block's `(N, features)` output: every feature is a channel with no
    /// spatial extent (``FeatureShape`` `spatial: []`).
    public let norm: NormSlot?
    public let activation: Layer?
    /// The layers in execution order, with their local names (`linear`, `norm`, `act`).
    public let layers: [(name: String, layer: Layer)]

    init(index: Int, linear: Linear, norm: NormSlot?, activation: Layer?, position: NormPosition) {
        self.index = index
        self.linear = linear
        self.norm = norm
        self.activation = activation
        var seq: [(String, Layer)] = [("linear", linear)]
        seq += position.ordered(norm: norm, activation: activation)
        layers = seq
    }
}

extension ModelSpec {
    /// A fully-connected net on flattened samples: hidden layers of the given widths, each
    /// `Linear + norm slot + activation`, then a linear classifier. `[100, 100, 100]` with
    /// sigmoid is the network of the BN paper's Figure 1 (Ioffe & Szegedy 2015, §4.1).
    public static func mlp(inputShape: [Int], classes: Int, hidden: [Int] = [100, 100, 100],
                           norm: NormSpec? = .registryDefault, activation: ActivationKind = .relu) -> ModelSpec {
        var spec = ModelSpec(inputShape: inputShape, classes: classes, depth: hidden.count, width: hidden.first ?? 1,
                             norm: norm, activation: activation, downsample: .none, head: .flatten)
        spec.family = .mlp
        spec.hidden = hidden
        return spec
    }

    /// The MLP rules on top of ``validate()``'s: one line per problem.
    func validateMLP() throws {
        guard family == .mlp else {
            if !hidden.isEmpty { throw NetError("model: hidden applies to mlp models only (model name mlp)") }
            return
        }
        guard !hidden.isEmpty, hidden.allSatisfy({ $0 >= 1 }) else {
            throw NetError("model: mlp needs hidden: a non-empty list of positive layer widths, got \(hidden)")
        }
        let conv = ModelSpec.mlp(inputShape: inputShape, classes: classes, hidden: hidden)
        guard depth == hidden.count, width == hidden[0], kernel == conv.kernel, downsample == conv.downsample,
              downsampleEvery == conv.downsampleEvery, widthGrowth == conv.widthGrowth, minSpatial == conv.minSpatial,
              head == conv.head, !convBias else {
            throw NetError("model: depth, width, kernel, downsample, head, width_growth and conv_bias apply to conv nets; an mlp's layers are its hidden widths")
        }
        guard freeze.frozenStages == -1, freeze.perLayer.isEmpty else {
            throw NetError("model: frozen_stages and per-layer freeze policies apply to conv nets only (an mlp takes norm_eval, requires_grad)")
        }
        guard weightStandardization == nil else { throw NetError("model: weight_standardization applies to convolutions; an mlp has none") }
    }
}

extension Model {
    /// The MLP's hidden blocks, initialized in order (each weight `N(0, gain²/fan_in)` — the
    /// BN paper's "small random Gaussian values", gain √2 for ReLU and 1 otherwise — and
    /// each bias zero); `shape` ends as `[last width]`.
    static func denseBlocks(_ spec: ModelSpec, registry: NormRegistry, normOptions: NormOptions?, normIncludesActivation: Bool,
                            shape: inout [Int], using rng: inout SeededGenerator) throws -> [DenseBlock] {
        var features = spec.inputShape.product
        var blocks: [DenseBlock] = []
        for (i, width) in spec.hidden.enumerated() {
            let linear = try Linear(inFeatures: features, outFeatures: width)
            let gain = spec.activation == .relu && !normIncludesActivation ? 2.0.squareRoot() : 1.0
            linear.weight.value = Initializers.kaimingNormal([width, features], fan: features, gain: gain, using: &rng)
            var slot: NormSlot?
            if let norm = spec.norm, let options = normOptions {
                let fshape = FeatureShape(channels: width, spatial: [])
                let plugin: any Normalization
                do { plugin = try registry.make(norm, shape: fshape) } catch let error as NormError {
                    throw NetError("blocks.\(i).norm (\(width) features): \(error.description)")
                }
                slot = NormSlot(name: "blocks.\(i).norm", spec: norm, options: options, shape: fshape,
                                layer: try NormLayer(plugin, freeze: .none))
                do { try slot!.layer.setFreeze(spec.freeze.global) } catch let error as NormError {
                    throw NetError("block \(i): \(error.description)")
                }
            }
            let act: Layer? = normIncludesActivation ? nil : spec.activation.makeLayer()
            blocks.append(DenseBlock(index: i, linear: linear, norm: slot, activation: act, position: spec.normPosition))
            features = width
        }
        shape = [features]
        return blocks
    }
}
