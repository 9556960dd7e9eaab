/// The two independent freeze switches of MMDetection's norm config (Table 6 of the
/// MMDetection report): frozen statistics (`norm_eval=True`: running statistics are used
/// and never updated, whatever mode the surrounding model is switched to later) and
/// frozen affine (`requires_grad=False`: no gradients for the layer's parameters).
public struct FreezePolicy: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// `norm_eval`: normalize with running statistics and never update them.
    public var freezesStatistics: Bool
    /// `requires_grad: false`: the layer's parameters get no gradients.
    public var freezesAffine: Bool

    public init(freezesStatistics: Bool = false, freezesAffine: Bool = false) {
        self.freezesStatistics = freezesStatistics
        self.freezesAffine = freezesAffine
    }

    /// Nothing frozen.
    public static let none = FreezePolicy()
    /// Statistics and affine frozen (a fully frozen BN, as in detection backbones).
    public static let all = FreezePolicy(freezesStatistics: true, freezesAffine: true)

    /// The mode the layer actually runs in when the model asks for `mode`.
    public func effectiveMode(for mode: Mode) -> Mode { freezesStatistics ? .eval : mode }

    public var description: String {
        "norm_eval=\(freezesStatistics), requires_grad=\(!freezesAffine)"
    }
}
