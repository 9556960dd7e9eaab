import NormCore

/// `nn.Conv2d`: input `(N, C_in, H, W)`, weight `(C_out, C_in, kh, kw)`, per-axis stride
/// and zero padding.
public final class Conv2d: Convolution {
    public init(inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), bias: Bool = true) throws {
        try super.init(spatialRank: 2, inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                       stride: stride, padding: padding, bias: bias,
                       weightShape: [outChannels, inChannels, kernel.0, kernel.1])
    }

    /// Square kernel, same stride and padding on both axes.
    public convenience init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) throws {
        try self.init(inChannels: inChannels, outChannels: outChannels, kernel: (kernel, kernel), stride: (stride, stride),
                      padding: (padding, padding), bias: bias)
    }
}
