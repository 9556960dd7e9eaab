import Foundation
import NormCore

/// EvoNorm-S0 (Liu, Brock, Simonyan & Le, 2020), a batch-independent normalization-activation
/// layer, with timm's `EvoNorm2dS0` conventions.
///
/// Per sample, the `C` channels are split into `groups` groups of consecutive channels;
/// `σ = √(var + eps)` is the group's standard deviation over (its channels, spatial) with the
/// **biased** variance (timm's `group_std`), and
/// `y = x · sigmoid(v · x) / σ · weight + bias` with per-channel `v` (initialized to 1),
/// `weight` (1) and `bias` (0). There is no mean subtraction in the numerator and no running
/// statistics: train and eval are identical. The output already contains the nonlinearity,
/// so a model places no activation after it (``Normalization/includesActivation``).
/// Defaults follow timm: `groups = 32`, `eps = 1e-5` (`groups` must divide `C`).
public final class EvoNormS0: NormalizationPlugin {
    public static let descriptor = NormDescriptor(
        name: "evonorm_s0", aliases: ["evonorms0", "evonorm-s0"],
        summary: "EvoNorm-S0: x*sigmoid(v*x) / group std, per-channel affine; batch-independent, includes its activation",
        reference: "Liu et al. 2020, arXiv:2004.02967 (EvoNorm-S0); timm EvoNorm2dS0 conventions",
        options: [OptionSpec("groups", .integer(1...Int.max), default: .integer(32), "number of channel groups (timm default 32); must divide C",
                             samples: [.integer(1)]),
                  CommonOptions.eps()],
        ranks: 2...5,
        notes: ["per (n, group): sigma = sqrt(var + eps), biased variance over (C/groups channels, spatial)",
                "y = x * sigmoid(v * x) / sigma * weight + bias; v, weight, bias of shape (C,), initialized 1, 1, 0",
                "no running statistics: train and eval are identical; the output includes the activation"],
        constraints: [.dividesChannels(option: "groups")],
        reduction: .channelGroupsAndSpatial(groupsOption: "groups"))

    let channels: Int
    /// Number of channel groups.
    public let groups: Int
    let eps: Double
    public let weight: Parameter
    public let bias: Parameter
    /// The sigmoid's per-channel slope `v`.
    public let v: Parameter
    /// What backward needs: the input and each (n, group)'s 1/σ.
    private var cache: (x: Tensor, invSigma: [Double])?

    public init(shape: FeatureShape, options: NormOptions) throws {
        channels = shape.channels
        groups = options.integer("groups")
        guard channels > 0, channels % groups == 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name,
                reason: "C=\(channels) channels are not divisible by groups=\(groups)")
        }
        eps = options.real("eps")
        weight = Parameter(name: "weight", value: .ones([channels]))
        bias = Parameter(name: "bias", value: .zeros([channels]))
        v = Parameter(name: "v", value: .ones([channels]))
    }

    public var parameters: [Parameter] { [weight, bias, v] }
    public var buffers: [Buffer] { [] }
    public var tracksRunningStatistics: Bool { false }
    public var includesActivation: Bool { true }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try InputValidation.check(x, Self.descriptor, channels: channels)
        let layout = GroupLayout(x, channels: channels, groups: groups)
        guard layout.groupSize > 1 else {
            throw NormError.singleValueReduction(method: Self.descriptor.name,
                reason: "each group std would be taken over one value (input \(x.shape.shapeText), groups=\(groups))")
        }
        let xs = x.scalars, w = weight.value.scalars, b = bias.value.scalars, vs = v.value.scalars
        var invSigma = [Double](repeating: 0, count: layout.count)
        var y = [Float](repeating: 0, count: xs.count)
        for r in 0..<layout.count {
            let range = layout.range(r)
            invSigma[r] = 1 / (Self.biasedVariance(xs[range]) + eps).squareRoot()
            for i in range {
                let c = layout.channel(of: i), xi = Double(xs[i])
                let u = xi * Self.sigmoid(Double(vs[c]) * xi)
                y[i] = Float(u * invSigma[r] * Double(w[c]) + Double(b[c]))
            }
        }
        cache = (x, invSigma)
        return Tensor(shape: x.shape, scalars: y)
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let x = try InputValidation.checkGradient(gradOutput, cache?.x, Self.descriptor)
        let invSigma = cache!.invSigma
        let layout = GroupLayout(x, channels: channels, groups: groups)
        let xs = x.scalars, gs = gradOutput.scalars, w = weight.value.scalars, vs = v.value.scalars
        var gw = [Double](repeating: 0, count: channels), gb = gw, gv = gw
        var gx = [Float](repeating: 0, count: xs.count)
        let m = Double(layout.groupSize)
        for r in 0..<layout.count {
            let range = layout.range(r), inv = invSigma[r]
            let mean = xs[range].reduce(0.0) { $0 + Double($1) } / m
            // dL/dσ = −Σ g·w·u / σ²; σ's gradient reaches x through (x − μ)/(M σ).
            var dSigma = 0.0
            for i in range {
                let c = layout.channel(of: i), xi = Double(xs[i]), s = Self.sigmoid(Double(vs[c]) * xi)
                let u = xi * s, g = Double(gs[i])
                gw[c] += g * u * inv
                gb[c] += g
                dSigma -= g * Double(w[c]) * u * inv * inv
            }
            for i in range {
                let c = layout.channel(of: i), xi = Double(xs[i]), vc = Double(vs[c]), s = Self.sigmoid(vc * xi)
                let gu = Double(gs[i]) * Double(w[c]) * inv          // dL/du
                gv[c] += gu * xi * xi * s * (1 - s)
                let du = s + xi * s * (1 - s) * vc                     // du/dx
                gx[i] = Float(gu * du + dSigma * (xi - mean) * inv / m)
            }
        }
        for (p, g) in [(weight, gw), (bias, gb), (v, gv)] {
            p.gradient = p.requiresGrad ? Tensor(shape: [channels], doubles: g) : nil
        }
        return Tensor(shape: x.shape, scalars: gx)
    }

    private static func sigmoid(_ t: Double) -> Double { 1 / (1 + exp(-t)) }

    private static func biasedVariance(_ values: ArraySlice<Float>) -> Double {
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        return values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    }
}

/// The contiguous runs of one (sample, channel group) in an `(N, C, spatial...)` tensor.
private struct GroupLayout {
    let spatial: Int
    let channelsPerGroup: Int
    let channels: Int
    /// Number of (sample, group) runs.
    let count: Int

    init(_ x: Tensor, channels: Int, groups: Int) {
        self.channels = channels
        spatial = x.spatialCount
        channelsPerGroup = channels / groups
        count = x.shape[0] * groups
    }

    var groupSize: Int { channelsPerGroup * spatial }
    func range(_ r: Int) -> Range<Int> { (r * groupSize)..<((r + 1) * groupSize) }
    func channel(of index: Int) -> Int { (index / spatial) % channels }
}
