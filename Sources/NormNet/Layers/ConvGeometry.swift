/// The shape arithmetic of a 2-D convolution or pooling window over `(N, C, H, W)`; a 1-D
/// operation over `(N, C, L)` is the case `H = 1`, kernel height 1, no vertical padding.
struct ConvGeometry: Equatable, Sendable {
    var n: Int, channels: Int, h: Int, w: Int
    var kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int

    var outH: Int { (h + 2 * ph - kh) / sh + 1 }
    var outW: Int { (w + 2 * pw - kw) / sw + 1 }
    /// Output positions per plane.
    var outPlane: Int { outH * outW }
    /// Input positions per plane.
    var inPlane: Int { h * w }
    /// Rows of the im2col matrix: `C · kh · kw`.
    var patch: Int { channels * kh * kw }
    /// Whether every output position exists (the window fits at least once).
    var isValid: Bool { h + 2 * ph >= kh && w + 2 * pw >= kw && outH >= 1 && outW >= 1 }
}

/// Converts between the `(N, C, H, W)` activations and the `(C·kh·kw, N·P)` column matrix
/// that turns a convolution into one `sgemm`, plus the `(N, C, P)` ↔ `(C, N·P)` permutes.
/// Every output element is written by one thread in a fixed order (deterministic).
enum Im2Col {
    /// `cols[(c, i, j), n·P + oh·outW + ow] = x[n, c, oh·sh − ph + i, ow·sw − pw + j]` (0 outside).
    /// `usesShiftedPlanes` picks ``forwardShiftedPlane`` (default: wherever it applies, unless
    /// `usesTable` is true); `usesTable` picks the ``PatchTable`` path (default: for the other
    /// maps narrower than its limit). `serial` keeps the work on the calling thread (a caller
    /// that already split its work).
    static func forward(_ x: UnsafePointer<Float>, _ g: ConvGeometry, cols: UnsafeMutablePointer<Float>, usesTable: Bool? = nil,
                        usesShiftedPlanes: Bool? = nil, serial: Bool = false) {
        let rows = g.patch, oh = g.outH, ow = g.outW, P = g.outPlane, cols0 = g.n * P
        let shifted = usesShiftedPlanes ?? (usesTable != true)
        if shifted, g.sh == 1, g.sw == 1, ow == g.w {
            split(rows, work: rows * cols0, serial: serial) { range in
                for r in range {
                    let c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw
                    for n in 0..<g.n {
                        forwardShiftedPlane(x + (n * g.channels + c) * g.inPlane, g, i: i, j: j, into: cols + r * cols0 + n * P)
                    }
                }
            }
            return
        }
        if usesTable ?? (ow < PatchTable.maxWidth) {
            let table = PatchTable(g)
            split(rows, work: rows * cols0, serial: serial) { range in
                for r in range {
                    let c = r / (g.kh * g.kw), tap = r % (g.kh * g.kw)
                    for n in 0..<g.n {
                        table.gather(tap: tap, from: x + (n * g.channels + c) * g.inPlane, into: cols + r * cols0 + n * P)
                    }
                }
            }
            return
        }
        split(rows, work: rows * cols0, serial: serial) { range in
            for r in range {
                let c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw
                // Output columns whose input column is inside [0, w).
                let lo = max(0, (g.pw - j + g.sw - 1) / g.sw)
                let hi = min(ow, (g.w + g.pw - j + g.sw - 1) / g.sw)
                for n in 0..<g.n {
                    let plane = x + (n * g.channels + c) * g.inPlane
                    let outRow = cols + r * cols0 + n * P
                    for y in 0..<oh {
                        let dst = outRow + y * ow
                        let iy = y * g.sh - g.ph + i
                        if iy < 0 || iy >= g.h || lo >= hi {
                            dst.initialize(repeating: 0, count: ow)
                            continue
                        }
                        if lo > 0 { dst.initialize(repeating: 0, count: lo) }
                        let src = plane + iy * g.w - g.pw + j
                        if g.sw == 1 {
                            // Short runs: a loop beats a memmove call.
                            var xo = lo
                            while xo < hi { dst[xo] = src[xo]; xo += 1 }
                        } else {
                            var xo = lo
                            while xo < hi { dst[xo] = src[xo * g.sw]; xo += 1 }
                        }
                        if hi < ow { (dst + hi).initialize(repeating: 0, count: ow - hi) }
                    }
                }
            }
        }
    }

