import Foundation
import NormCore
import NormParity
import NormParityPython
import NormPlugins
import NormPython
import Testing

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private func path(_ relative: String) -> String { repoRoot.appendingPathComponent(relative).path }

/// BatchNorm with a deliberate bug: it stores the *biased* batch variance in running_var.
final class BiasedRunningVarBatchNorm: NormalizationPlugin {
    static let descriptor = NormDescriptor(
        name: "wrong_batch_norm", summary: "BN storing the biased variance (a deliberate bug)",
        reference: "test", options: BatchNorm.descriptor.options, ranks: 2...5)
    let inner: BatchNorm
    init(shape: FeatureShape, options: NormOptions) throws {
        inner = try BatchNorm(shape: shape, options: options)
        inner.runningStatistics?.estimator = .biased
    }
    var parameters: [Parameter] { inner.parameters }
    var buffers: [Buffer] { inner.buffers }
    var tracksRunningStatistics: Bool { inner.tracksRunningStatistics }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try inner.forward(x, mode: mode) }
    func backward(_ g: Tensor) throws -> Tensor { try inner.backward(g) }
}

/// The real reference with every output and gradient scaled by 1.001.
struct PerturbedBackend: ReferenceBackend {
    let base: PythonReferenceBackend
    func hasReference(for method: String) -> Bool { true }
    func run(_ call: ReferenceCall) throws -> ReferenceResult {
        var r = try base.run(call)
        for (name, t) in r.arrays where name == "output" || name.hasPrefix("grad_") {
            r.arrays[name] = Tensor(shape: t.shape, scalars: t.scalars.map { $0 * 1.001 + 1e-3 })
        }
        return r
    }
}

/// Sends calls for one method to another method's reference.
struct RenamingBackend: ReferenceBackend {
    let base: PythonReferenceBackend
    let renames: [String: String]
    func hasReference(for method: String) -> Bool { true }
    func run(_ call: ReferenceCall) throws -> ReferenceResult {
        var c = call
        c.method = renames[call.method] ?? call.method
        return try base.run(c)
    }
}

@Suite struct ParityTests {
    @Test func everyBuiltinMatchesItsReferenceOnFiftyCasesOrMore() throws {
        let registry = Builtins.registry
        let report = try ParitySuite.run(registry: registry, backend: PythonReferenceBackend(),
                                         methods: registry.all.map(\.descriptor), seed: 11, casesPerMethod: 60)
        #expect(report.methods.count == Builtins.types.count)
        for m in report.methods {
            #expect(m.cases - m.skipped >= 50, "\(m.method): \(m.skipReasons)")
            #expect(m.failed == 0, "\(m.method): \(m.failures)")
            #expect(m.maxRelError < ParityRunner.tolerance)
        }
    }

