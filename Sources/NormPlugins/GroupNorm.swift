import NormCore

/// Group Normalization (Wu & He, 2018) with PyTorch's `nn.GroupNorm` semantics.
///
/// The `C` channels are split into `num_groups` groups of consecutive channels; each
/// `(sample, group)` is normalized with its mean and biased variance over the group's
/// channels and all spatial positions. Affine weight and bias are **per channel**, shape
/// `(C,)` — so `num_groups = 1` equals LayerNorm over `(C, spatial)` only when LayerNorm's
/// elementwise weight is constant over space. Same computation in train and eval.
public final class GroupNorm: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "group_norm", aliases: ["gn", "groupnorm"],
        summary: "Group Normalization: per-sample statistics over groups of channels",
        reference: "Wu & He 2018, arXiv:1803.08494; PyTorch nn.GroupNorm",
        options: [OptionSpec("num_groups", .integer(1...Int.max), default: nil, "number of channel groups; must divide C",
                             samples: [.integer(1)]),
                  CommonOptions.eps(), CommonOptions.affine(default: true)],
        ranks: 2...5,
        notes: ["per (n, group) over (C/G channels, spatial); biased variance",
                "affine weight/bias per channel, shape (C,); train and eval are identical"],
        constraints: [.dividesChannels(option: "num_groups")],
        reduction: .channelGroupsAndSpatial(groupsOption: "num_groups"))

    let channels: Int
    /// Number of channel groups.
    public let groups: Int
    let eps: Double
    let affine: ChannelAffine?
    private var state: PlaneForwardState?
    private var output = ReusableStorage()
    private var gradInput = ReusableStorage()

    public init(shape: FeatureShape, options: NormOptions) throws {
        channels = shape.channels
        groups = options.integer("num_groups")
        guard channels > 0, channels % groups == 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "C=\(channels) channels are not divisible by num_groups=\(groups)")
        }
        eps = options.real("eps")
        affine = options.bool("affine") ? ChannelAffine(shape: [channels]) : nil
    }

    public var parameters: [Parameter] { affine?.parameters ?? [] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let layout = PlaneLayout(x, .byGroup(groups))
        guard layout.groupSize > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each group holds a single value (C/num_groups = \(channels / groups), spatial size \(layout.s)) for input of shape \(x.shape.shapeText)")
        }
        // Each group is a contiguous run: statistics and output fused per group.
        let (y, st, _) = PlaneNormalizer.forwardWithBatchStatistics(x, layout: layout, eps: eps,
                                                                    weight: affine?.weight.value, bias: affine?.bias.value,
                                                                    output: &output)
        state = st
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        try PlaneNormalizer.backward(gradOutput, state: state, affine: affine, descriptor: Self.descriptor, output: &gradInput)
    }
}
