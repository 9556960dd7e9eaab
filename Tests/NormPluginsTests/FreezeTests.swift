import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// `p.value -= lr · p.gradient` for every parameter that takes gradients and has one.
private func sgdStep(_ parameters: [Parameter], lr: Float = 0.1) {
    for p in parameters where p.requiresGrad {
        guard let g = p.gradient else { continue }
        var v = p.value
        v.withUnsafeMutableBufferPointer { vb in
            g.withUnsafeBufferPointer { gb in for i in 0..<vb.count { vb[i] -= lr * gb[i] } }
        }
        p.value = v
    }
}

/// A method with running statistics, as a spec and an input shape.
struct TrackedSpec: Sendable, CustomTestStringConvertible {
    let spec: NormSpec
    let shape: [Int]
    var testDescription: String { "\(spec.name) \(spec.options.keys.sorted()) \(shape)" }
}

private let trackedSpecs: [TrackedSpec] = [
    TrackedSpec(spec: NormSpec("bn"), shape: [4, 3, 2, 2]),
    TrackedSpec(spec: NormSpec("BatchNorm", options: ["momentum": .none]), shape: [5, 3]),
    TrackedSpec(spec: NormSpec("brn", options: ["r_max": .real(2), "d_max": .real(1)]), shape: [4, 3, 5]),
    TrackedSpec(spec: NormSpec("in", options: ["track_running_stats": .bool(true), "affine": .bool(true)]), shape: [3, 3, 4]),
]

/// Every built-in with learnable parameters.
private let affineSpecs: [TrackedSpec] = trackedSpecs + [
    TrackedSpec(spec: NormSpec("gn", options: ["num_groups": .integer(3)]), shape: [2, 6, 3]),
    TrackedSpec(spec: NormSpec("ln"), shape: [2, 3, 4]),
    TrackedSpec(spec: NormSpec("frn", options: ["learnable_eps": .bool(true)]), shape: [2, 3, 2, 2]),
]

@Suite("Freeze policies through NormLayer")
struct FreezeTests {
    /// A layer with non-default running statistics and parameters, so a freeze that
    /// silently did nothing could not look right by accident.
    private func makeLayer(_ ts: TrackedSpec, freeze: FreezePolicy, seed: UInt64 = 31) throws -> NormLayer {
        var rng = TestRNG(seed: seed)
        let layer = try builtins.makeLayer(ts.spec, shape: featureShape(ts.shape), freeze: freeze)
        if let rm = layer.plugin.buffer(named: "running_mean"), let rv = layer.plugin.buffer(named: "running_var") {
            rm.value = rng.uniformTensor(rm.value.shape, -0.5, 0.5)
            rv.value = rng.uniformTensor(rv.value.shape, 0.5, 2)
        }
        for p in layer.parameters where p.name != "eps" { p.value = rng.uniformTensor(p.value.shape, 0.5, 1.5) }
        return layer
    }

