import ArgumentParser
import NormAblate
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
    var method: String?

    @Flag(name: .customLong("spec"), help: "Show the keys an ablation cell accepts (model, data, optimizer, freezing, inference statistics) and the metrics it records.")
    var spec = false

    @OptionGroup var plugins: PluginOptions

    func validate() throws {
        if method == nil && !spec { throw ValidationError("give a method name (normlab list shows them) or --spec") }
        if method != nil && spec { throw ValidationError("give a method name or --spec, not both") }
    }

    func run() throws {
        guard let method else {
            let width = TrainingRunner.keyDocumentation.map(\.key.count).max() ?? 0
            print("Keys of an ablation cell (the train runner; dotted paths into base/grid):")
            for (key, meaning) in TrainingRunner.keyDocumentation {
                print("  " + key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + meaning)
            }
            return
        }
        let registry = try plugins.registry()
        print(DescriptorText.describe(try registry.entry(named: method).descriptor))
    }
}
