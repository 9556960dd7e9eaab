import NormCore

/// Weight initialization from a ``SeededGenerator`` (He et al. 2015, "Delving deep into
/// rectifiers"; PyTorch `nn.init` conventions).
public enum Initializers {
    /// `N(0, gain²/fan)`, gain √2 for ReLU: `kaiming_normal_(mode='fan_in' | 'fan_out', nonlinearity='relu')`.
    public static func kaimingNormal(_ shape: [Int], fan: Int, gain: Double = 2.0.squareRoot(),
                                     using rng: inout SeededGenerator) -> Tensor {
        Tensor.randomNormal(shape, std: gain / Double(max(fan, 1)).squareRoot(), using: &rng)
    }

    /// `U(−b, b)` with `b = gain·√(3/fan)`: `kaiming_uniform_`.
    public static func kaimingUniform(_ shape: [Int], fan: Int, gain: Double = 2.0.squareRoot(),
                                      using rng: inout SeededGenerator) -> Tensor {
        let b = gain * (3 / Double(max(fan, 1))).squareRoot()
        return Tensor.randomUniform(shape, low: -b, high: b, using: &rng)
    }

    /// PyTorch's default for `nn.Linear`/`nn.Conv` weights and biases: `U(−1/√fan_in, 1/√fan_in)`
    /// (`kaiming_uniform_(a=√5)`).
    public static func pytorchDefault(_ shape: [Int], fanIn: Int, using rng: inout SeededGenerator) -> Tensor {
        let b = 1 / Double(max(fanIn, 1)).squareRoot()
        return Tensor.randomUniform(shape, low: -b, high: b, using: &rng)
    }
}