    @Test("statistics freeze: buffers bit-identical after train steps; output and gradients equal eval mode's",
          arguments: trackedSpecs)
    func statisticsFreeze(_ ts: TrackedSpec) throws {
        var rng = TestRNG(seed: 32)
        let frozen = try makeLayer(ts, freeze: FreezePolicy(freezesStatistics: true))
        let reference = try makeLayer(ts, freeze: .none)   // same initial state, unfrozen
        #expect(frozen.freeze.freezesStatistics && !frozen.freeze.freezesAffine)
        let before = frozen.plugin.bufferSnapshot()
        #expect(!before.isEmpty)
        for step in 0..<4 {
            let x = rng.normalTensor(ts.shape, mean: Double(step), std: 2), g = rng.normalTensor(ts.shape)
            let y = try frozen.forward(x, mode: .train).copy
            let gx = try frozen.backward(g).copy
            // The unfrozen layer in eval mode: running statistics, no batch-statistic gradient terms.
            expectBitIdentical(y, try reference.forward(x, mode: .eval).copy, "\(ts) step \(step) output vs eval")
            expectBitIdentical(gx, try reference.backward(g).copy, "\(ts) step \(step) dL/dx vs eval")
            expectBitIdentical(try frozen.forward(x, mode: .eval).copy, y, "\(ts) step \(step) frozen eval vs frozen train")
            // Affine not frozen: parameters still learn.
            for p in frozen.parameters { #expect(p.gradient != nil, "\(ts) \(p.name) should have a gradient") }
        }
        for b in frozen.buffers { expectBitIdentical(b.value, before[b.name]!, "\(ts) \(b.name)") }
    }

    @Test("affine freeze: no parameter gradients, SGD leaves parameters bit-identical, dL/dx unchanged",
          arguments: affineSpecs)
    func affineFreeze(_ ts: TrackedSpec) throws {
        var rng = TestRNG(seed: 33)
        let frozen = try makeLayer(ts, freeze: FreezePolicy(freezesAffine: true))
        let free = try makeLayer(ts, freeze: .none)
        let names = frozen.parameters.map(\.name)
        #expect(names.contains("weight") && names.contains("bias"))
        let before = frozen.plugin.parameterSnapshot()
        for step in 0..<3 {
            let x = rng.normalTensor(ts.shape, mean: 0.5, std: 1.5), g = rng.normalTensor(ts.shape)
            // The unfrozen twin starts each step from the frozen layer's state.
            for p in frozen.parameters { free.plugin.parameter(named: p.name)!.value = p.value.copy }
            for b in frozen.buffers { free.plugin.buffer(named: b.name)!.value = b.value.copy }
            _ = try frozen.forward(x, mode: .train)
            _ = try free.forward(x, mode: .train)
            let gx = try frozen.backward(g).copy
            // Freezing the affine changes no other gradient.
            expectBitIdentical(gx, try free.backward(g).copy, "\(ts) step \(step) dL/dx")
            for p in frozen.parameters {
                #expect(!p.requiresGrad, "\(ts) \(p.name).requiresGrad")
                #expect(p.gradient == nil, "\(ts) \(p.name) got a gradient")
            }
            for p in free.parameters { #expect(p.gradient != nil, "\(ts) unfrozen \(p.name) has no gradient") }
            sgdStep(frozen.parameters)
            sgdStep(free.parameters)
            for p in free.parameters where p.name == "weight" || p.name == "bias" {
                #expect(!p.value.isBitIdentical(to: frozen.plugin.parameter(named: p.name)!.value),
                        "\(ts) step \(step): unfrozen \(p.name) did not move")
            }
        }
        for p in frozen.parameters { expectBitIdentical(p.value, before[p.name]!, "\(ts) \(p.name)") }
    }

    @Test("the two switches are independent (all four combinations)", arguments: trackedSpecs)
    func switchesAreIndependent(_ ts: TrackedSpec) throws {
        for (stats, affine) in [(false, false), (true, false), (false, true), (true, true)] {
            var rng = TestRNG(seed: 34)
            let policy = FreezePolicy(freezesStatistics: stats, freezesAffine: affine)
            let layer = try makeLayer(ts, freeze: policy)
            let evalTwin = try makeLayer(ts, freeze: .none)
            let buffers0 = layer.plugin.bufferSnapshot(), params0 = layer.plugin.parameterSnapshot()
            var trainEqualsEval = true
            for step in 0..<3 {
                let x = rng.normalTensor(ts.shape, mean: 1 + Double(step), std: 2), g = rng.normalTensor(ts.shape)
                // The twin's state follows the layer's, so "eval" means eval with the same statistics.
                for b in layer.buffers { evalTwin.plugin.buffer(named: b.name)!.value = b.value.copy }
                for p in layer.parameters { evalTwin.plugin.parameter(named: p.name)!.value = p.value.copy }
                let y = try layer.forward(x, mode: .train).copy
                if !y.isBitIdentical(to: try evalTwin.forward(x, mode: .eval)) { trainEqualsEval = false }
                _ = try layer.backward(g)
                sgdStep(layer.parameters)
            }
            let buffersMoved = layer.buffers.contains { !$0.value.isBitIdentical(to: buffers0[$0.name]!) }
            let paramsMoved = layer.parameters.contains { !$0.value.isBitIdentical(to: params0[$0.name]!) }
            let label = "\(ts) \(policy)"
            #expect(buffersMoved == !stats, "\(label): buffers moved = \(buffersMoved)")
            #expect(paramsMoved == !affine, "\(label): parameters moved = \(paramsMoved)")
            #expect(trainEqualsEval == stats, "\(label): train output equals eval output = \(trainEqualsEval)")
            #expect(layer.parameters.allSatisfy { $0.requiresGrad == !affine }, "\(label): requiresGrad")
        }
    }

    @Test("a statistics freeze on a layer without running statistics is refused at construction",
          arguments: [
              TrackedSpec(spec: NormSpec("gn", options: ["num_groups": .integer(1)]), shape: [2, 3, 4]),
              TrackedSpec(spec: NormSpec("ln"), shape: [2, 3, 4]),
              TrackedSpec(spec: NormSpec("frn"), shape: [2, 3, 4]),
              TrackedSpec(spec: NormSpec("bn", options: ["track_running_stats": .bool(false)]), shape: [2, 3, 4]),
              TrackedSpec(spec: NormSpec("in"), shape: [2, 3, 4]),
          ])
    func statisticsFreezeWithoutStatisticsIsRefused(_ ts: TrackedSpec) throws {
        for policy in [FreezePolicy(freezesStatistics: true), FreezePolicy.all] {
            let error = #expect(throws: NormError.self) {
                try builtins.makeLayer(ts.spec, shape: featureShape(ts.shape), freeze: policy)
            }
            if case .invalidConfiguration(let method, let reason)? = error {
                #expect(method == (try builtins.entry(named: ts.spec.name)).descriptor.name)
                #expect(reason.contains("running statistics"))
            } else {
                Issue.record("\(ts): expected invalidConfiguration, got \(String(describing: error))")
            }
        }
        // An affine-only freeze is fine, and a later statistics freeze is refused too.
        let layer = try builtins.makeLayer(ts.spec, shape: featureShape(ts.shape), freeze: FreezePolicy(freezesAffine: true))
        #expect(throws: NormError.self) { try layer.setFreeze(.all) }
        #expect(layer.freeze == FreezePolicy(freezesAffine: true))
    }

