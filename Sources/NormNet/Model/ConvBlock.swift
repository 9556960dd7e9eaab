import NormCore

/// One block of a ``Model``: a convolution, its norm slot (or none), the activation (or
/// none, when an FRN's TLU takes its place), and an optional pooling after it.
public final class ConvBlock {
    public let index: Int
    /// Stage for `frozen_stages` (0 = stem).
    public let stage: Int
    public let conv: Convolution
    public let norm: NormSlot?
    public let activation: Layer?
    public let pool: Layer?
    /// The layers in execution order, with their local names.
    public let layers: [(name: String, layer: Layer)]
    /// Whether `frozen_stages` froze this block's convolution.
    public let convFrozen: Bool

    init(index: Int, stage: Int, conv: Convolution, norm: NormSlot?, activation: Layer?, pool: Layer?,
         position: NormPosition, convFrozen: Bool) {
        self.index = index
        self.stage = stage
        self.conv = conv
        self.norm = norm
        self.activation = activation
        self.pool = pool
        self.convFrozen = convFrozen
        var seq: [(String, Layer)] = [("conv", conv)]
        seq += position.ordered(norm: norm, activation: activation)
        if let pool { seq.append(("pool", pool)) }
        layers = seq
    }
}
