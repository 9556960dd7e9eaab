import ArgumentParser
import NormCore

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the registered normalization methods.")

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        let registry = try plugins.registry()
        print(DescriptorText.table(registry))
    }
}

struct DescribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Show a method's options, defaults, state and conventions.")

    @Argument(help: "Method name or alias (case-insensitive).")
    var method: String

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        let registry = try plugins.registry()
        print(DescriptorText.describe(try registry.entry(named: method).descriptor))
    }
}
