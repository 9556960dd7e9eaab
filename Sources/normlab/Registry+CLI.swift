import NormCore
import NormPlugins

/// The registry the CLI uses: the built-ins (custom plugins join here).
enum CLIRegistry {
    static func load() throws -> NormRegistry {
        Builtins.registry
    }
}
