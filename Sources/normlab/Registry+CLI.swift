import ArgumentParser
import NormCore
import NormPlugins
import NormPython

/// `--plugin FILE` (repeatable), shared by every command that resolves method names.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: "A Python plugin file to load (repeatable); also every *.py in $NORMLAB_PLUGIN_PATH.")
    var files: [String] = []

    /// The built-ins plus every requested plugin. Python starts only if a plugin is loaded.
    func registry() throws -> NormRegistry {
        var registry = Builtins.registry
        for file in PythonPlugins.pluginFiles(explicit: files) {
            try PythonPlugins.register(file: file, into: &registry)
        }
        return registry
    }
}
