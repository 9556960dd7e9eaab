import NormCore

extension Convolution {
    /// The bias gradient of a chunked backward pass: `Σ dy` per output channel from the
    /// per-chunk partials `chunkPartials[chunk · C_out + c]`, summed in chunk order (so the
    /// result does not depend on the thread count); nil when the bias is frozen, nothing to
    /// set without a bias. Shared by ``ChunkedConvolution`` and ``WinogradConvolution``.
    func setBiasGradient(chunkPartials: [Double], chunks: Int) {
        guard let bias else { return }
        guard bias.requiresGrad else {
            bias.gradient = nil
            return
        }
        var sums = [Double](repeating: 0, count: outChannels)
        for chunk in 0..<chunks { for c in 0..<outChannels { sums[c] += chunkPartials[chunk * outChannels + c] } }
        bias.gradient = Tensor(shape: [outChannels], doubles: sums)
    }
}
