import Testing
import NormCore
@testable import NormNet

/// The table path of im2col / col2im (small maps) against the row path: the same floats,
/// bit for bit, forward and backward, for every stride, padding and kernel shape here.
@Suite struct PatchTableTests {
    static let geometries: [ConvGeometry] = [
        ConvGeometry(n: 3, channels: 2, h: 8, w: 8, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
        ConvGeometry(n: 2, channels: 3, h: 7, w: 7, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1),
        ConvGeometry(n: 2, channels: 2, h: 5, w: 6, kh: 3, kw: 2, sh: 2, sw: 1, ph: 1, pw: 0),
        ConvGeometry(n: 4, channels: 1, h: 1, w: 11, kh: 1, kw: 5, sh: 1, sw: 3, ph: 0, pw: 2),
        ConvGeometry(n: 1, channels: 2, h: 4, w: 4, kh: 5, kw: 5, sh: 1, sw: 1, ph: 2, pw: 2),
    ]

    @Test(arguments: geometries) func tablePathEqualsRowPath(_ g: ConvGeometry) {
        var rng = SeededGenerator(seed: 11)
        let x = Tensor.randomNormal([g.n, g.channels, g.h, g.w], using: &rng)
        let count = g.patch * g.n * g.outPlane
        var a = [Float](repeating: .nan, count: count), b = [Float](repeating: -.nan, count: count)
        x.withUnsafeBufferPointer { xb in
            a.withUnsafeMutableBufferPointer { Im2Col.forward(xb.baseAddress!, g, cols: $0.baseAddress!, usesTable: true) }
            b.withUnsafeMutableBufferPointer { Im2Col.forward(xb.baseAddress!, g, cols: $0.baseAddress!, usesTable: false, usesShiftedPlanes: false) }
        }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))

        var cols = Tensor.randomNormal([count], using: &rng).scalars
        var da = [Float](repeating: .nan, count: x.count), db = [Float](repeating: .nan, count: x.count)
        cols.withUnsafeMutableBufferPointer { cb in
            da.withUnsafeMutableBufferPointer { Im2Col.backward(cb.baseAddress!, g, dx: $0.baseAddress!, usesTable: true) }
            db.withUnsafeMutableBufferPointer {
                Im2Col.backward(cb.baseAddress!, g, dx: $0.baseAddress!, usesTable: false, usesShiftedPlanes: false)
            }
        }
        #expect(da.map(\.bitPattern) == db.map(\.bitPattern))
    }

    static let sameGeometries: [ConvGeometry] = [
        ConvGeometry(n: 2, channels: 2, h: 5, w: 20, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
        ConvGeometry(n: 2, channels: 1, h: 6, w: 17, kh: 5, kw: 5, sh: 1, sw: 1, ph: 2, pw: 2),
        ConvGeometry(n: 1, channels: 2, h: 4, w: 18, kh: 3, kw: 1, sh: 1, sw: 1, ph: 1, pw: 0),
        ConvGeometry(n: 3, channels: 1, h: 1, w: 40, kh: 1, kw: 3, sh: 1, sw: 1, ph: 0, pw: 1),
        ConvGeometry(n: 1, channels: 1, h: 2, w: 2, kh: 7, kw: 7, sh: 1, sw: 1, ph: 3, pw: 3),
        ConvGeometry(n: 3, channels: 2, h: 7, w: 7, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
        ConvGeometry(n: 2, channels: 3, h: 14, w: 14, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1),
    ]

    /// The shifted-plane im2col and col2im (stride 1, output rows as long as input rows) against the row path.
    @Test(arguments: sameGeometries) func shiftedPlanesEqualRowPath(_ g: ConvGeometry) {
        var rng = SeededGenerator(seed: 13)
        let x = Tensor.randomNormal([g.n, g.channels, g.h, g.w], using: &rng)
        let count = g.patch * g.n * g.outPlane
        var a = [Float](repeating: .nan, count: count), b = [Float](repeating: -.nan, count: count)
        x.withUnsafeBufferPointer { xb in
            a.withUnsafeMutableBufferPointer {
                Im2Col.forward(xb.baseAddress!, g, cols: $0.baseAddress!, usesTable: false, usesShiftedPlanes: true)
            }
            b.withUnsafeMutableBufferPointer {
                Im2Col.forward(xb.baseAddress!, g, cols: $0.baseAddress!, usesTable: false, usesShiftedPlanes: false)
            }
        }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))

        // Backward: the same sums as the row path (the shifted path zeroes wrapped entries of
        // its scratch copy of the columns first; adding those zeros changes no value).
        let c = Tensor.randomNormal([count], using: &rng).scalars
        var shiftedCols = c, rowCols = c
        var da = [Float](repeating: .nan, count: x.count), db = [Float](repeating: .nan, count: x.count)
        shiftedCols.withUnsafeMutableBufferPointer { cb in
            da.withUnsafeMutableBufferPointer { Im2Col.backward(cb.baseAddress!, g, dx: $0.baseAddress!, usesTable: false, usesShiftedPlanes: true) }
        }
        rowCols.withUnsafeMutableBufferPointer { cb in
            db.withUnsafeMutableBufferPointer { Im2Col.backward(cb.baseAddress!, g, dx: $0.baseAddress!, usesTable: false, usesShiftedPlanes: false) }
        }
        #expect(da.map(\.bitPattern) == db.map(\.bitPattern))
    }

    /// The adjoint identity ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ in float64, on the table path.
    @Test(arguments: geometries) func tableBackwardIsTheAdjoint(_ g: ConvGeometry) {
        var rng = SeededGenerator(seed: 12)
        let x = Tensor.randomNormal([g.n, g.channels, g.h, g.w], using: &rng)
        let count = g.patch * g.n * g.outPlane
        let c = Tensor.randomNormal([count], using: &rng)
        var cols = [Float](repeating: 0, count: count), dx = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in cols.withUnsafeMutableBufferPointer { Im2Col.forward(xb.baseAddress!, g, cols: $0.baseAddress!, usesTable: true) } }
        var scratch = c.scalars
        scratch.withUnsafeMutableBufferPointer { cb in dx.withUnsafeMutableBufferPointer { Im2Col.backward(cb.baseAddress!, g, dx: $0.baseAddress!, usesTable: true) } }
        let lhs = zip(cols, c.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.scalars, dx).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)))
    }
}
