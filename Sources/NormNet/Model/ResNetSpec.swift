import NormCore

/// Which network a ``ModelSpec`` describes.
public enum ModelFamily: String, Sendable, CaseIterable {
    /// The plain conv stack (``ConvBlock``s), the default.
    case plain
    /// The CIFAR-style ResNet-(6n+2) of He et al. 2016, §4.2 (``ResidualBlock``s).
    case resnet
    /// A fully-connected net (``DenseBlock``s): flatten, then `Linear + norm slot + activation`
    /// per hidden layer (``ModelSpec/hidden``), as in the BN paper's Figure 1.
    case mlp
}

/// How a residual block's shortcut matches a change of shape (He et al. 2016, §3.3).
public enum ShortcutKind: String, Sendable, CaseIterable {
    /// Option A: identity, subsampled by the stride and zero-padded in channels (no parameters).
    case a = "A"
    /// Option B: a 1×1 convolution with the block's stride, followed by the norm slot, where
    /// the shape changes; identity elsewhere.
    case b = "B"

    /// `A`/`B` in either case.
    public init?(parsing text: String) { self.init(rawValue: text.uppercased()) }
}

/// The ResNet-specific choices of a ``ModelSpec`` (used when `family == .resnet`).
public struct ResNetOptions: Sendable, Equatable {
    public var shortcut: ShortcutKind
    /// The pre-activation block of He et al. 2016b (norm → act → conv, a final norm + act
    /// before pooling) instead of the original conv → norm → act with the activation after
    /// the addition.
    public var preActivation: Bool
    /// Zero-initializes the scale (`weight`) of each block's last norm (Goyal et al. 2017,
    /// §5.1), so that every block starts as its shortcut (followed by the block's activation in
    /// the original form; in the pre-activation form this needs `act(0) = 0`: ReLU, or a norm
    /// that includes its activation — with sigmoid the branch starts at `conv2(½)`). Refused
    /// for a method without a `weight` parameter (e.g. `affine=false`).
    public var zeroInitResidual: Bool

    public init(shortcut: ShortcutKind = .a, preActivation: Bool = false, zeroInitResidual: Bool = false) {
        self.shortcut = shortcut
        self.preActivation = preActivation
        self.zeroInitResidual = zeroInitResidual
    }
}

extension ModelSpec {
    /// A CIFAR-style ResNet-`depth` (He et al. 2016, §4.2): a `kernel`×`kernel` stem conv at
    /// `width` channels, three stages of `(depth − 2)/6` basic blocks at widths `k`, `g·k`,
    /// `g²·k` (`g = widthGrowth`, 2 in the paper), stride 2 at the first block of stages 2
    /// and 3, global average pooling and a linear classifier. `depth` 20, `width` 16 and
    /// option A is the paper's 0.27M-parameter ResNet-20.
    public static func resNet(inputShape: [Int], classes: Int, depth: Int = 20, width: Int = 16,
                              norm: NormSpec? = .registryDefault, options: ResNetOptions = ResNetOptions()) -> ModelSpec {
        var spec = ModelSpec(inputShape: inputShape, classes: classes, depth: depth, width: width, kernel: 3, norm: norm,
                             downsample: .strided, widthGrowth: 2, minSpatial: 1, head: .globalAvgPool)
        spec.family = .resnet
        spec.resnet = options
        return spec
    }

    /// Basic blocks per stage, `n` of ResNet-(6n+2).
    public var blocksPerStage: Int { (depth - 2) / 6 }

