import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// The fully-connected model family, the step-interval evaluation and the activation-percentile
/// probe (BN paper Figure 1).
@Suite struct MLPAndProbeTests {
    /// 4×4 images, 3 classes: class k is bright in row k.
    static let rows: Dataset = {
        var rng = SeededGenerator(seed: 11)
        func split(_ n: Int) -> (Tensor, [Int]) {
            var labels: [Int] = [], values = [Float](repeating: 0, count: n * 16)
            for i in 0..<n {
                let k = rng.nextInt(in: 0...2)
                labels.append(k)
                for y in 0..<4 { for x in 0..<4 { values[i * 16 + y * 4 + x] = Float((y == k ? 1.0 : 0.0) + 0.4 * rng.nextNormal()) } }
            }
            return (Tensor(shape: [n, 1, 4, 4], scalars: values), labels)
        }
        let (xt, yt) = split(120), (xv, yv) = split(40)
        return Dataset(name: "rows", trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv, classes: 3,
                       contentHash: Dataset.computeContentHash(trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv, classes: 3))
    }()

    static func mlp(_ norm: NormSpec?, hidden: [Int] = [5, 4], activation: ActivationKind = .sigmoid) -> ModelSpec {
        .mlp(inputShape: [1, 4, 4], classes: 3, hidden: hidden, norm: norm, activation: activation)
    }

