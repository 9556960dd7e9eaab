import NormCore
import NormNet
import Testing

/// Layers write their outputs into reused blocks: no allocation (or copy-on-write copy) per
/// call in steady state, and never into a block a caller still holds.
@Suite struct OutputReuseTests {
    @Test func reluReusesItsOutputBlockOnceTheResultIsDropped() throws {
        let relu = ReLU()
        var rng = SeededGenerator(seed: 1)
        let x = Tensor.randomNormal([4, 3, 8], using: &rng)
        var first: TensorStorage? = try relu.forward(x, mode: .train).storage
        let address = first!.base
        first = nil
        // Two slots: the next two calls may rotate, but one of them must land on the old block.
        let a = try relu.forward(x, mode: .train)
        let b = try relu.forward(x, mode: .train)
        #expect(a.storage.base == address || b.storage.base == address)
        #expect(a.storage !== b.storage)  // a is still held: b must not overwrite it
        #expect(a.isBitIdentical(to: b))
    }

    @Test func aHeldResultIsNeverOverwritten() throws {
        let relu = ReLU()
        var rng = SeededGenerator(seed: 2)
        let x1 = Tensor.randomNormal([2, 2, 5], using: &rng), x2 = Tensor.randomNormal([2, 2, 5], using: &rng)
        let y1 = try relu.forward(x1, mode: .train)
        let snapshot = y1.scalars
        for _ in 0..<3 { _ = try relu.forward(x2, mode: .train) }
        #expect(y1.scalars == snapshot)
    }
}
