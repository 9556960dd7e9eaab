import Foundation
import Testing
import NormCore
import NormNet
import NormPlugins
@testable import NormBench

// No timing is asserted: the machine is shared. These check what the train bench measures.
@Suite struct TrainBenchTests {
    func quickConfig(_ models: [TrainBenchModel], batch: Int = 2) -> TrainBenchConfiguration {
        var c = TrainBenchConfiguration.quickRun()
        c.models = models
        c.batchSizes = [batch]
        c.threads = [1]
        c.minSteps = 2
        c.maxSteps = 3
        c.minSeconds = 0.001
        c.frameworks = false
        return c
    }

    @Test func recordsCoverTheSelectionWithABreakdownOfEveryKind() throws {
        let runner = TrainBenchRunner(registry: Builtins.registry, configuration: quickConfig([.plain2D, .plain1D]))
        let report = try runner.run()
        #expect(report.records.map(\.model) == ["plain-2d", "plain-1d"])
        #expect(report.passed)
        for r in report.records {
            #expect(r.check == TrainBenchRunner.identical)
            let b = try #require(r.breakdown)
            for kind in [LayerKind.conv, .norm, .activation, .pooling, .linear, .loss, .optimizer] {
                #expect((b[kind.rawValue] ?? 0) > 0, "\(kind)")
            }
            #expect(b[LayerKind.other.rawValue] == nil)
        }
        let decoded = try JSONDecoder().decode(TrainBenchReport.self, from: try report.json())
        #expect(decoded == report)
    }

    /// The layer-by-layer timed step is the same computation as `Model.forward`/`backward`
    /// (residual blocks walked through included).
    @Test(arguments: [TrainBenchModel.plain2D, .resNet20])
    func timedStepMatchesTheEngineStepBitForBit(_ model: TrainBenchModel) throws {
        let runner = TrainBenchRunner(registry: Builtins.registry, configuration: quickConfig([model], batch: 4))
        let a = try runner.makeStep(model, norm: "bn", batch: 4)
        let b = try runner.makeStep(model, norm: "bn", batch: 4)
        var seconds: [LayerKind: Double] = [:]
        for _ in 0..<3 {
            try a.run()
            try b.runTimed(into: &seconds)
            #expect(a.loss.bitPattern == b.loss.bitPattern)
        }
        #expect(zip(a.state, b.state).allSatisfy { $0.isBitIdentical(to: $1) })
    }

    @Test func resNetBreakdownShowsTheResidualAdditions() throws {
        var c = quickConfig([.resNet20])
        c.minSteps = 1
        c.maxSteps = 1
        let report = try TrainBenchRunner(registry: Builtins.registry, configuration: c).run()
        let b = try #require(report.records.first?.breakdown)
        #expect((b[LayerKind.residual.rawValue] ?? 0) > 0)
        #expect(b[LayerKind.other.rawValue] == nil)
        #expect(report.passed)
    }

    @Test func modelsAreBuiltByName() throws {
        #expect(try TrainBenchModel.named("PLAIN-2D") == .plain2D)
        #expect(throws: BenchError.self) { try TrainBenchModel.named("vgg") }
        let net = try TrainBenchModel.plain2D.build(norm: NormSpec("bn"), registry: Builtins.registry, seed: 1)
        #expect(net.blocks.count == 3 && net.blocks.allSatisfy { $0.conv.outChannels == 32 && $0.pool == nil })
        #expect(net.featureShape == [32, 8, 8])
    }

    @Test func badSelectionsAreRefused() throws {
        #expect(throws: BenchError.self) { try TrainBenchConfiguration.parseBatchSizes("2,,8") }
        #expect(try TrainBenchConfiguration.parseBatchSizes("2, 8") == [2, 8])
        var c = quickConfig([.plain2D])
        c.norms = ["nosuch"]
        #expect(throws: BenchError.self) { try TrainBenchRunner(registry: Builtins.registry, configuration: c).validate() }
    }
}
