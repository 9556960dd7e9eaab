import NormCore

/// `nn.Conv1d`: input `(N, C_in, L)`, weight `(C_out, C_in, k)`, output
/// `(N, C_out, (L + 2·padding − k)/stride + 1)`.
public final class Conv1d: Convolution {
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) throws {
        try super.init(spatialRank: 1, inChannels: inChannels, outChannels: outChannels, kernel: (1, kernel),
                       stride: (1, stride), padding: (0, padding), bias: bias,
                       weightShape: [outChannels, inChannels, kernel])
    }
}