    @Test("setFreeze later: unfreezing the affine restores gradients; freezing clears stale ones")
    func changingTheFreezeLater() throws {
        var rng = TestRNG(seed: 35)
        let ts = trackedSpecs[0]
        let layer = try makeLayer(ts, freeze: .none)
        let x = rng.normalTensor(ts.shape), g = rng.normalTensor(ts.shape)
        _ = try layer.forward(x, mode: .train); _ = try layer.backward(g)
        #expect(layer.parameters.allSatisfy { $0.gradient != nil })
        try layer.setFreeze(FreezePolicy(freezesAffine: true))
        #expect(layer.parameters.allSatisfy { $0.gradient == nil && !$0.requiresGrad })
        try layer.setFreeze(.none)
        _ = try layer.forward(x, mode: .train); _ = try layer.backward(g)
        #expect(layer.parameters.allSatisfy { $0.gradient != nil && $0.requiresGrad })
    }

    @Test("NormLayer drops gradients a careless custom plugin sets on frozen parameters")
    func carelessPluginGradientsAreDropped() throws {
        var registry = Builtins.registry
        try registry.register(CarelessScale.self)
        let layer = try registry.makeLayer(NormSpec("careless_scale"), shape: FeatureShape(channels: 2, spatial: [3]),
                                           freeze: FreezePolicy(freezesAffine: true))
        var rng = TestRNG(seed: 36)
        let x = rng.normalTensor([2, 2, 3])
        _ = try layer.forward(x, mode: .train)
        _ = try layer.backward(x)
        #expect(layer.parameters.allSatisfy { $0.gradient == nil })
    }
}

/// `y = weight · x`, a plugin that sets its gradient without looking at `requiresGrad`.
final class CarelessScale: NormalizationPlugin {
    static let descriptor = NormDescriptor(name: "careless_scale", summary: "y = w·x, ignores requiresGrad",
                                           reference: "test only", options: [])
    let weight: Parameter
    private var x: Tensor?

    init(shape: FeatureShape, options: NormOptions) throws {
        weight = Parameter(name: "weight", value: .ones([shape.channels]))
    }

    var parameters: [Parameter] { [weight] }
    var buffers: [Buffer] { [] }
    var tracksRunningStatistics: Bool { false }

    func forward(_ x: Tensor, mode: Mode) throws -> Tensor { self.x = x; return x }
    func backward(_ gradOutput: Tensor) throws -> Tensor {
        weight.gradient = .ones(weight.value.shape)
        return gradOutput
    }
}
