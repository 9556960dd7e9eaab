import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure every plugin against memory bandwidth and numpy (in progress).")
    func run() throws { throw CLIError("normlab bench is not implemented yet") }
}
