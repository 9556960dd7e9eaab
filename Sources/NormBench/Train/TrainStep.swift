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

    /// The same step, layer by layer, adding each call's seconds to `seconds[kind]`.
    func runTimed(into seconds: inout [LayerKind: Double]) throws {
        var h = input
        for (_, layer) in model.layers {
            let t0 = Timing.now()
            h = try layer.forward(h, mode: .train)
            seconds[LayerKind(layer), default: 0] += Timing.now() - t0
        }
        var t0 = Timing.now()
        let ce = try SoftmaxCrossEntropy.evaluate(logits: h, labels: labels)
        seconds[.loss, default: 0] += Timing.now() - t0
        var g = ce.gradient
        for (_, layer) in model.layers.reversed() {
            let t0 = Timing.now()
            g = try layer.backward(g)
            seconds[LayerKind(layer), default: 0] += Timing.now() - t0
        }
        t0 = Timing.now()
        optimizer.step()
        seconds[.optimizer, default: 0] += Timing.now() - t0
        loss = ce.loss
    }

    /// Every parameter and buffer value, in model order (for the bit-identity check).
    var state: [Tensor] {
        model.namedParameters.map(\.parameter.value) + model.namedBuffers.map(\.buffer.value)
    }
}
