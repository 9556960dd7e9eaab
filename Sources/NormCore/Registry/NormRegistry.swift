/// The table of available normalization methods, looked up by canonical name or alias,
/// case-insensitively (the MMCV norm registry / timm `create_norm_layer` idea).
///
/// Built-ins are added by `NormPlugins` (`Builtins.register(into:)`); a custom Swift
/// plugin is one call: `try registry.register(MyNorm.self)`.
public struct NormRegistry: Sendable {
    /// A registered method: its descriptor and how to build an instance.
    public struct Entry: Sendable {
        public let descriptor: NormDescriptor
        public let make: @Sendable (FeatureShape, NormOptions) throws -> any Normalization
        /// A float64 reference implementation for parity checks, if any (keyed by name).
        public let hasReference: Bool
    }

    private var entries: [Entry] = []
    private var index: [String: Int] = [:]
    /// The method models use when none is named (``NormSpec/registryDefault``); the
    /// registration list that registers it declares it.
    public private(set) var defaultMethod: String?

    public init() {}

    /// Registers a Swift plugin type under its descriptor's name and aliases.
    public mutating func register<P: NormalizationPlugin>(_ type: P.Type, hasReference: Bool = false) throws {
        try register(descriptor: P.descriptor, hasReference: hasReference) { shape, options in
            try P(shape: shape, options: options)
        }
    }

    /// Registers a method given by a descriptor and a factory (used by Python plugins).
    public mutating func register(descriptor: NormDescriptor, hasReference: Bool = false,
                                  make: @escaping @Sendable (FeatureShape, NormOptions) throws -> any Normalization) throws {
        let keys = ([descriptor.name] + descriptor.aliases).map { $0.lowercased() }
        for key in keys where index[key] != nil {
            throw NormError.invalidConfiguration(
                method: descriptor.name, reason: "cannot register: the name '\(key)' is already taken by \(entries[index[key]!].descriptor.name)")
        }
        guard !descriptor.name.isEmpty, Set(keys).count == keys.count else {
            throw NormError.invalidConfiguration(method: descriptor.name, reason: "cannot register: empty or repeated name/alias")
        }
        entries.append(Entry(descriptor: descriptor, make: make, hasReference: hasReference))
        for key in keys { index[key] = entries.count - 1 }
    }

    /// Makes a registered method the default (what `NormSpec.registryDefault` resolves to).
    public mutating func setDefault(_ name: String) throws {
        defaultMethod = try entry(named: name).descriptor.name
    }

    /// All registered methods in registration order.
    public var all: [Entry] { entries }
    /// Canonical names in registration order.
    public var names: [String] { entries.map(\.descriptor.name) }

    /// The entry for a name or alias (case-insensitive).
    public func entry(named name: String) throws -> Entry {
        if name.lowercased() == NormSpec.defaultMethodName, let d = defaultMethod, let i = index[d.lowercased()] { return entries[i] }
        guard let i = index[name.lowercased()] else { throw NormError.unknownMethod(name, known: names) }
        return entries[i]
    }

    /// Validates the spec's options against the method's schema.
    public func options(for spec: NormSpec) throws -> NormOptions {
        let entry = try entry(named: spec.name)
        return try NormOptions(method: entry.descriptor.name, schema: entry.descriptor.options, given: spec.options)
    }

    /// Builds a plugin instance for `spec` at `shape`.
    public func make(_ spec: NormSpec, shape: FeatureShape) throws -> any Normalization {
        let entry = try entry(named: spec.name)
        let options = try NormOptions(method: entry.descriptor.name, schema: entry.descriptor.options, given: spec.options)
        return try entry.make(shape, options)
    }

    /// Builds a layer with a freeze policy applied.
    public func makeLayer(_ spec: NormSpec, shape: FeatureShape, freeze: FreezePolicy = .none) throws -> NormLayer {
        try NormLayer(make(spec, shape: shape), freeze: freeze)
    }
}
