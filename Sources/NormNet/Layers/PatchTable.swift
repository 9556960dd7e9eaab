/// For small feature maps: where each output position of one kernel tap `(i, j)` reads its
/// input, as an offset into the input plane (−1 where the tap falls in the zero padding).
///
/// With maps of a few columns (8×8, 7×7), ``Im2Col``'s row copies are a handful of floats
/// each and their bookkeeping costs more than the copies; one gather (forward) or
/// scatter-add (backward) over the table of a whole plane does the same data movement in
/// one loop. Every destination gets exactly the values (and, backward, the additions in the
/// same order) of the row path, so results are bit-identical to it.
struct PatchTable {
    /// `offsets[tap · P + p]`, `tap = i · kw + j`, `p` the output position.
    let offsets: [Int32]
    let plane: Int

    /// Maps narrower than this use the table.
    static let maxWidth = 16

    init(_ g: ConvGeometry) {
        let P = g.outPlane, taps = g.kh * g.kw
        var t = [Int32](repeating: -1, count: taps * P)
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let base = (i * g.kw + j) * P
                for y in 0..<g.outH {
                    let iy = y * g.sh - g.ph + i
                    guard iy >= 0, iy < g.h else { continue }
                    for x in 0..<g.outW {
                        let ix = x * g.sw - g.pw + j
                        if ix >= 0 && ix < g.w { t[base + y * g.outW + x] = Int32(iy * g.w + ix) }
                    }
                }
            }
        }
        offsets = t
        plane = P
    }

    /// `dst[p] = src[offset(tap, p)]`, 0 in the padding.
    @inline(__always)
    func gather(tap: Int, from src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        offsets.withUnsafeBufferPointer { o in
            let t = o.baseAddress! + tap * plane
            for p in 0..<plane {
                let s = Int(t[p])
                dst[p] = s >= 0 ? src[s] : 0
            }
        }
    }

    /// `dst[offset(tap, p)] += src[p]` wherever the tap reads the input.
    @inline(__always)
    func scatterAdd(tap: Int, from src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        offsets.withUnsafeBufferPointer { o in
            let t = o.baseAddress! + tap * plane
            for p in 0..<plane {
                let s = Int(t[p])
                if s >= 0 { dst[s] += src[p] }
            }
        }
    }
}