    /// One image's column row of tap `(i, j)` for a stride-1 convolution whose output rows are
    /// as long as the input rows: the plane shifted by `(i − ph)` rows and `(j − pw)` columns,
    /// i.e. one contiguous copy of the valid rows, then zeros in the padding rows and in the
    /// `|j − pw|` border columns that the shift wrapped around. The same floats as the row path.
    @inline(__always)
    static func forwardShiftedPlane(_ plane: UnsafePointer<Float>, _ g: ConvGeometry, i: Int, j: Int,
                                    into dst: UnsafeMutablePointer<Float>) {
        let ow = g.outW, oh = g.outH, d = j - g.pw
        let ylo = max(0, g.ph - i), yhi = min(oh, g.h + g.ph - i)
        guard ylo < yhi, abs(d) < ow else {
            dst.initialize(repeating: 0, count: oh * ow)
            return
        }
        if ylo > 0 { dst.initialize(repeating: 0, count: ylo * ow) }
        if yhi < oh { (dst + yhi * ow).initialize(repeating: 0, count: (oh - yhi) * ow) }
        let out = dst + ylo * ow, count = (yhi - ylo) * ow
        let src = plane + (ylo - g.ph + i) * g.w + d
        // Skip the |d| elements at the block's ends that would read outside the plane.
        if d < 0 {
            (out - d).update(from: src - d, count: count + d)
        } else {
            out.update(from: src, count: count - d)
        }
        if d != 0 {
            for y in 0..<(yhi - ylo) {
                let row = out + y * ow
                if d < 0 { row.initialize(repeating: 0, count: -d) } else { (row + ow - d).initialize(repeating: 0, count: d) }
            }
        }
    }

    /// The adjoint of ``forwardShiftedPlane``: the column row of tap `(i, j)` added to the plane
    /// shifted back, as one block. The `|j − pw|` entries per row that the forward shift
    /// wrapped around (zeros there) read no input: they are zeroed here first, so the block
    /// adds exactly the row path's terms to every element (plus zeros), in the same tap order.
    @inline(__always)
    static func backwardShiftedPlane(_ src: UnsafeMutablePointer<Float>, _ g: ConvGeometry, i: Int, j: Int,
                                     into plane: UnsafeMutablePointer<Float>) {
        let ow = g.outW, oh = g.outH, d = j - g.pw
        let ylo = max(0, g.ph - i), yhi = min(oh, g.h + g.ph - i)
        guard ylo < yhi, abs(d) < ow else { return }
        let rows = src + ylo * ow, count = (yhi - ylo) * ow
        if d != 0 {
            for y in 0..<(yhi - ylo) {
                let row = rows + y * ow
                if d < 0 { row.initialize(repeating: 0, count: -d) } else { (row + ow - d).initialize(repeating: 0, count: d) }
            }
        }
        let dst = plane + (ylo - g.ph + i) * g.w + d
        if d < 0 {
            VectorKernels.accumulate(rows - d, into: dst - d, count: count + d)
        } else {
            VectorKernels.accumulate(rows, into: dst, count: count - d)
        }
    }

