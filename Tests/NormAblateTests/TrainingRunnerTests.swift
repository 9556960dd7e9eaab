import Foundation
import Testing
import NormCore
import NormPlugins
import NormNet
@testable import NormAblate

/// The `train` runner's cell keys that the presets rely on: learning-rate scaling with the
/// batch size, 1×1 inputs, the inference-statistics estimator, and the derived metrics.
@Suite struct TrainingRunnerTests {
    let runner = TrainingRunner(registry: Builtins.registry)

    func cell(_ yaml: String) throws -> CellConfig { CellConfig(try YAMLTree(text: yaml, source: "cell.yaml").root) }

    @Test func learningRateScalesLinearlyWithTheBatchSize() throws {
        let c = try cell("batch_size: 8\noptimizer: {lr: 0.1, lr_reference_batch_size: 32}")
        #expect(try Phase(c, prefix: "").training(for: SyntheticDataset.make(seed: 0), seed: 0).optimizer.learningRate == 0.1 * 8 / 32)
        #expect(try Phase(try cell("batch_size: 8\noptimizer: {lr: 0.1}"), prefix: "").training(for: SyntheticDataset.make(seed: 0), seed: 0).optimizer.learningRate == 0.1)
        let bad = runner.validate(try cell("optimizer: {lr: 0.1, lr_reference_batch_size: 0}"))
        #expect(bad.contains { $0.path == "optimizer.lr_reference_batch_size" })
        let typo = runner.validate(try cell("optimizer: {lr: 0.1, lr_refrence_batch_size: 32}"))
        #expect(typo.contains { $0.path == "optimizer.lr_refrence_batch_size" })
    }

    @Test func inferenceStatisticsKeys() throws {
        #expect(try Phase(try cell("inference_stats: {estimator: last_batches, batches: 7}"), prefix: "").inferenceStatistics == .lastBatches(7))
        #expect(try Phase(try cell("inference_stats: {estimator: precise}"), prefix: "").inferenceStatistics == .precise(batches: 100))
        #expect(try Phase(try cell("precise_bn: 20"), prefix: "").inferenceStatistics == .precise(batches: 20))
        #expect(try Phase(try cell("batch_size: 4"), prefix: "").inferenceStatistics == .runningAverage)
        for (yaml, path) in [("inference_stats: {estimator: median}", "inference_stats"),
                             ("inference_stats: {estimator: precise, batches: 0}", "inference_stats"),
                             ("inference_stats: {estimator: ema, window: 3}", "inference_stats.window"),
                             ("precise_bn: 5\ninference_stats: {estimator: ema}", "precise_bn")] {
            let problems = runner.validate(try cell(yaml))
            #expect(problems.contains { $0.path == path }, "\(yaml): \(problems)")
        }
    }

    @Test func asChannelsTurnsEveryValueIntoAChannelOfA1x1Map() throws {
        let phase = try Phase(try cell("dataset: {name: synthetic, as_channels: true}"), prefix: "")
        let plain = try Phase(try cell("dataset: {name: synthetic}"), prefix: "").loadDataset()
        let data = try phase.loadDataset()
        #expect(data.sampleShape == [plain.sampleShape.product] + Array(repeating: 1, count: plain.sampleShape.count - 1))
        #expect(data.trainInputs.scalars == plain.trainInputs.scalars)
        #expect(data.contentHash != plain.contentHash)
    }

    @Test func aRunReportsTheDiagnosticMetricsAndCurves() throws {
        let c = try cell("""
        model: {depth: 2, width: 8, kernel: 3, norm: bn, conv_bias: true}
        dataset: {name: synthetic, train_examples: 128}
        batch_size: 32
        epochs: 2
        inference_stats: {estimator: last_batches, batches: 3}
        """)
        #expect(runner.validate(c).isEmpty)
        let r = try runner.run(c, seed: 1, threads: 1)
        for m in ["test_accuracy", "weight_norm_growth", "conv_bias_grad_rms", "train_steps"] { #expect(r.metrics[m]?.isFinite == true, "\(m)") }
        #expect(r.metrics["conv_bias_grad_rms"]! < 1e-6)   // a bias before train-mode BN gets no gradient
        #expect(r.curves["steps"] == [4, 8])
        #expect(r.curves["weight_norm"]?.count == 2)
        #expect(Set(r.curves.keys).isSubset(of: Set(runner.curveNames!)))
        #expect(Set(r.metrics.keys).isSubset(of: Set(runner.metricNames!)))
    }

    @Test func everyDocumentedTopLevelKeyIsAccepted() {
        let documented = TrainingRunner.keyDocumentation.map(\.key)
        for key in TrainingRunner.phaseKeys { #expect(documented.contains { $0.split(separator: " ").contains(Substring(key)) || $0.hasPrefix(key) }, "\(key) is not documented") }
        for key in TrainingRunner.modelKeys {
            #expect(documented.contains { $0.contains("model.\(key)") || $0.contains(key) }, "model.\(key) is not documented")
        }
    }
}

@Suite struct RenormScheduleKeyTests {
    let runner = TrainingRunner(registry: Builtins.registry)

    @Test func renormScheduleKeys() throws {
        func cell(_ yaml: String) throws -> CellConfig { CellConfig(try YAMLTree(text: yaml, source: "cell.yaml").root) }
        #expect(try Phase(try cell("renorm_schedule: {hold_steps: 5, ramp_steps: 50}"), prefix: "").renormSchedule
                == RenormSchedule(holdSteps: 5, rampSteps: 50))
        #expect(try Phase(try cell("batch_size: 4"), prefix: "").renormSchedule == nil)
        #expect(runner.validate(try cell("renorm_schedule: {hold_steps: -2}")).contains { $0.path == "renorm_schedule" })
        #expect(runner.validate(try cell("renorm_schedule: {hold: 2}")).contains { $0.path == "renorm_schedule.hold" })
    }
}
