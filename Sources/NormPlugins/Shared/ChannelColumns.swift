/// The columns of an `(N, C·S)` matrix that belong to each channel (channel `c` owns columns
/// `c·S ..< (c+1)·S`): BatchNorm-style statistics on `(N, C)` or short-spatial inputs combine a
/// channel's `S` column sums, and spread per-channel coefficients back over its columns.
///
/// Per-channel loops stay compact (one value per channel, no inner loop), so that with `S = 1`
/// — the `(N, C)` case — they run across channels in vector registers.
enum ChannelColumns {
    /// `out[c] = 0 + Σ_j sums[c·S + j]`, added in column order.
    static func totals(_ sums: UnsafePointer<Double>, channels: Int, spatial s: Int, into out: UnsafeMutablePointer<Double>) {
        if s == 1 {
            for c in 0..<channels { out[c] = 0.0 + sums[c] }
            return
        }
        for c in 0..<channels {
            var t = 0.0
            for j in 0..<s { t += sums[c * s + j] }
            out[c] = t
        }
    }

    /// The per-channel `values` repeated over their columns: `out[c·S + j] = values[c]`.
    static func repeated(_ values: [Float], spatial s: Int) -> [Float] {
        guard s > 1 else { return values }
        var out = values + [Float](repeating: 0, count: values.count * (s - 1))
        out.withUnsafeMutableBufferPointer { spread($0.baseAddress!, channels: values.count, spatial: s) }
        return out
    }

    /// Spreads the per-channel values `p[0..<C]` over their columns, in place: `p[c·S + j] = p[c]`
    /// (from the last channel down, so no value is overwritten before it is read).
    static func spread(_ p: UnsafeMutablePointer<Float>, channels: Int, spatial s: Int) {
        guard s > 1 else { return }
        for c in stride(from: channels - 1, through: 0, by: -1) {
            let v = p[c]
            for j in 0..<s { p[c * s + j] = v }
        }
    }
}