    /// The adjoint of ``forward``: `dx[n, c, ·, ·] = Σ` of the column entries that read it.
    /// `cols` is scratch: the shifted-plane path (stride 1, output rows as long as input rows;
    /// `usesShiftedPlanes`, default wherever it applies) zeroes its wrapped border entries.
    static func backward(_ cols: UnsafeMutablePointer<Float>, _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>, usesTable: Bool? = nil,
                         usesShiftedPlanes: Bool? = nil, serial: Bool = false) {
        let oh = g.outH, ow = g.outW, P = g.outPlane, cols0 = g.n * P, k = g.kh * g.kw
        if usesShiftedPlanes ?? (usesTable != true), g.sh == 1, g.sw == 1, ow == g.w {
            split(g.channels, work: g.patch * cols0, serial: serial) { range in
                for c in range {
                    for n in 0..<g.n { (dx + (n * g.channels + c) * g.inPlane).initialize(repeating: 0, count: g.inPlane) }
                    for r in (c * k)..<((c + 1) * k) {
                        for n in 0..<g.n {
                            backwardShiftedPlane(cols + r * cols0 + n * P, g, i: (r / g.kw) % g.kh, j: r % g.kw,
                                                 into: dx + (n * g.channels + c) * g.inPlane)
                        }
                    }
                }
            }
            return
        }
        if usesTable ?? (ow < PatchTable.maxWidth) {
            let table = PatchTable(g)
            split(g.channels, work: g.patch * cols0, serial: serial) { range in
                for c in range {
                    for n in 0..<g.n { (dx + (n * g.channels + c) * g.inPlane).initialize(repeating: 0, count: g.inPlane) }
                    for r in (c * k)..<((c + 1) * k) {
                        for n in 0..<g.n {
                            table.scatterAdd(tap: r - c * k, from: cols + r * cols0 + n * P, into: dx + (n * g.channels + c) * g.inPlane)
                        }
                    }
                }
            }
            return
        }
        split(g.channels, work: g.patch * cols0, serial: serial) { range in
            for c in range {
                for n in 0..<g.n { (dx + (n * g.channels + c) * g.inPlane).initialize(repeating: 0, count: g.inPlane) }
                for r in (c * k)..<((c + 1) * k) {
                    let i = (r / g.kw) % g.kh, j = r % g.kw
                    let lo = max(0, (g.pw - j + g.sw - 1) / g.sw)
                    let hi = min(ow, (g.w + g.pw - j + g.sw - 1) / g.sw)
                    if lo >= hi { continue }
                    for n in 0..<g.n {
                        let plane = dx + (n * g.channels + c) * g.inPlane
                        let row = cols + r * cols0 + n * P
                        for y in 0..<oh {
                            let iy = y * g.sh - g.ph + i
                            if iy < 0 || iy >= g.h { continue }
                            let src = row + y * ow
                            let dst = plane + iy * g.w - g.pw + j
                            if g.sw == 1 {
                                VectorKernels.accumulate(src + lo, into: dst + lo, count: hi - lo)
                            } else {
                                var xo = lo
                                while xo < hi { dst[xo * g.sw] += src[xo]; xo += 1 }
                            }
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func split(_ count: Int, work: Int, serial: Bool, _ body: (Range<Int>) -> Void) {
        if serial { if count > 0 { body(0..<count) } } else { VectorKernels.parallel(count, work: work, body) }
    }

    /// `(C, N·P)` → `(N, C, P)`, adding `bias[c]` when given.
    static func channelMajorToBatchMajor(_ src: UnsafePointer<Float>, n: Int, c: Int, p: Int,
                                         bias: UnsafePointer<Float>?, into dst: UnsafeMutablePointer<Float>) {
        VectorKernels.parallel(n * c, work: n * c * p) { range in
            for plane in range {
                let b = plane / c, ch = plane % c
                let s = src + ch * n * p + b * p, d = dst + plane * p
                if let bias {
                    let v = bias[ch]
                    for i in 0..<p { d[i] = s[i] + v }
                } else {
                    d.update(from: s, count: p)
                }
            }
        }
    }

    /// `(N, C, P)` → `(C, N·P)`.
    static func batchMajorToChannelMajor(_ src: UnsafePointer<Float>, n: Int, c: Int, p: Int,
                                         into dst: UnsafeMutablePointer<Float>) {
        VectorKernels.parallel(n * c, work: n * c * p) { range in
            for plane in range {
                let b = plane / c, ch = plane % c
                (dst + ch * n * p + b * p).update(from: src + plane * p, count: p)
            }
        }
    }
}

import NormCore
