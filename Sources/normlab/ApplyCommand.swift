import ArgumentParser
import Foundation
import NormCore
import NormApply

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Run one normalization layer on .npy arrays (see apply-contract.md).")

    @Argument(help: "Method name or alias (case-insensitive).") var method: String
    @Option(help: "Input array (N, C, ...), float32 or float64.") var input: String
    @Option(help: "Output directory (created if missing).") var out: String
    @Option(help: "train or eval.") var mode: String = "train"
    @Option(name: .customLong("grad-output"), help: "dL/dy; also runs the backward pass.") var gradOutput: String?
    @Option(help: "Affine weight (default ones).") var weight: String?
    @Option(help: "Affine bias (default zeros).") var bias: String?
    @Option(name: .customLong("running-mean"), help: "Running mean in (default zeros).") var runningMean: String?
    @Option(name: .customLong("running-var"), help: "Running variance in (default ones).") var runningVar: String?
    @Option(name: .customLong("param"), help: "Any parameter by name: NAME=FILE.npy (repeatable).") var params: [String] = []
    @Option(name: .customLong("set"), help: "A hyper-parameter: KEY=VALUE (repeatable).") var settings: [String] = []
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        guard let m = Mode(rawValue: mode.lowercased()) else { throw CLIError("--mode must be train or eval, got '\(mode)'") }
        var request = ApplyRequest(method: method, input: url(input), outputDirectory: url(out))
        request.mode = m
        request.gradOutput = gradOutput.map(url)
        request.settings = settings
        if let weight { request.parameterFiles.append(("weight", url(weight))) }
        if let bias { request.parameterFiles.append(("bias", url(bias))) }
        for p in params {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex, p.index(after: eq) != p.endIndex else {
                throw CLIError("--param expects NAME=FILE.npy, got '\(p)'")
            }
            request.parameterFiles.append((String(p[..<eq]), url(String(p[p.index(after: eq)...]))))
        }
        if let runningMean { request.bufferFiles.append(("running_mean", url(runningMean))) }
        if let runningVar { request.bufferFiles.append(("running_var", url(runningVar))) }

        let registry = try plugins.registry()
        let result = try ApplyRunner.compute(request, registry: registry)
        try ApplyRunner.write(result, to: request.outputDirectory)
        for w in result.warnings { FileHandle.standardError.write(("normlab: warning: " + w + "\n").data(using: .utf8)!) }
    }

    private func url(_ path: String) -> URL { URL(fileURLWithPath: path) }
}
