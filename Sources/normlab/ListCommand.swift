import ArgumentParser
import NormCore

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the registered normalization methods.")

    func run() throws {
        let registry = try CLIRegistry.load()
        print(DescriptorText.table(registry))
    }
}

struct DescribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Show a method's options, defaults, state and conventions.")

    @Argument(help: "Method name or alias (case-insensitive).")
    var method: String

    func run() throws {
        let registry = try CLIRegistry.load()
        print(DescriptorText.describe(try registry.entry(named: method).descriptor))
    }
}
