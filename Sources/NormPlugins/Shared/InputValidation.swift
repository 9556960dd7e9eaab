import NormCore

/// Checks every plugin makes on its input before touching it.
enum InputValidation {
    /// Rank within the method's ranks, non-empty batch and axes, channel count as built.
    static func check(_ x: Tensor, _ d: NormDescriptor, channels: Int) throws {
        guard d.ranks.contains(x.rank) else {
            let need = d.ranks.lowerBound >= 3 ? "at least one spatial axis: (N, C, L), (N, C, H, W) or (N, C, D, H, W)"
                : "rank \(d.ranks.lowerBound) to \(d.ranks.upperBound), e.g. (N, C) or (N, C, H, W)"
            throw NormError.invalidInput(method: d.name, reason: "input of shape \(x.shape.shapeText) has rank \(x.rank); expected \(need)")
        }
        guard x.shape[0] > 0 else {
            throw NormError.invalidInput(method: d.name, reason: "empty batch: input shape \(x.shape.shapeText)")
        }
        guard x.shape.allSatisfy({ $0 > 0 }) else {
            throw NormError.invalidInput(method: d.name, reason: "input of shape \(x.shape.shapeText) has an empty axis")
        }
        guard x.shape[1] == channels else {
            throw NormError.invalidInput(method: d.name, reason: "input has \(x.shape[1]) channels (axis 1), layer was built for \(channels)")
        }
    }

    /// Checks a gradient matches the cached forward input.
    static func checkGradient(_ g: Tensor, _ x: Tensor?, _ d: NormDescriptor) throws -> Tensor {
        guard let x else {
            throw NormError.invalidBackward(method: d.name, reason: "backward called before forward")
        }
        guard g.shape == x.shape else {
            throw NormError.invalidBackward(method: d.name, reason: "gradient shape \(g.shape.shapeText) differs from the input shape \(x.shape.shapeText)")
        }
        return x
    }
}

/// Per-channel learnable weight (ones) and bias (zeros), PyTorch's `affine=True`.
struct ChannelAffine {
    let weight: Parameter
    let bias: Parameter

    init(shape: [Int]) {
        weight = Parameter(name: "weight", value: .ones(shape))
        bias = Parameter(name: "bias", value: .zeros(shape))
    }

    var parameters: [Parameter] { [weight, bias] }
}
