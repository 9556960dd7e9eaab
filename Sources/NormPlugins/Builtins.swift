import NormCore

/// The built-in methods, registered in `normlab list` order.
public enum Builtins {
    /// The built-in plugin types.
    public static let types: [any NormalizationPlugin.Type] = [
        BatchNorm.self, BatchRenorm.self, GroupNorm.self, LayerNorm.self, InstanceNorm.self, FilterResponseNorm.self,
        EvoNormS0.self, RMSNorm.self, GhostBatchNorm.self, LocalResponseNorm.self, EvoNormB0.self, SwitchableNorm.self,
        BatchChannelNorm.self,
    ]

    /// Adds every built-in to `registry` (each has a numpy reference in `python/normref`).
    public static func register(into registry: inout NormRegistry) {
        for type in types { try! registerOne(type, into: &registry) }
        // Batch normalization is what a model uses when no method is named.
        try! registry.setDefault(BatchNorm.descriptor.name)
    }

    private static func registerOne<P: NormalizationPlugin>(_ type: P.Type, into registry: inout NormRegistry) throws {
        try registry.register(type, hasReference: true)
    }

    /// A registry holding just the built-ins.
    public static var registry: NormRegistry {
        var r = NormRegistry()
        register(into: &r)
        return r
    }
}
