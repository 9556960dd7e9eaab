import Foundation
import Testing
import NormCore
import NormPlugins
import NormPython
@testable import NormNet

/// The CIFAR-style ResNet family (He et al. 2016 §4.2; He et al. 2016b; Goyal et al. 2017).
@Suite struct ResNetTests {
    let registry = Builtins.registry

    func tinySpec(norm: NormSpec? = NormSpec("bn"), input: [Int] = [2, 6, 6], depth: Int = 8, width: Int = 4,
                  shortcut: ShortcutKind = .a, preact: Bool = false, zeroInit: Bool = false, classes: Int = 3) -> ModelSpec {
        ModelSpec.resNet(inputShape: input, classes: classes, depth: depth, width: width, norm: norm,
                         options: ResNetOptions(shortcut: shortcut, preActivation: preact, zeroInitResidual: zeroInit))
    }

    func randomInput(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return Tensor.randomNormal(shape, using: &rng)
    }

    // MARK: - Shapes and size

    @Test(arguments: [[1, 28, 28], [3, 32, 32], [1, 8, 8], [1, 40], [1, 1, 1]])
    func resNet20Shapes(_ input: [Int]) throws {
        let model = try Model(spec: .resNet(inputShape: input, classes: 10), registry: registry, seed: 1)
        let expected: [Int] = input.dropFirst().map { ($0 + 3) / 4 }   // two stride-2 stages: ceil(ceil(s/2)/2)
        #expect(model.featureShape == [64] + expected)
        #expect(model.residualBlocks.count == 9 && model.blocks.isEmpty)
        #expect(model.residualBlocks.map(\.stage) == [1, 1, 1, 2, 2, 2, 3, 3, 3])
        #expect(try model.forward(randomInput([2] + input, seed: 2)).shape == [2, 10])
        // The norm slot after every convolution: stem + 2 per block (option A has no projection).
        #expect(model.normSlots.count == 1 + 2 * 9)
    }

    /// The paper's Table 6: ResNet-20 has 0.27M parameters (3-channel input, 10 classes, option A).
    @Test func resNet20ParameterCount() throws {
        let model = try Model(spec: .resNet(inputShape: [3, 32, 32], classes: 10), registry: registry, seed: 1)
        // convs 432 + 13,824 + 50,688 + 202,752; BN 2·(16 + 6·16 + 6·32 + 6·64) = 1,376; linear 650.
        #expect(model.parameterCount == 269_722)
        #expect((265_000...275_000).contains(model.parameterCount))
        let deep = try Model(spec: .resNet(inputShape: [3, 32, 32], classes: 10, depth: 56), registry: registry, seed: 1)
        #expect(deep.residualBlocks.count == 27)
        #expect((845_000...865_000).contains(deep.parameterCount))   // paper: 0.85M
    }