    /// The ResNet rules on top of ``validate()``'s: one line per problem.
    func validateResNet() throws {
        guard family == .resnet else {
            if resnet != ResNetOptions() {
                throw NetError("model: shortcut, preact and zero_init_residual apply to resnet models only (e.g. --model resnet20)")
            }
            return
        }
        guard depth >= 8, (depth - 2) % 6 == 0 else {
            throw NetError("model: resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got \(depth)")
        }
        guard normPosition == .before || !resnet.preActivation else {
            throw NetError("model: the pre-activation resnet puts each norm before its activation by definition; norm_position 'after' applies to the original form (preact false)")
        }
        guard downsample == .strided else {
            throw NetError("model: resnet downsamples with stride-2 convolutions; downsample '\(downsample.rawValue)' applies to the plain net only")
        }
        guard head == .globalAvgPool else {
            throw NetError("model: resnet ends in global average pooling; head '\(head.rawValue)' applies to the plain net only")
        }
        guard freeze.perLayer.isEmpty else {
            throw NetError("model: per-layer freeze policies apply to the plain net only (use norm_eval, requires_grad, frozen_stages)")
        }
        if resnet.zeroInitResidual && norm == nil {
            throw NetError("model: zero_init_residual needs a norm layer in each block, but norm is none")
        }
    }
}

/// A model name of the CLI and of specs: `plain`, `mlp`, `resnet`, `resnetN` or `preact-resnet[N]`
/// (e.g. `resnet20`, `resnet56`, `preact-resnet20`).
public struct ModelName: Sendable, Equatable {
    public var family: ModelFamily
    /// The depth the name carries (`resnet56` → 56), if any.
    public var depth: Int?
    public var preActivation: Bool

    public init(family: ModelFamily, depth: Int? = nil, preActivation: Bool = false) {
        self.family = family; self.depth = depth; self.preActivation = preActivation
    }

    /// Parses `text` (case-insensitive; `resnet-20` and `preact_resnet20` also work);
    /// unknown names are a one-line error.
    public init(parsing text: String) throws {
        var s = Substring(text.lowercased())
        if s == "plain" { self.init(family: .plain); return }
        if s == "mlp" { self.init(family: .mlp); return }
        let preact = s.hasPrefix("preact")
        if preact {
            s = s.dropFirst("preact".count)
            if s.first == "-" || s.first == "_" { s = s.dropFirst() }
        }
        guard s.hasPrefix("resnet") else { throw Self.unknown(text) }
        s = s.dropFirst("resnet".count)
        if s.isEmpty { self.init(family: .resnet, preActivation: preact); return }
        if s.first == "-" || s.first == "_" { s = s.dropFirst() }
        guard !s.isEmpty, s.allSatisfy(\.isASCII), let depth = Int(s), depth > 0 else { throw Self.unknown(text) }
        self.init(family: .resnet, depth: depth, preActivation: preact)
    }

    private static func unknown(_ text: String) -> NetError {
        NetError("model: unknown model '\(text)'; known: plain, mlp, resnet, resnetN (N = 6n+2, e.g. resnet20, resnet56), preact-resnetN")
    }
}

extension TrainPresets {
    /// The ResNet for a data set: ResNet-20 at width 16 (He et al. 2016 §4.2) with option-A
    /// shortcuts, 3×3 convolutions, for 1-D `(C, L)` or 2-D `(C, H, W)` samples of any size
    /// (8×8 digits: 8 → 4 → 2).
    public static func resNet(for dataset: Dataset, norm: NormSpec?) -> ModelSpec {
        resNet(sampleShape: dataset.sampleShape, classes: dataset.classes, norm: norm)
    }

    /// The ResNet for samples of `sampleShape` in `classes` classes.
    public static func resNet(sampleShape: [Int], classes: Int, norm: NormSpec?) -> ModelSpec {
        ModelSpec.resNet(inputShape: sampleShape, classes: classes, norm: norm)
    }
}

extension TrainingRecipe {
    /// Applies a model name (`resnet56`, `preact-resnet20`, `plain`): the family, the
    /// pre-activation form, and the depth it carries — a depth given separately must agree.
    public mutating func setModel(_ name: ModelName) throws {
        family = name.family
        if name.preActivation { preActivation = true }
        if let d = name.depth {
            if let depth, depth != d { throw NetError("model: the name gives depth \(d) but depth \(depth) was given too") }
            depth = d
        }
    }
}