    /// A method computing in float64 and rounding once can match the reference's float32 copy
    /// exactly (max error 0), so "compared something" is checked directly: a reference whose
    /// output and every gradient are moved by one part in a thousand fails every method.
    @Test func everyBuiltinIsCaughtByAPerturbedReference() throws {
        let registry = Builtins.registry
        let report = try ParitySuite.run(registry: registry, backend: PerturbedBackend(base: PythonReferenceBackend()),
                                         methods: registry.all.map(\.descriptor), seed: 5, casesPerMethod: 8)
        for m in report.methods { #expect(m.failed == m.cases - m.skipped && m.failed > 0, "\(m.method) missed a 1e-3 perturbation") }
    }

    @Test func casesCoverTrajectoriesEdgesAndAllRanks() {
        for type in Builtins.types {
            var g = ParityCaseGenerator(for: type.descriptor, in: Builtins.registry, seed: 0)
            let cases = g.cases(count: 60)
            #expect(cases.contains { $0.steps.count >= 4 && $0.steps.filter { $0.mode == .train }.count >= 3 })
            #expect(Set(cases.map { $0.steps[0].input.rank }) == Set(type.descriptor.ranks))
            #expect(cases.contains { $0.name.contains("mean>>std") })
        }
        var brn = ParityCaseGenerator(for: BatchRenorm.descriptor, in: Builtins.registry, seed: 0)
        #expect(brn.cases(count: 50).contains { $0.name.contains("r_max=1.1") })
        var frn = ParityCaseGenerator(for: FilterResponseNorm.descriptor, in: Builtins.registry, seed: 0)
        #expect(frn.cases(count: 50).contains { $0.steps[0].input.spatialCount == 1 })
    }

    @Test func sameSeedSameCases() {
        var a = ParityCaseGenerator(for: BatchNorm.descriptor, in: Builtins.registry, seed: 3)
        var b = ParityCaseGenerator(for: BatchNorm.descriptor, in: Builtins.registry, seed: 3)
        let ca = a.cases(count: 20), cb = b.cases(count: 20)
        #expect(ca.map(\.name) == cb.map(\.name))
        #expect(zip(ca, cb).allSatisfy { $0.steps[0].input.isBitIdentical(to: $1.steps[0].input) })
    }

    @Test func aWrongVariantFailsParity() throws {
        var registry = Builtins.registry
        try registry.register(BiasedRunningVarBatchNorm.self, hasReference: true)
        let backend = RenamingBackend(base: PythonReferenceBackend(), renames: ["wrong_batch_norm": "batch_norm"])
        let report = try ParitySuite.run(registry: registry, backend: backend,
                                         methods: [BiasedRunningVarBatchNorm.descriptor], seed: 0, casesPerMethod: 50)
        let m = try #require(report.methods.first)
        #expect(m.failed > 0)
        #expect(!report.passed)
        #expect(m.failures.contains { $0.contains("running_var") })
    }

    @Test func rmsNormPluginWorksThroughTheRegistryAndParity() throws {
        var registry = Builtins.registry
        try PythonPlugins.register(file: path("python/plugins/rms_norm.py"), into: &registry)
        let entry = try registry.entry(named: "RMS_norm_PY")
        #expect(entry.descriptor.name == "rms_norm_py" && entry.hasReference)
        var rng = SeededGenerator(seed: 1)
        let x = Tensor.randomNormal([3, 4, 5], using: &rng)
        let layer = try registry.make(NormSpec("rms_norm_py"), shape: FeatureShape(of: x))
        let y = try layer.forward(x, mode: .train)
        let gx = try layer.backward(Tensor.ones(x.shape))
        #expect(y.shape == x.shape && gx.shape == x.shape)
        #expect(layer.parameter(named: "weight")?.gradient?.shape == [4])
        let report = try ParitySuite.run(registry: registry, backend: PythonReferenceBackend(),
                                         methods: [entry.descriptor], seed: 2, casesPerMethod: 50)
        #expect(report.passed, "\(report.methods[0].failures)")
    }

    @Test func brokenPluginsGiveOneLineErrorsNamingThePlugin() throws {
        let expectations: [(String, String, String)] = [
            ("syntax_error.py", "", "SyntaxError"),
            ("hangs.py", "", "defines no Layer class"),
            ("raises.py", "raises_plugin", "deliberate failure in forward"),
            ("wrong_shape.py", "wrong_shape", "returned shape"),
            ("wrong_dtype.py", "wrong_dtype", "dtype int64"),
        ]
        var rng = SeededGenerator(seed: 0)
        let x = Tensor.randomNormal([2, 3, 4], using: &rng)
        for (file, method, message) in expectations {
            var registry = Builtins.registry
            do {
                try PythonPlugins.register(file: path("python/tests/broken_plugins/\(file)"), into: &registry)
                let layer = try registry.make(NormSpec(method), shape: FeatureShape(of: x))
                _ = try layer.forward(x, mode: .train)
                Issue.record("\(file) did not fail")
            } catch let e as NormError {
                #expect(e.description.contains(message), "\(e)")
                #expect(!e.description.contains("\n"))
                #expect(e.description.contains(file) || e.description.contains(method))
            }
        }
    }
}