    @Test func shapesNamesAndInitialization() throws {
        let model = try Model(spec: Self.mlp(NormSpec("batch_norm"), hidden: [7, 6, 5]), registry: Builtins.registry, seed: 1)
        #expect(model.layers.map(\.name) == ["flatten", "blocks.0.linear", "blocks.0.norm", "blocks.0.act",
                                             "blocks.1.linear", "blocks.1.norm", "blocks.1.act",
                                             "blocks.2.linear", "blocks.2.norm", "blocks.2.act", "head", "classifier"])
        #expect(model.denseBlocks.map { $0.linear.outFeatures } == [7, 6, 5] && model.blocks.isEmpty && model.residualBlocks.isEmpty)
        #expect(model.denseBlocks.map { $0.linear.inFeatures } == [16, 7, 6] && model.classifier.inFeatures == 5)
        #expect(model.normSlots.map(\.shape) == [FeatureShape(channels: 7, spatial: []), FeatureShape(channels: 6, spatial: []),
                                                  FeatureShape(channels: 5, spatial: [])])
        #expect(model.denseBlocks.allSatisfy { $0.activation is Sigmoid })
        #expect(model.parameterCount == (16 * 7 + 7) + (7 * 6 + 6) + (6 * 5 + 5) + 2 * (7 + 6 + 5) + (5 * 3 + 3))
        let logits = try model.forward(Self.rows.trainInputs)
        #expect(logits.shape == [120, 3])
        for b in model.denseBlocks { #expect(b.linear.bias!.value.scalars.allSatisfy { $0 == 0 }) }
        // N(0, 1/fan_in) weights (gain 1 for sigmoid): the sample std of 7·16 draws is near 1/4
        let w = model.denseBlocks[0].linear.weight.value.scalars.map(Double.init)
        let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
        #expect(std > 0.15 && std < 0.35)
        let plain = try Model(spec: Self.mlp(nil), registry: Builtins.registry, seed: 1)
        #expect(plain.normSlots.isEmpty && plain.layers.map(\.name).contains("blocks.1.act"))
        let after = try Model(spec: { var s = Self.mlp(NormSpec("batch_norm")); s.normPosition = .after; return s }(),
                              registry: Builtins.registry, seed: 1)
        #expect(after.layers.map(\.name).prefix(4) == ["flatten", "blocks.0.linear", "blocks.0.act", "blocks.0.norm"])
    }

    @Test func badSpecsAreRefused() throws {
        #expect(throws: NetError.self) { _ = try Model(spec: Self.mlp(nil, hidden: []), registry: Builtins.registry, seed: 0) }
        #expect(throws: NetError.self) { _ = try Model(spec: Self.mlp(nil, hidden: [4, 0]), registry: Builtins.registry, seed: 0) }
        var frozen = Self.mlp(NormSpec("batch_norm"))
        frozen.freeze.frozenStages = 0
        #expect(throws: NetError.self) { _ = try Model(spec: frozen, registry: Builtins.registry, seed: 0) }
        var conv = ModelSpec(inputShape: [1, 4, 4], classes: 3)
        conv.hidden = [4]
        #expect(throws: NetError.self) { _ = try Model(spec: conv, registry: Builtins.registry, seed: 0) }
        #expect(try ModelName(parsing: "MLP").family == .mlp)
    }

    /// Central finite differences of `Σ r·logits` against the model's backward, for every
    /// parameter of a BN (train mode) and a plain sigmoid MLP.
    @Test(arguments: [true, false]) func finiteDifferenceGradients(withNorm: Bool) throws {
        let model = try Model(spec: Self.mlp(withNorm ? NormSpec("batch_norm") : nil), registry: Builtins.registry, seed: 4)
        let x = Tensor(shape: [6, 1, 4, 4], scalars: Array(Self.rows.trainInputs.scalars.prefix(96)))
        var rng = SeededGenerator(seed: 9)
        let r = Tensor.randomNormal([6, 3], using: &rng)
        let saved = model.namedBuffers.map { ($0.buffer, $0.buffer.value) }
        func objective() throws -> Double {
            defer { for (b, v) in saved { b.value = v } }
            let y = try model.forward(x)
            return (0..<y.count).reduce(0.0) { $0 + Double(y[flat: $1]) * Double(r[flat: $1]) }
        }
        _ = try objective()
        try model.backward(r)
        for (buffer, value) in saved { buffer.value = value }
        let h: Float = 1e-2
        for (name, p, _) in model.namedParameters {
            let analytic = p.gradient!.scalars.map(Double.init)
            let numeric = try centralDifferences(of: p, h: h, objective)
            if withNorm && name.hasSuffix("linear.bias") {
                // a bias before a train-mode BN is cancelled by the mean subtraction (BN paper §3.2): both ≈ 0
                #expect(analytic.allSatisfy { abs($0) < 1e-5 } && numeric.allSatisfy { abs($0) < 1e-2 }, "\(name)")
            } else {
                #expect(relativeError(numeric, analytic) < 2e-2, "\(name)")
            }
        }
    }

    @Test func percentilesFollowNumpysLinearInterpolation() {
        // numpy.percentile(a, q) with the default method='linear', computed with numpy 1.26
        let a = [3.5, -1, 0, 7, 2, 2, 10, -4.25, 1].sorted()
        let expected: [(Double, Double)] = [(0, -4.25), (15, -0.8), (50, 2.0), (85, 6.299999999999999), (100, 10.0)]
        for (q, v) in expected { #expect(abs(ActivationProbe.percentile(sorted: a, q) - v) < 1e-12, "q=\(q)") }
        let b = (0..<10).map { Double($0 * $0) / 7 }
        for (q, v) in [(15.0, 0.2928571428571428), (50, 2.928571428571429), (85, 8.39285714285714)] {
            #expect(abs(ActivationProbe.percentile(sorted: b, q) - v) < 1e-12)
        }
        #expect(ActivationProbe.percentile(sorted: [2], 15) == 2 && ActivationProbe.percentile(sorted: [2], 85) == 2)
        for (q, v) in [(15.0, 1.6), (50, 3.0), (85, 4.4)] { #expect(abs(ActivationProbe.percentile(sorted: [1, 5], q) - v) < 1e-12) }
        #expect(ActivationProbe.percentile(sorted: [], 50).isNaN)
    }

    func config(probe: ActivationProbe?, evaluation: StepEvaluation = StepEvaluation()) -> TrainingConfig {
        var c = TrainingConfig(batchSize: 12, duration: .steps(20), seed: 5,
                               optimizer: SGDConfig(learningRate: 0.5, momentum: 0, weightDecay: 0, nesterov: false),
                               schedule: LRSchedule(.constant), evaluateEachEpoch: false)
        c.activationProbe = probe
        c.stepEvaluation = evaluation
        return c
    }

    /// The probe records what it says (the percentiles of that unit's input over the seeded
    /// probe set, recomputed here from the trained model), and probing leaves the training
    /// bit-identical: same losses, parameters and running statistics as a run without it.
    @Test func probeRecordsTheUnitsPercentilesAndChangesNothing() throws {
        let probe = ActivationProbe(layer: "blocks.1.act", unit: 2, every: 5, examples: 30, mode: .train)
        let data = Self.rows
        let a = try Model(spec: Self.mlp(NormSpec("batch_norm")), registry: Builtins.registry, seed: 2)
        let ra = try Trainer(model: a, dataset: data, config: config(probe: probe, evaluation: StepEvaluation(every: 10, earlyStep: 5))).run()
        let b = try Model(spec: Self.mlp(NormSpec("batch_norm")), registry: Builtins.registry, seed: 2)
        let rb = try Trainer(model: b, dataset: data, config: config(probe: nil)).run()
        #expect(ra.losses == rb.losses)
        for ((n, p), (_, q)) in zip(a.namedParameters.map { ($0.name, $0.parameter) }, b.namedParameters.map { ($0.name, $0.parameter) }) {
            #expect(p.value.isBitIdentical(to: q.value), "\(n)")
        }
        for (x, y) in zip(a.namedBuffers, b.namedBuffers) { #expect(x.buffer.value.isBitIdentical(to: y.buffer.value), "\(x.name)") }

        let curve = try #require(ra.activationPercentiles)
        #expect(curve.steps == [0, 5, 10, 15, 20] && curve.layer == "blocks.1.act" && curve.unit == 2 && curve.examples == 30)
        // the last point, recomputed: unit 2 of blocks.1.act's input (= blocks.1.norm's output) over the probe set
        let indices = probe.probeIndices(testCount: data.testLabels.count, shuffleSeed: 5)
        #expect(indices.count == 30 && Set(indices).count == 30 && indices == indices.sorted())
        let x = Tensor(shape: [30, 1, 4, 4], scalars: indices.flatMap { i in data.testInputs.scalars[(i * 16)..<(i * 16 + 16)] })
        let saved = a.namedBuffers.map { ($0.buffer, $0.buffer.value) }
        var h = x
        for (name, layer) in a.layers { if name == "blocks.1.act" { break }; h = try layer.forward(h, mode: .train) }
        for (buf, v) in saved { buf.value = v }
        let unit = (0..<30).map { Double(h[flat: $0 * 4 + 2]) }.sorted()
        for (k, q) in [15.0, 50, 85].enumerated() {
            #expect(curve.values[k].last == ActivationProbe.percentile(sorted: unit, q))
        }
        #expect(curve.p15.indices.allSatisfy { curve.p15[$0] <= curve.p50[$0] && curve.p50[$0] <= curve.p85[$0] })
        let spreads = zip(curve.p85, curve.p15).map { $0 - $1 }
        #expect(curve.spreadDrift == spreads.max()! - spreads.min()!)
        #expect(curve.medianDrift == curve.p50.max()! - curve.p50.min()!)

        // step evaluation: every 10 steps (0, 10, 20) and the early step 5, all eval-mode accuracies
        #expect(ra.stepEvaluations.map(\.step) == [0, 10, 20])
        #expect(ra.stepEvaluations.last!.testAccuracy == ra.testAccuracy)
        #expect(ra.earlyTestAccuracy != nil && (0...1).contains(ra.earlyTestAccuracy!))
        // seeded: the same run again gives the same curve
        let c = try Model(spec: Self.mlp(NormSpec("batch_norm")), registry: Builtins.registry, seed: 2)
        let rc = try Trainer(model: c, dataset: data, config: config(probe: probe)).run()
        #expect(rc.activationPercentiles == curve)
    }

    @Test func badProbesAreRefused() throws {
        let model = try Model(spec: Self.mlp(nil), registry: Builtins.registry, seed: 0)
        #expect(try ActivationProbe().resolve(in: model) == "blocks.1.act")
        #expect(throws: NetError.self) { _ = try ActivationProbe(layer: "classifier").resolve(in: model) }
        #expect(throws: NetError.self) { _ = try ActivationProbe(layer: "nope").resolve(in: model) }
        #expect(throws: NetError.self) { _ = try ActivationProbe(unit: 4).resolve(in: model) }   // blocks.1 has 4 units
        #expect(throws: NetError.self) { try ActivationProbe(every: 0).validate() }
        #expect(throws: NetError.self) { try ActivationProbe(examples: 1).validate() }
        var late = config(probe: nil, evaluation: StepEvaluation(earlyStep: 21))
        #expect(throws: NetError.self) { _ = try Trainer(model: model, dataset: Self.rows, config: late).run() }
        late.stepEvaluation = StepEvaluation(every: 0)
        #expect(throws: NetError.self) { try late.validate() }
    }
}
