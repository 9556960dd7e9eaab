import ArgumentParser
import Foundation
import NormBench
import NormCore

/// `normlab bench`: the kernel bench (default, `bench kernels`) and `bench train`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: every plugin's kernels (default) or whole training steps (`bench train`).",
        subcommands: [BenchKernelsCommand.self, BenchTrainCommand.self],
        defaultSubcommand: BenchKernelsCommand.self)
}

/// `normlab bench [kernels]`: thin wrapper over `NormBench.BenchRunner`.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time every plugin's train forward, eval forward and backward against memory bandwidth (STREAM copy) and numpy.",
        discussion: """
            Each kernel is checked against the method's reference path before it is timed (float64 \
            reference within 1e-4 of magnitude, bit-identical across thread counts). GB/s counts the \
            minimal traffic: train forward 3 passes of 4 B/element, eval forward 2 (3 when eval \
            normalizes with the input's own statistics), backward 5. %copy divides by a STREAM copy of \
            the same size and thread count; numpy is timed inside Python. The timings are taken in \
            rounds over every method and shape, so a passing load on a shared machine affects all \
            of them alike. Exit status 1 when a check fails. `normlab bench train` times whole training steps.
            """)

    @Option(help: "Comma-separated methods (default: every registered method, custom plugins included).") var methods: String?
    @Option(help: "Comma-separated shapes, extents joined by x (default: 32x64x56x56,8x256x14x14,256x1024,64x32x8x8).") var shapes: String?
    @Option(help: "Comma-separated thread counts (default: 1 and every core).") var threads: String?
    @Flag(help: "Small shapes and few repetitions (seconds, not minutes).") var quick = false
    @Option(help: "Rounds the timings are spread over (every op of every method and shape once per round, medians over all rounds; default 3, --quick 1).")
    var rounds: Int?
    @Flag(help: "Print the report as JSON (one record per method x op x shape x threads) instead of a table.") var json = false
    @Option(name: .customLong("save-json"),
            help: "Also write the JSON report to this file (written whole or not at all), so one run gives both the table and the records.")
    var saveJSON: String?
    @Flag(name: .customLong("no-numpy"), help: "Skip the numpy timings.") var noNumpy = false
    @Flag(help: "No progress lines on stderr.") var quiet = false
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        var cfg = quick ? BenchConfiguration.quickRun() : BenchConfiguration.standard()
        do {
            if let methods { cfg.methods = methods.split(separator: ",").map(String.init) }
            if let shapes { cfg.shapes = try BenchConfiguration.parseShapes(shapes) }
            if let threads { cfg.threads = try BenchConfiguration.parseThreads(threads) }
            if let rounds {
                guard (1...100).contains(rounds) else { throw BenchError("--rounds must be between 1 and 100, got \(rounds)") }
                cfg.rounds = rounds
            }
        } catch let e as BenchError {
            throw CLIError(e.description)
        }
        cfg.numpy = !noNumpy
        let registry = try plugins.registry()
        let quiet = self.quiet
        let runner = BenchRunner(registry: registry, configuration: cfg, log: { line in
            if !quiet { FileHandle.standardError.write((line + "\n").data(using: .utf8)!) }
        })
        _ = try runner.selectedEntries()   // unknown names fail before anything runs
        let output = try BenchReportOutput(saveJSON: saveJSON, json: json)
        runner.attachPython()
        let report = try runner.run()
        try output.emit(json: { try report.json() }, table: { report.table })
        if !report.passed {
            for s in report.skipped where s.failed {
                FileHandle.standardError.write("normlab: bench: \(s.method) \(shapeLabel(s.shape)): \(s.reason)\n".data(using: .utf8)!)
            }
            throw ExitCode(1)
        }
    }
}
