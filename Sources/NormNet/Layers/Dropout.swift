import NormCore

/// Inverted dropout (Srivastava et al. 2014, as `nn.Dropout`): in train mode each element is
/// zeroed with probability `p` and the survivors are scaled by `1 / (1 − p)`, so eval mode is
/// the identity and the expected activation is the same in both modes. Placed before the
/// classifier (``ModelSpec/dropout``); the BN paper (Ioffe & Szegedy 2015, §4.2.1) found that
/// BN reduces the need for it.
///
/// The masks come from a ``SeededGenerator`` created from `seed`: one uniform draw per element
/// in row-major order, element kept when the draw is `≥ p`. The same seed and the same
/// sequence of batch shapes give the same masks. Eval-mode passes draw nothing, so
/// evaluating between training steps does not shift the training masks.
public final class Dropout: Layer {
    public let probability: Double
    public var computesInputGradient = true
    private var generator: SeededGenerator
    /// The last train-mode mask, already scaled (0 or `1 / (1 − p)`); nil after an eval pass.
    public private(set) var mask: [Float]?

    /// `probability` in `[0, 1)`.
    public init(probability: Double, seed: UInt64) throws {
        guard probability.isFinite, probability >= 0, probability < 1 else {
            throw NetError("dropout: probability must be in [0, 1), got \(probability)")
        }
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard mode == .train, probability > 0 else {
            mask = nil
            return x
        }
        let keep = Float(1 / (1 - probability))
        var m = [Float](repeating: 0, count: x.count)
        for i in 0..<m.count where generator.nextUniform() >= probability { m[i] = keep }
        let y = Tensor(shape: x.shape) { yb in
            x.withUnsafeBufferPointer { xb in for i in 0..<yb.count { yb[i] = xb[i] * m[i] } }
        }
        mask = m
        return y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard computesInputGradient else { return .skippedGradient }
        guard let mask else { return gradOutput }
        guard gradOutput.count == mask.count else {
            throw NetError("dropout: gradient of shape \(gradOutput.shape.shapeText) does not match the last forward")
        }
        return Tensor(shape: gradOutput.shape) { gb in
            gradOutput.withUnsafeBufferPointer { g in for i in 0..<gb.count { gb[i] = g[i] * mask[i] } }
        }
    }
}
