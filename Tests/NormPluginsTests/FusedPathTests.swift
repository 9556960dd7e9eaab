import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// Plugin-level properties of the fused kernel paths (issue #7): state kept between forward
/// and backward, reused output blocks for parameter gradients, and paths that must agree.
@Suite("Fused kernel paths")
struct FusedPathTests {
    @Test("GroupNorm on (N, C) is LayerNorm on (N·G, C/G) without affine, bit for bit (group rows)",
          arguments: [[256, 1024, 32], [6, 40, 4], [40, 96, 3]])
    func groupRowsAreLayerNormRows(_ a: [Int]) throws {
        let (n, c, g) = (a[0], a[1], a[2])
        var rng = TestRNG(seed: UInt64(n * c))
        let x = rng.normalTensor([n, c], mean: 2, std: 3), dy = rng.normalTensor([n, c])
        let gn = try makeNorm("gn", ["num_groups": .integer(g), "affine": .bool(false)], input: [n, c])
        let ln = try makeNorm("ln", ["affine": .bool(false)], input: [n * g, c / g])
        let yg = try gn.forward(x, mode: .train).copy, gxg = try gn.backward(dy).copy
        let yl = try ln.forward(x.reshaped([n * g, c / g]), mode: .train).copy
        let gxl = try ln.backward(dy.reshaped([n * g, c / g])).copy
        expectBitIdentical(yg, yl.reshaped([n, c]), "output")
        expectBitIdentical(gxg, gxl.reshaped([n, c]), "dL/dx")
    }

    @Test("FRN backward uses the τ of its forward, as PyTorch's autograd does")
    func frnBackwardUsesForwardTau() throws {
        var rng = TestRNG(seed: 3)
        let shape = [4, 6, 5, 5]
        let x = rng.normalTensor(shape), dy = rng.normalTensor(shape)
        func run(changeTau: Bool) throws -> Tensor {
            let frn = try makeNorm("frn", [:], input: shape)
            try frn.requireParameter("tau").value = Tensor(shape: [6], scalars: [0.1, -0.2, 0.3, 0, 0.5, -0.4])
            _ = try frn.forward(x, mode: .train)
            if changeTau { try frn.requireParameter("tau").value = Tensor(repeating: 5, shape: [6]) }
            return try frn.backward(dy).copy
        }
        expectBitIdentical(try run(changeTau: true), try run(changeTau: false), "dL/dx")
    }

    @Test("LayerNorm's parameter gradients: a held gradient keeps its values through later backward passes")
    func heldLayerNormGradients() throws {
        var rng = TestRNG(seed: 4)
        let shape = [8, 16, 7, 7]
        let ln = try makeNorm("ln", [:], input: shape)
        let x = rng.normalTensor(shape)
        _ = try ln.forward(x, mode: .train)
        _ = try ln.backward(rng.normalTensor(shape))
        let w1 = try #require(try ln.requireParameter("weight").gradient), b1 = try #require(try ln.requireParameter("bias").gradient)
        let w1Copy = w1.copy, b1Copy = b1.copy
        for _ in 0..<3 {
            _ = try ln.forward(x, mode: .train)
            _ = try ln.backward(rng.normalTensor(shape))
        }
        expectBitIdentical(w1, w1Copy, "held dL/dw")
        expectBitIdentical(b1, b1Copy, "held dL/db")
        let w4 = try #require(try ln.requireParameter("weight").gradient)
        #expect(!w4.isBitIdentical(to: w1))
    }
}
