/// The per-sample shape a layer is built for: the channel count (axis 1) and, when
/// known, the spatial extents. Methods whose parameters depend on more than the
/// channels (LayerNorm's elementwise affine over `x.shape[1:]`) need `spatial`.
public struct FeatureShape: Sendable, Equatable {
    /// Channels, axis 1 of the input.
    public var channels: Int
    /// The spatial extents (axes 2...), `[]` for `(N, C)` inputs, `nil` when unknown.
    public var spatial: [Int]?

    public init(channels: Int, spatial: [Int]? = nil) {
        self.channels = channels
        self.spatial = spatial
    }

    /// The feature shape of an input tensor `(N, C, ...)`.
    public init(of input: Tensor) {
        self.init(channels: input.channels, spatial: Array(input.shape.dropFirst(2)))
    }

    /// `(C, spatial...)` when the spatial extents are known.
    public var perSampleShape: [Int]? { spatial.map { [channels] + $0 } }
}