    @Test func namesAndDecay() throws {
        let model = try Model(spec: tinySpec(shortcut: .b), registry: registry, seed: 1)
        let names = model.namedParameters.map(\.name)
        for n in ["stem.conv.weight", "stem.norm.weight", "layer1.0.conv1.weight", "layer1.0.norm2.bias",
                  "layer2.0.shortcut.conv.weight", "layer3.0.shortcut.norm.weight", "classifier.weight"] {
            #expect(names.contains(n), "\(n)")
        }
        #expect(!names.contains("layer1.0.shortcut.conv.weight"))   // same shape: identity
        #expect(model.namedBuffers.map(\.name).contains("layer2.0.shortcut.norm.running_mean"))
        #expect(model.normSlots.map(\.name).contains("layer3.0.shortcut.norm"))
        #expect(model.namedParameters.filter(\.decays).allSatisfy { $0.name.hasSuffix("conv.weight") || $0.name.hasSuffix("conv1.weight")
            || $0.name.hasSuffix("conv2.weight") || $0.name == "classifier.weight" })
        #expect(model.weightNorm > 0)
    }

    // MARK: - Gradients

    struct GradientCase: Sendable, CustomTestStringConvertible {
        let norm: NormSpec?
        let shortcut: ShortcutKind
        let preact: Bool
        var testDescription: String { "\(norm?.name ?? "none") \(shortcut.rawValue) preact=\(preact)" }
    }

    /// Finite differences of `L = Σ r·logits` (objective accumulated in float64) against the
    /// analytic backward of a whole ResNet-8 at width 4, for a seeded sample of every
    /// parameter tensor's entries. Central differences with h = 1e-2 on float32 activations:
    /// truncation O(h²) and rounding ≈ 1e-7·|L|/h ≈ 1e-4 relative, while a wrong term in the
    /// residual sum or a shortcut gives errors of order 1, so 1e-2 separates them (measured
    /// worst case over these four nets: 4.2e-3, on small-magnitude gradients). Sigmoid
    /// activations keep the objective smooth (a ReLU kink crossed by a ±h step would add
    /// spurious O(1) errors to single entries); the ReLU case is checked below at the block level.
    @Test(arguments: [
        GradientCase(norm: NormSpec("bn"), shortcut: .a, preact: false),
        GradientCase(norm: NormSpec("gn", options: ["num_groups": .integer(2)]), shortcut: .b, preact: false),
        GradientCase(norm: NormSpec("bn"), shortcut: .b, preact: true),
        GradientCase(norm: NormSpec("gn", options: ["num_groups": .integer(2)]), shortcut: .a, preact: true),
    ])
    func finiteDifferenceGradients(_ c: GradientCase) throws {
        var spec = tinySpec(norm: c.norm, shortcut: c.shortcut, preact: c.preact)
        spec.activation = .sigmoid
        let model = try Model(spec: spec, registry: registry, seed: 5)
        model.setMode(.train)
        var rng = SeededGenerator(seed: 9)
        // Non-trivial affines so that scale and shift gradients are generic.
        for (name, p, _) in model.namedParameters where name.contains("norm") {
            p.value = Tensor.randomNormal(p.value.shape, mean: name.hasSuffix("weight") ? 1 : 0, std: 0.3, using: &rng)
        }
        let x = Tensor.randomNormal([4, 2, 6, 6], using: &rng)
        let r = Tensor.randomNormal([4, 3], using: &rng)
        func objective() throws -> Double {
            let y = try model.forward(x)
            var s = 0.0
            for i in 0..<y.count { s += Double(y[flat: i]) * Double(r[flat: i]) }
            return s
        }
        _ = try objective()
        try model.backward(r)
        let h: Float = 1e-2
        var checked = 0
        for (name, p, _) in model.namedParameters {
            let analytic = try #require(p.gradient, "\(name) has no gradient").scalars.map(Double.init)
            let picks = (0..<min(6, p.value.count)).map { _ in rng.nextInt(in: 0...(p.value.count - 1)) }
            var numeric: [Double] = [], expected: [Double] = []
            for i in picks {
                let v = p.value[flat: i]
                p.value[flat: i] = v + h; let lp = try objective()
                p.value[flat: i] = v - h; let lm = try objective()
                p.value[flat: i] = v
                numeric.append((lp - lm) / Double(2 * h))
                expected.append(analytic[i])
            }
            let e = relativeError(numeric, expected)
            #expect(e < 1e-2, "\(name): relative error \(e), numeric \(numeric), analytic \(expected)")
            checked += 1
        }
        #expect(checked == model.namedParameters.count)
    }

    /// The block's input (and parameter) gradients with ReLU, for every shortcut variant: one
    /// strided block under central differences with h = 1e-3, small enough that no ±h step
    /// crosses a ReLU kink for these distinct inputs (h = 1e-2 does cross some: errors 4e-2).
    /// Float32 rounding then costs ≈ 6e-8·|L|/h per difference; the measured worst relative
    /// error is 3e-3, and a missing or doubled path of the sum gives O(1), hence 1e-2.
    @Test(arguments: [(ShortcutKind.a, false), (.b, false), (.a, true), (.b, true)])
    func blockInputGradient(_ shortcut: ShortcutKind, _ preact: Bool) throws {
        let spec = tinySpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)]), shortcut: shortcut, preact: preact)
        let model = try Model(spec: spec, registry: registry, seed: 3)
        let block = model.residualBlocks[1]   // layer2.0: strided, 4 -> 8 channels
        #expect(block.stage == 2 && block.index == 0)
        let errors = try gradientErrors(block, input: distinctTensor([2, 4, 6, 6], step: 0.05, seed: 4), h: 1e-3)
        #expect(errors["input"] != nil)
        for (name, e) in errors { #expect(e < 1e-2, "\(name): \(e)") }
    }

    // MARK: - Shortcuts

    @Test func optionAIsSubsampledZeroPaddedIdentity() throws {
        let pad = try ZeroPadShortcut(inChannels: 2, outChannels: 4, stride: 2)
        let x = distinctTensor([1, 2, 5, 5], seed: 1)
        let y = try pad.forward(x, mode: .train)
        #expect(y.shape == [1, 4, 3, 3])
        for c in 0..<4 { for i in 0..<3 { for j in 0..<3 {
            let expected: Float = c < 2 ? x[flat: c * 25 + 2 * i * 5 + 2 * j] : 0
            #expect(y[flat: c * 9 + i * 3 + j] == expected)
        }}}
        #expect(try pad.outputShape(forSample: [2, 40]) == [4, 20])
        for (name, e) in try gradientErrors(pad, input: x) { #expect(e < 1e-4, "\(name): \(e)") }
        #expect(throws: NetError.self) { try ZeroPadShortcut(inChannels: 4, outChannels: 2, stride: 1) }
    }

    @Test func optionAVersusB() throws {
        let a = try Model(spec: tinySpec(shortcut: .a), registry: registry, seed: 1)
        let b = try Model(spec: tinySpec(shortcut: .b), registry: registry, seed: 1)
        // A: no shortcut parameters; B: 1x1 projections + norm at the two shape changes only.
        #expect(!a.namedParameters.contains { $0.name.contains("shortcut") })
        #expect(a.residualBlocks.map { $0.shortcut.map(\.name) } == [[], ["pad"], ["pad"]])
        #expect(b.residualBlocks.map { $0.shortcut.map(\.name) } == [[], ["conv", "norm"], ["conv", "norm"]])
        let projection = try #require(b.residualBlocks[1].shortcut.first?.layer as? Convolution)
        #expect(projection.weight.value.shape == [8, 4, 1, 1] && projection.stride.h == 2 && projection.stride.w == 2)
        // 4·8 + 8·16 projection weights and 2·(8 + 16) norm affines.
        #expect(b.parameterCount - a.parameterCount == 4 * 8 + 8 * 16 + 2 * (8 + 16))
        #expect(b.normSlots.count == a.normSlots.count + 2)
        let x = randomInput([2, 2, 6, 6], seed: 3)
        #expect(try a.forward(x).shape == [2, 3] && b.forward(x).shape == [2, 3])
    }

    // MARK: - Variants

    @Test func preActivationStructure() throws {
        let model = try Model(spec: tinySpec(shortcut: .b, preact: true), registry: registry, seed: 1)
        #expect(model.layers.map(\.name).prefix(1) == ["stem.conv"])
        #expect(model.layers.map(\.name).suffix(4) == ["final.norm", "final.act", "head", "classifier"])
        #expect(model.residualBlocks[0].sublayers.map(\.name) == ["norm1", "act1", "conv1", "norm2", "act2", "conv2"])
        // The projection reads the shared pre-activation: no norm of its own.
        #expect(model.residualBlocks[1].shortcut.map(\.name) == ["conv"])
        #expect(model.residualBlocks.allSatisfy { $0.post == nil })
        #expect(model.normSlots.count == 2 * 3 + 1)
        let original = try Model(spec: tinySpec(), registry: registry, seed: 1)
        #expect(original.residualBlocks[0].sublayers.map(\.name) == ["conv1", "norm1", "act1", "conv2", "norm2", "act"])
        #expect(try model.forward(randomInput([3, 2, 6, 6], seed: 2)).shape == [3, 3])
    }

    /// `norm_position: after` (conv-act-norm): the norms that precede an activation (stem,
    /// `norm1`) move behind it; `norm2` and a projection's norm stay after their convolution.
    /// With a conv bias, a bias directly followed by a train-mode BN gets a zero gradient (BN
    /// subtracts the batch mean: BN paper §3.2) and one behind a ReLU does not.
    @Test func normAfterTheActivation() throws {
        var spec = tinySpec(shortcut: .b)
        spec.normPosition = .after
        spec.convBias = true
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.layers.map(\.name).prefix(3) == ["stem.conv", "stem.act", "stem.norm"])
        #expect(model.residualBlocks[0].sublayers.map(\.name) == ["conv1", "act1", "norm1", "conv2", "norm2", "act"])
        #expect(model.residualBlocks[1].shortcut.map(\.name) == ["conv", "norm"])
        #expect(model.normSlots.count == 1 + 2 * 3 + 2)
        let x = randomInput([4, 2, 6, 6], seed: 3)
        let logits = try model.forward(x)   // a new model is in train mode
        try model.backward(randomInput(logits.shape, seed: 4))
        let bias = Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.name, $0.parameter) })
        func rms(_ name: String) throws -> Double {
            let g = try #require(bias[name]?.gradient, "\(name)").scalars.map(Double.init)
            return (g.map { $0 * $0 }.reduce(0, +) / Double(g.count)).squareRoot()
        }
        #expect(try rms("layer1.0.conv2.bias") < 1e-5, "conv2 is followed by norm2")
        #expect(try rms("layer1.0.conv1.bias") > 1e-3, "conv1 is followed by the ReLU")
        #expect(try rms("stem.conv.bias") > 1e-3, "the stem conv is followed by the ReLU")
    }

    @Test func trainsOnASmallTask() throws {
        // Class = sign pattern of two input quadrants: learnable by a ResNet-8 in a few dozen steps.
        var rng = SeededGenerator(seed: 11)
        let n = 128
        let x = Tensor.randomNormal([n, 1, 8, 8], using: &rng)
        let labels = (0..<n).map { i in (x[flat: i * 64] > 0 ? 1 : 0) + (x[flat: i * 64 + 63] > 0 ? 2 : 0) }
        let data = Dataset(name: "quadrants", trainInputs: x, trainLabels: labels, testInputs: x, testLabels: labels,
                           classes: 4, contentHash: "quadrants")
        for preact in [false, true] {
            let model = try Model(spec: tinySpec(input: [1, 8, 8], width: 8, preact: preact, classes: 4), registry: registry, seed: 2)
            let config = TrainingConfig(batchSize: 32, duration: .steps(40), seed: 1,
                                        optimizer: SGDConfig(learningRate: 0.05, momentum: 0.9, weightDecay: 0),
                                        schedule: LRSchedule(.constant))
            let r = try Trainer(model: model, dataset: data, config: config).run()
            let first = r.losses.prefix(5).reduce(0, +) / 5, last = r.losses.suffix(5).reduce(0, +) / 5
            #expect(!r.diverged && last < first, "preact=\(preact): loss \(first) -> \(last)")
        }
    }

    /// Goyal et al. 2017: with the last norm scale of every block at zero, each block is its
    /// shortcut at initialization (followed by the ReLU in the original form).
    @Test(arguments: [false, true])
    func zeroInitMakesBlocksIdentity(_ preact: Bool) throws {
        for norm in [NormSpec("bn"), NormSpec("gn", options: ["num_groups": .integer(2)]), NormSpec("frn"),
                     NormSpec("evonorm_s0", options: ["groups": .integer(2)])] {
            let model = try Model(spec: tinySpec(norm: norm, preact: preact, zeroInit: true), registry: registry, seed: 4)
            var shape = [3, 4, 6, 6]
            for block in model.residualBlocks {
                var x = randomInput(shape, seed: UInt64(shape[1]))
                if !preact { x = try ReLU().forward(x, mode: .train) }   // block inputs follow a ReLU
                let y = try block.forward(x, mode: .train)
                let s = try block.shortcut.reduce(x) { try $1.layer.forward($0, mode: .train) }
                #expect(y.isBitIdentical(to: s), "\(norm.name) layer\(block.stage).\(block.index)")
                shape = y.shape
            }
            let plain = try Model(spec: tinySpec(norm: norm, preact: preact), registry: registry, seed: 4)
            #expect(plain.residualBlocks.allSatisfy { $0.lastNorm?.layer.plugin.parameter(named: "weight")?.value.scalars.allSatisfy { $0 == 1 } == true })
        }
    }

    @Test func zeroInitNeedsAScale() throws {
        let spec = tinySpec(norm: NormSpec("gn", options: ["num_groups": .integer(2), "affine": .bool(false)]), zeroInit: true)
        let error = try #require(throws: NetError.self) { try Model(spec: spec, registry: registry, seed: 1) }
        #expect(error.description.contains("'weight'") && error.description.contains("group_norm"))
        #expect(throws: NetError.self) { try Model(spec: tinySpec(norm: nil, zeroInit: true), registry: registry, seed: 1) }
    }

    // MARK: - Freezing

    /// MMDetection `frozen_stages=1`: the stem and stage 1 take no gradients and their
    /// statistics do not move; stages 2 and 3 train.
    @Test(arguments: [false, true])
    func frozenStages(_ preact: Bool) throws {
        var spec = tinySpec(shortcut: .b, preact: preact)
        spec.freeze = FreezeSpec(frozenStages: 1)
        let model = try Model(spec: spec, registry: registry, seed: 1)
        func frozen(_ name: String) -> Bool { name.hasPrefix("stem.") || name.hasPrefix("layer1.") }
        for (name, p, _) in model.namedParameters { #expect(p.requiresGrad == !frozen(name), "\(name)") }
        for slot in model.normSlots {
            #expect(slot.freeze == (frozen(slot.name) ? .all : FreezePolicy.none), "\(slot.name)")
        }
        let before = snapshot(model)
        model.setMode(.train)
        let logits = try model.forward(randomInput([4, 2, 6, 6], seed: 8))
        try model.backward(randomInput(logits.shape, seed: 9))
        for (name, p, _) in model.namedParameters {
            #expect((p.gradient == nil) == frozen(name), "\(name) gradient")
        }
        let after = snapshot(model)
        for (name, _) in model.namedBuffers where name.hasSuffix("running_mean") {
            #expect(after[name]!.isBitIdentical(to: before[name]!) == frozen(name), "\(name) moved")
        }
        // Every stage frozen, and norm_eval everywhere, also hold.
        spec.freeze = FreezeSpec(normEval: true, normRequiresGrad: false, frozenStages: 3)
        let all = try Model(spec: spec, registry: registry, seed: 1)
        #expect(all.namedParameters.filter(\.parameter.requiresGrad).map(\.name) == ["classifier.weight", "classifier.bias"])
        #expect(all.normSlots.allSatisfy { $0.freeze == .all })
    }

    @Test func normEvalNeedsRunningStatistics() throws {
        var spec = tinySpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)]))
        spec.freeze = FreezeSpec(normEval: true)
        let error = try #require(throws: NetError.self) { try Model(spec: spec, registry: registry, seed: 1) }
        #expect(error.description.hasPrefix("stem.norm:") && !error.description.contains("\n"))
        spec.freeze = FreezeSpec(frozenStages: 2)   // GN: affine frozen, no statistics to freeze
        let model = try Model(spec: spec, registry: registry, seed: 1)
        #expect(model.normSlots.filter { $0.freeze.freezesAffine }.count == 1 + 2 + 2)
    }

    // MARK: - Every method, plugins, checkpoints

    @Test func everyRegisteredMethodFitsEverySlot() throws {
        for entry in registry.all {
            var options: [String: OptionValue] = [:]
            // Options declared to divide the channel count (GN's num_groups, EvoNorm-S0's groups): 2 divides 4, 8 and 16.
            // Options declared to divide the batch (Ghost BN's virtual_batch_size): 2 divides the batch of 4.
            for constraint in entry.descriptor.constraints {
                switch constraint {
                case let .dividesChannels(option), let .dividesBatch(option): options[option] = .integer(2)
                default: break
                }
            }
            let spec = tinySpec(norm: NormSpec(entry.descriptor.name, options: options), shortcut: .b)
            let model = try Model(spec: spec, registry: registry, seed: 1)
            #expect(model.normSlots.count == 1 + 2 * 3 + 2 && model.normSlots.allSatisfy { $0.method == entry.descriptor.name })
            let logits = try model.forward(randomInput([4, 2, 6, 6], seed: 1))
            try model.backward(randomInput(logits.shape, seed: 2))
            let finite = logits.scalars.allSatisfy { $0.isFinite }
            #expect(finite, "\(entry.descriptor.name)")
            #expect(model.namedParameters.filter { $0.parameter.requiresGrad }.allSatisfy { $0.parameter.gradient != nil },
                    "\(entry.descriptor.name)")
        }
    }

    @Test func pythonPluginInResNetSlots() throws {
        var reg = registry
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("python/plugins/rms_norm.py")
        try PythonPlugins.register(file: file.path, into: &reg)
        let model = try Model(spec: tinySpec(norm: NormSpec("rms_norm_py"), shortcut: .b, preact: false, zeroInit: true), registry: reg, seed: 1)
        #expect(model.normSlots.count == 9 && model.normSlots.allSatisfy { $0.method == "rms_norm_py" })
        let logits = try model.forward(randomInput([4, 2, 6, 6], seed: 1))
        try model.backward(randomInput(logits.shape, seed: 2))
        for slot in model.normSlots { #expect(slot.parameters.allSatisfy { $0.gradient != nil }, "\(slot.name)") }
    }

    @Test func checkpointRoundTrip() throws {
        let a = try Model(spec: tinySpec(shortcut: .b, preact: true), registry: registry, seed: 1)
        let b = try Model(spec: tinySpec(shortcut: .b, preact: true), registry: registry, seed: 2)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("resnet.npz")
        try Checkpoint.save(a, to: url)
        let report = try Checkpoint.load(b, from: url)
        #expect(report.loaded.count == a.namedParameters.count + a.namedBuffers.count)
        let sa = snapshot(a), sb = snapshot(b)
        #expect(sa.keys.sorted() == sb.keys.sorted() && sa.keys.allSatisfy { sa[$0]!.isBitIdentical(to: sb[$0]!) })
        let x = randomInput([2, 2, 6, 6], seed: 5)
        a.setMode(.eval); b.setMode(.eval)
        #expect(try a.forward(x).isBitIdentical(to: b.forward(x)))
        // A plain-net checkpoint does not fit a ResNet.
        let plain = try Model(spec: ModelSpec(inputShape: [2, 6, 6], classes: 3, depth: 2, width: 4), registry: registry, seed: 1)
        try Checkpoint.save(plain, to: url)
        #expect(throws: NetError.self) { try Checkpoint.load(a, from: url) }
    }

    /// The statistics tools see through residual blocks: PreciseBN recomputes every BN slot
    /// (projection norms included) and folding into frozen affines keeps eval outputs.
    @Test func statisticsToolsReachEverySlot() throws {
        let model = try Model(spec: tinySpec(shortcut: .b), registry: registry, seed: 1)
        let batches = (0..<3).map { randomInput([8, 2, 6, 6], seed: 20 + UInt64($0)) }
        let report = try PreciseBN.recompute(model, batches: batches)
        #expect(report.updated == model.normSlots.map(\.name) && report.updated.count == 9)
        let x = randomInput([4, 2, 6, 6], seed: 30)
        model.setMode(.eval)
        let before = try model.forward(x)
        let folding = try model.foldFrozenBatchNorm()
        #expect(folding.folded.count == 9 && folding.skipped.isEmpty)
        let after = try model.forward(x)
        // Folding reorders float32 arithmetic only: (x - m)·s + b vs x·s' + b'.
        #expect(after.maxAbsDifference(before) < 1e-4 * max(1, before.scalars.map { abs($0) }.max()!))
    }

    @Test func deterministic() throws {
        let x = randomInput([2, 2, 6, 6], seed: 5)
        let a = try Model(spec: tinySpec(shortcut: .b), registry: registry, seed: 7)
        let b = try Model(spec: tinySpec(shortcut: .b), registry: registry, seed: 7)
        #expect(try a.forward(x).isBitIdentical(to: b.forward(x)))
    }

    /// Steady state: a block's sum and gradient sums land in reused blocks, not fresh memory
    /// per step, also when the output is still held downstream (by the next block's norm).
    @Test(arguments: [false, true])
    func blockReusesItsBuffers(_ preact: Bool) throws {
        let model = try Model(spec: tinySpec(preact: preact), registry: registry, seed: 1)
        let block = model.residualBlocks[1], next = model.residualBlocks[2]
        let x = randomInput([4, 4, 6, 6], seed: 1)
        var outputs = Set<UnsafeMutablePointer<Float>>(), gradients = Set<UnsafeMutablePointer<Float>>()
        for step in 0..<6 {
            let y = try block.forward(x, mode: .train)
            let z = try next.forward(y, mode: .train)
            let gx = try block.backward(try next.backward(randomInput(z.shape, seed: 2)))
            if step >= 2 { outputs.insert(y.storage.base); gradients.insert(gx.storage.base) }
        }
        #expect(outputs.count <= 2 && gradients.count <= 2, "\(outputs.count) output and \(gradients.count) gradient blocks")
    }

    // MARK: - Validation

    @Test(arguments: [7, 9, 21, 2, 1])
    func badDepthIsOneLine(_ depth: Int) throws {
        let error = try #require(throws: NetError.self) { try Model(spec: tinySpec(depth: depth), registry: registry, seed: 1) }
        #expect(error.description.contains("6n+2") && !error.description.contains("\n"))
    }

    @Test func plainOnlySettingsAreRefused() throws {
        var spec = tinySpec(preact: true)
        spec.normPosition = .after
        #expect(throws: NetError.self) { try spec.validate() }
        spec = tinySpec(); spec.downsample = .maxPool
        #expect(throws: NetError.self) { try spec.validate() }
        spec = tinySpec(); spec.head = .flatten
        #expect(throws: NetError.self) { try spec.validate() }
        spec = tinySpec(); spec.freeze.perLayer = [0: .all]
        #expect(throws: NetError.self) { try spec.validate() }
    }

    @Test func modelNames() throws {
        #expect(try ModelName(parsing: "resnet20") == ModelName(family: .resnet, depth: 20, preActivation: false))
        #expect(try ModelName(parsing: "ResNet56").depth == 56)
        #expect(try ModelName(parsing: "preact-resnet20") == ModelName(family: .resnet, depth: 20, preActivation: true))
        #expect(try ModelName(parsing: "resnet") == ModelName(family: .resnet, depth: nil, preActivation: false))
        #expect(try ModelName(parsing: "plain").family == .plain)
        for bad in ["vgg16", "resnetX", "resnet-", "preact-plain", ""] {
            #expect(throws: NetError.self, "\(bad)") { try ModelName(parsing: bad) }
        }
        #expect(ShortcutKind(parsing: "b") == .b && ShortcutKind(parsing: "C") == nil)
    }
}
