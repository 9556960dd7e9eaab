import ArgumentParser
import Foundation
import NormCore
import NormPython

/// Entry point: parses, runs, and turns every failure into one line on stderr and a
/// non-zero exit (no usage dump, no stack trace).
@main
enum Main {
    static func main() {
        Interrupt.install()
        do {
            var command = try Normlab.parseAsRoot(NegativeNumberArguments.joined(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch let error as any UserFacingError {
            fail(error.userMessage, code: error.exitStatus)
        } catch {
            let code = Normlab.exitCode(for: error)
            if code == .success {
                Normlab.exit(withError: error)   // --help / --version: print and exit 0
            }
            var text = Normlab.message(for: error)
            if let plain = NegativeNumberArguments.message(rewriting: text) { text = plain }
            fail(text.split(separator: "\n").first.map(String.init) ?? "invalid arguments", code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        let line = "normlab: error: " + message.replacingOccurrences(of: "\n", with: " ") + "\n"
        FileHandle.standardError.write(line.data(using: .utf8)!)
        exit(code == 0 ? 1 : code)
    }
}

/// An error in the CLI layer itself (bad flag combination), printed as one line.
struct CLIError: UserFacingError {
    let description: String
    init(_ message: String) { description = message }
}

struct Normlab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normlab",
        abstract: "A research framework for normalization layers (BN, BRN, GN, LN, IN, FRN and your own).",
        version: NormlabVersion.string,
        subcommands: [ListCommand.self, DescribeCommand.self, ApplyCommand.self, ParityCommand.self, TrainCommand.self, BenchCommand.self, AblateCommand.self])
}
