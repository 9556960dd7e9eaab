import ArgumentParser
import Foundation
import NormBench
import NormCore

/// `normlab bench train`: training steps/s of whole networks, per layer kind, against
/// PyTorch / JAX when they are importable.
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps (forward, loss, backward, SGD) of whole networks, with a per-layer-kind breakdown.",
        discussion: """
            Models: plain-2d (the anchor: (1,8,8), 3 x [conv3x3(32) + norm + ReLU], GAP, fc), plain-1d \
            (the same with Conv1d on (1,40)), resnet20 and resnet56 (CIFAR ResNets, option A, on (1,28,28)). \
            --quick runs the plain nets at B = 2 and 8. Every configuration is first run twice for a few steps from \
            the same seed and must give bit-identical losses, parameters and buffers (else exit status 1). \
            The breakdown times separate steps with a clock around every layer call. When torch or jax is \
            importable in the embedded Python interpreter, the same model is timed there (in a child \
            interpreter pinned to the thread count) and normlab's steps/s over the framework's is printed.
            """)

    @Option(help: "Comma-separated models (default: every model).") var models: String?
    @Option(help: "Comma-separated norm methods or aliases with options as METHOD:OPTION=VALUE (gn:num_groups=8); none for no normalization (default: bn).") var norm: String?
    @Option(name: .customLong("batch-sizes"), help: "Comma-separated batch sizes (default: 2,8,32,128).") var batchSizes: String?
    @Option(help: "Comma-separated thread counts (default: 1 and every core).") var threads: String?
    @Flag(help: "Few steps, the plain nets at B = 2 and 8 (seconds, not minutes).") var quick = false
    @Flag(name: .customLong("no-breakdown"), help: "Skip the per-layer-kind timing.") var noBreakdown = false
    @Flag(name: .customLong("no-frameworks"), help: "Do not time torch / jax even when importable.") var noFrameworks = false
    @Option(name: .customLong("min-seconds"), help: "Timed seconds per configuration at least (default 1, --quick 0.05).")
    var minSeconds: Double?
    @Option(help: "Exactly this many timed steps per configuration (overrides --min-seconds; for profiling).") var steps: Int?
    @Flag(help: "Print the report as JSON instead of a table.") var json = false
    @Option(name: .customLong("save-json"), help: "Also write the JSON report to this file (written whole or not at all).")
    var saveJSON: String?
    @Flag(help: "No progress lines on stderr.") var quiet = false
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        var cfg = quick ? TrainBenchConfiguration.quickRun() : TrainBenchConfiguration.standard()
        do {
            if let models { cfg.models = try TrainBenchConfiguration.parseModels(models) }
            if let norm {
                cfg.norms = norm.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                if cfg.norms.contains(where: \.isEmpty) { throw BenchError("--norm: empty method name in '\(norm)'") }
            }
            if let batchSizes { cfg.batchSizes = try TrainBenchConfiguration.parseBatchSizes(batchSizes) }
            if let threads { cfg.threads = try BenchConfiguration.parseThreads(threads) }
            if let minSeconds {
                guard minSeconds.isFinite, minSeconds > 0, minSeconds <= 600 else {
                    throw BenchError("--min-seconds must be in (0, 600], got \(minSeconds)")
                }
                cfg.minSeconds = minSeconds
            }
            if let steps {
                guard (1...1_000_000).contains(steps) else { throw BenchError("--steps must be between 1 and 1000000, got \(steps)") }
                cfg.minSteps = steps
                cfg.maxSteps = steps
                cfg.minSeconds = 0
            }
        } catch let e as BenchError {
            throw CLIError(e.description)
        }
        cfg.breakdown = !noBreakdown
        cfg.frameworks = !noFrameworks
        let output = try BenchReportOutput(saveJSON: saveJSON, json: json)
        let quiet = self.quiet
        let registry = try plugins.registry()
        // The registry's default method, shown by its canonical name.
        cfg.norms = cfg.norms.map { $0 == NormSpec.defaultMethodName ? (registry.defaultMethod ?? $0) : $0 }
        let runner = TrainBenchRunner(registry: registry, configuration: cfg, log: { line in
            if !quiet { FileHandle.standardError.write((line + "\n").data(using: .utf8)!) }
        })
        do { try runner.validate() } catch let e as BenchError { throw CLIError(e.description) }
        runner.attachFrameworks()
        let report = try runner.run()
        try output.emit(json: { try report.json() }, table: { report.table })
        if !report.passed {
            for r in report.records where r.check != "bit-identical" {
                FileHandle.standardError.write("normlab: bench train: \(r.model) \(r.norm) B=\(r.batch) \(r.threads) threads: repeated steps are not bit-identical\n".data(using: .utf8)!)
            }
            throw ExitCode(1)
        }
    }
}
