import NormCore
import NormNet

/// One training step of a model on a fixed batch: forward, softmax cross-entropy, backward,
/// SGD update — what `Trainer` does per step, without the batch gathering.
///
/// ``run()`` goes through `Model.forward`/`backward` (the engine's own path);
/// ``runTimed(into:)`` walks the same layers one by one with a clock around each call and
/// adds the seconds to a per-kind total.
final class TrainStep {
    let model: Model
    let optimizer: SGD
    let input: Tensor
    let labels: [Int]
    /// The loss of the last step.
    private(set) var loss = 0.0

    init(model: Model, input: Tensor, labels: [Int], optimizer: SGDConfig = SGDConfig()) throws {
        self.model = model
        self.input = input
        self.labels = labels
        self.optimizer = try SGD(optimizer, model: model)
        model.setMode(.train)
    }

    /// A seeded batch: standard normal inputs, uniform labels.
    static func batch(_ size: Int, sampleShape: [Int], classes: Int, seed: UInt64) -> (Tensor, [Int]) {
        var rng = SeededGenerator(seed: seed)
        let x = Tensor.randomNormal([size] + sampleShape, using: &rng)
        let labels = (0..<size).map { _ in rng.nextInt(in: 0...(classes - 1)) }
        return (x, labels)
    }

    func run() throws {
        let logits = try model.forward(input)
        let ce = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels)
        try model.backward(ce.gradient)
        optimizer.step()
        loss = ce.loss
    }

    /// The same step, layer by layer, adding each call's seconds to `seconds[kind]`. A
    /// residual block is walked through (its sub-layers timed by kind, its addition as
    /// `residual`) in exactly the order of `ResidualBlock.forward`/`backward`.
    func runTimed(into seconds: inout [LayerKind: Double]) throws {
        var h = input
        for (_, layer) in model.layers { h = try timedForward(layer, h, &seconds) }
        var t0 = Timing.now()
        let ce = try SoftmaxCrossEntropy.evaluate(logits: h, labels: labels)
        seconds[.loss, default: 0] += Timing.now() - t0
        var g = ce.gradient
        for (_, layer) in model.layers.reversed() { g = try timedBackward(layer, g, &seconds) }
        t0 = Timing.now()
        optimizer.step()
        seconds[.optimizer, default: 0] += Timing.now() - t0
        loss = ce.loss
    }

    /// Sums written by the timed residual blocks (per block and use, reused across steps).
    private var sums: [ObjectIdentifier: Tensor] = [:]

    private func timedForward(_ layer: Layer, _ x: Tensor, _ seconds: inout [LayerKind: Double]) throws -> Tensor {
        guard let block = layer as? ResidualBlock else {
            let t0 = Timing.now()
            let y = try layer.forward(x, mode: .train)
            seconds[LayerKind(layer), default: 0] += Timing.now() - t0
            return y
        }
        var p = x
        for (_, l) in block.pre { p = try timedForward(l, p, &seconds) }
        var r = p
        for (_, l) in block.branch { r = try timedForward(l, r, &seconds) }
        var s = Self.shortcutTakesPreactivated(block) ? p : x
        for (_, l) in block.shortcut { s = try timedForward(l, s, &seconds) }
        let y = try timedAdd(r, s, key: block, &seconds)
        return try block.post.map { try timedForward($0, y, &seconds) } ?? y
    }

    private func timedBackward(_ layer: Layer, _ g: Tensor, _ seconds: inout [LayerKind: Double]) throws -> Tensor {
        guard let block = layer as? ResidualBlock else {
            let t0 = Timing.now()
            let gx = try layer.backward(g)
            seconds[LayerKind(layer), default: 0] += Timing.now() - t0
            return gx
        }
        let g0 = try block.post.map { try timedBackward($0, g, &seconds) } ?? g
        var gr = g0
        for (_, l) in block.branch.reversed() { gr = try timedBackward(l, gr, &seconds) }
        var gs = g0
        for (_, l) in block.shortcut.reversed() { gs = try timedBackward(l, gs, &seconds) }
        var gx: Tensor
        if Self.shortcutTakesPreactivated(block) {
            gx = try timedAdd(gr, gs, key: block.branch.first!.layer, &seconds)
            for (_, l) in block.pre.reversed() { gx = try timedBackward(l, gx, &seconds) }
            return block.computesInputGradient ? gx : .skippedGradient
        }
        gx = gr
        for (_, l) in block.pre.reversed() { gx = try timedBackward(l, gx, &seconds) }
        guard block.computesInputGradient else { return .skippedGradient }
        return try timedAdd(gx, gs, key: block.shortcut.first?.layer ?? block.branch.last!.layer, &seconds)
    }

    private static func shortcutTakesPreactivated(_ block: ResidualBlock) -> Bool {
        block.preActivation && block.shortcut.contains { $0.layer is Convolution }
    }

    /// `a + b` into a tensor of its own (a different one per `key`), timed as `residual`.
    private func timedAdd(_ a: Tensor, _ b: Tensor, key: AnyObject, _ seconds: inout [LayerKind: Double]) throws -> Tensor {
        guard a.shape == b.shape else { throw BenchError("residual block: shapes \(a.shape) and \(b.shape) differ") }
        let id = ObjectIdentifier(key)
        if sums[id]?.shape != a.shape { sums[id] = Tensor.zeros(a.shape) }
        let t0 = Timing.now()
        var out = sums.removeValue(forKey: id)!
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
            for i in 0..<op.count { op[i] = ap[i] + bp[i] }
        }}}
        sums[id] = out
        seconds[.residual, default: 0] += Timing.now() - t0
        return out
    }

    /// Every parameter and buffer value, in model order (for the bit-identity check).
    var state: [Tensor] {
        model.namedParameters.map(\.parameter.value) + model.namedBuffers.map(\.buffer.value)
    }
}
