import ArgumentParser
import NormCore
import NormPlugins
import NormPython

/// `--plugin FILE` (repeatable), shared by every command that resolves method names.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: "A Python plugin file to load (repeatable); also every *.py in $NORMLAB_PLUGIN_PATH.")
    var files: [String] = []
    @Option(name: .customLong("plugin-timeout"), help: "Seconds each call into plugin code may take before it is stopped with an error (default: no limit).")
    var timeout: Double?

    /// The built-ins plus every requested plugin. Python starts only if a plugin is loaded.
    func registry() throws -> NormRegistry {
        var registry = Builtins.registry
        let pluginFiles = PythonPlugins.pluginFiles(explicit: files)
        if let timeout {
            guard timeout > 0, timeout.isFinite else { throw CLIError("--plugin-timeout must be a positive number of seconds, got \(timeout)") }
            if !pluginFiles.isEmpty { try PythonPlugins.setTimeLimit(seconds: timeout) }
        }
        for file in pluginFiles {
            try PythonPlugins.register(file: file, into: &registry)
        }
        return registry
    }
}
