import NormCore

/// Small SIMD loops the layers share. Sums are taken over float32 blocks in `SIMD16` lanes
/// and accumulated in float64, in a fixed order (deterministic).
enum VectorKernels {
    static let block = 4096

    /// `Σ p[i]` over `length` floats.
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, length: Int) -> Double {
        var total = 0.0, start = 0
        while start < length {
            let end = min(start + block, length)
            var a = SIMD16<Float>(), b = SIMD16<Float>()
            var i = start
            while i + 32 <= end {
                a += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
                b += UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD16<Float>.self)
                i += 32
            }
            var t = Double((a + b).sum())
            while i < end { t += Double(p[i]); i += 1 }
            total += t
            start = end
        }
        return total
    }

    /// `y = max(x, 0)` elementwise over `count` floats (plain loops: LLVM vectorizes them;
    /// `pointwiseMax` on `SIMD16` is lowered lane by lane).
    static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        chunked(count) { lo, hi in
            for i in lo..<hi { let v = x[i]; y[i] = v > 0 ? v : 0 }
        }
    }

    /// `gx = x > 0 ? g : 0` (the subgradient at 0 is 0, as PyTorch).
    static func reluBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, count: Int) {
        chunked(count) { lo, hi in
            let z = SIMD16<Float>()
            var i = lo
            while i + 16 <= hi {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(gx + i).storeBytes(of: z.replacing(with: gv, where: v .> z), as: SIMD16<Float>.self)
                i += 16
            }
            while i < hi { gx[i] = x[i] > 0 ? g[i] : 0; i += 1 }
        }
    }

    /// `dst[i] += src[i]` for `count` floats.
    @inline(__always)
    static func accumulate(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let a = UnsafeRawPointer(dst + i).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { dst[i] += src[i]; i += 1 }
    }

    /// Total elements below which the engine's cheap elementwise passes stay on the calling
    /// thread: handing ~100k floats to another core costs about what the pass itself does.
    static let parallelWork = 1 << 18

    /// ``Parallel/forEach(_:work:_:)`` with the engine's higher threshold for cheap passes.
    @inline(__always)
    static func parallel(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEach(count, work: work >= parallelWork ? work : 0, body)
    }

    /// Calls `body(lo, hi)` on contiguous chunks covering `0..<count` (parallel when large).
    @inline(__always)
    static func chunked(_ count: Int, _ body: (Int, Int) -> Void) {
        let chunk = 16384
        let chunks = (count + chunk - 1) / chunk
        parallel(chunks, work: count) { range in
            for c in range { body(c * chunk, min(count, (c + 1) * chunk)) }
        }
    }
}
