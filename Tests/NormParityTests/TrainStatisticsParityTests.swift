import Foundation
import NormCore
import NormParity
import NormParityPython
import NormPlugins
import NormPython
import Testing

/// BatchNorm that ignores `train_statistics` (always normalizes with batch statistics in
/// train): a deliberate bug parity must catch on the `train_statistics=running` cases.
final class IgnoresTrainStatisticsBatchNorm: NormalizationPlugin {
    static let descriptor = NormDescriptor(
        name: "ignores_train_statistics", summary: "BN ignoring train_statistics (a deliberate bug)",
        reference: "test", options: BatchNorm.descriptor.options, ranks: 2...5)
    let inner: BatchNorm
    init(shape: FeatureShape, options: NormOptions) throws {
        let given = options.values.filter { options.isSet($0.key) && $0.key != "train_statistics" }
        inner = try BatchNorm(shape: shape, options: NormOptions(method: "batch_norm", schema: BatchNorm.descriptor.options, given: given))
    }
    var parameters: [Parameter] { inner.parameters }
    var buffers: [Buffer] { inner.buffers }
    var tracksRunningStatistics: Bool { inner.tracksRunningStatistics }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try inner.forward(x, mode: mode) }
    func backward(_ g: Tensor) throws -> Tensor { try inner.backward(g) }
}

@Suite struct TrainStatisticsParityTests {
    @Test func batchNormCasesDrawTrainStatisticsRunningWithTrackingOnly() {
        var g = ParityCaseGenerator(for: BatchNorm.descriptor, in: Builtins.registry, seed: 0)
        let cases = g.cases(count: 60)
        let running = cases.filter { $0.options["train_statistics"] == .text("running") }
        #expect(running.contains { $0.name.hasPrefix("train_statistics=running") })
        #expect(running.contains { $0.name.hasPrefix("random#") }, "random cases draw train_statistics=running too")
        #expect(running.contains { $0.steps[0].input.rank == 2 })
        #expect(running.allSatisfy { $0.options["track_running_stats"] != .bool(false) && !$0.buffers.isEmpty })
        #expect(running.filter { $0.steps.contains { $0.mode == .train } }.count >= 5)
        #expect(running.contains { $0.steps.filter { $0.mode == .train }.count >= 3 })

        var brn = ParityCaseGenerator(for: BatchRenorm.descriptor, in: Builtins.registry, seed: 0)
        #expect(brn.cases(count: 60).allSatisfy { $0.options["train_statistics"] == nil })
    }

    @Test func ignoringTheOptionFailsParity() throws {
        var registry = Builtins.registry
        try registry.register(IgnoresTrainStatisticsBatchNorm.self, hasReference: true)
        let backend = RenamingBackend(base: PythonReferenceBackend(), renames: ["ignores_train_statistics": "batch_norm"])
        let report = try ParitySuite.run(registry: registry, backend: backend,
                                         methods: [IgnoresTrainStatisticsBatchNorm.descriptor], seed: 0, casesPerMethod: 60)
        let m = try #require(report.methods.first)
        #expect(m.failed > 0)
        #expect(m.failures.allSatisfy { $0.contains("train_statistics=running") }, "\(m.failures)")
    }
}
