import ArgumentParser
import Foundation
import NormCore
import NormParity
import NormParityPython
import NormPython

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Compare every plugin with its float64 numpy reference on seeded cases (exit 1 on any mismatch).")

    @Option(help: "Comma-separated methods (default: every registered method with a reference).") var methods: String?
    @Option(help: "Seed of the case generator.") var seed: UInt64 = 0
    @Option(help: "Cases per method (>= 1).") var cases: Int = 60
    @Option(name: .customLong("set"), help: "Pin an option in every case, KEY=VALUE (repeatable; with one --methods entry, or valid for each selected method).") var settings: [String] = []
    @Flag(help: "Print the report as JSON instead of a table.") var json = false
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        guard cases >= 1 else { throw CLIError("--cases must be at least 1, got \(cases)") }
        let registry = try plugins.registry()
        let selected: [NormRegistry.Entry]
        if let methods {
            selected = try methods.split(separator: ",").map { name in
                let e = try registry.entry(named: name.trimmingCharacters(in: .whitespaces))
                guard e.hasReference else { throw CLIError("\(e.descriptor.name) has no reference implementation to compare with") }
                return e
            }
        } else {
            selected = registry.all.filter(\.hasReference)
        }
        var pinned: [String: [String: OptionValue]] = [:]
        for e in selected where !settings.isEmpty {
            pinned[e.descriptor.name] = try NormOptions.parse(method: e.descriptor.name, schema: e.descriptor.options, settings: settings)
        }
        let report = try ParitySuite.run(registry: registry, backend: PythonReferenceBackend(),
                                         methods: selected.map(\.descriptor), seed: seed, casesPerMethod: cases, pinned: pinned)
        if json {
            FileHandle.standardOutput.write(try report.json())
            print()
        } else {
            print(report.table)
            print(report.passed ? "parity: all methods match their references" : "parity: MISMATCH")
        }
        if !report.passed { throw ExitCode(1) }
    }
}
