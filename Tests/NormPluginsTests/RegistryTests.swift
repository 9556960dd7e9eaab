import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// A custom method written the way a user would: RMSNorm over every non-batch axis with a
/// per-channel gain, `y = w_c · x / √(mean(x²) + eps)`. Registered with one call.
final class RMSNormSwift: NormalizationPlugin {
    static let descriptor = NormDescriptor(
        name: "rms_norm_swift", aliases: ["rmsswift", "rms_swift"],
        summary: "RMSNorm over (C, spatial...) with a per-channel gain (test plugin)",
        reference: "Zhang & Sennrich 2019, arXiv:1910.07467",
        options: [CommonOptions.eps(default: 1e-6), OptionSpec("affine", .bool, default: .bool(true), "per-channel gain")],
        ranks: 2...5)

    let channels: Int
    let eps: Double
    let weight: Parameter?
    private var cache: (x: Tensor, inv: [Double])?

    init(shape: FeatureShape, options: NormOptions) throws {
        guard shape.channels > 0 else {
            throw NormError.invalidConfiguration(method: Self.descriptor.name, reason: "channels must be positive")
        }
        channels = shape.channels
        eps = options.real("eps")
        weight = options.bool("affine") ? Parameter(name: "weight", value: .ones([channels])) : nil
    }

    var parameters: [Parameter] { weight.map { [$0] } ?? [] }
    var buffers: [Buffer] { [] }
    var tracksRunningStatistics: Bool { false }

    func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard Self.descriptor.ranks.contains(x.rank), x.shape[1] == channels, x.shape[0] > 0 else {
            throw NormError.invalidInput(method: Self.descriptor.name, reason: "bad input shape \(x.shape.shapeText)")
        }
        let n = x.shape[0], m = x.count / n, s = m / channels, v = x.scalars
        let w = weight?.value.scalars
        var inv = [Double](), y = [Float](repeating: 0, count: x.count)
        for r in 0..<n {
            let ms = (0..<m).reduce(0.0) { $0 + Double(v[r * m + $1]) * Double(v[r * m + $1]) } / Double(m)
            let iv = 1 / (ms + eps).squareRoot()
            inv.append(iv)
            for i in 0..<m { y[r * m + i] = Float(Double(v[r * m + i]) * iv * Double(w?[i / s] ?? 1)) }
        }
        cache = (x, inv)
        return Tensor(shape: x.shape, scalars: y)
    }

    func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let (x, inv) = cache, gradOutput.shape == x.shape else {
            throw NormError.invalidBackward(method: Self.descriptor.name, reason: "backward without a matching forward")
        }
        // gx_j = inv·w_j·g_j − inv³·x_j/M · Σ_i g_i·w_i·x_i;  gw_c = Σ_{i in c} g_i·x_i·inv.
        let n = x.shape[0], m = x.count / n, s = m / channels, v = x.scalars, g = gradOutput.scalars
        let w = weight?.value.scalars
        var gx = [Float](repeating: 0, count: x.count), gw = [Double](repeating: 0, count: channels)
        for r in 0..<n {
            let iv = inv[r]
            var dot = 0.0
            for i in 0..<m { dot += Double(g[r * m + i]) * Double(w?[i / s] ?? 1) * Double(v[r * m + i]) }
            for i in 0..<m {
                let j = r * m + i, wj = Double(w?[i / s] ?? 1)
                gx[j] = Float(iv * wj * Double(g[j]) - iv * iv * iv * Double(v[j]) / Double(m) * dot)
                gw[i / s] += Double(g[j]) * Double(v[j]) * iv
            }
        }
        if let weight { weight.gradient = weight.requiresGrad ? Tensor(shape: [channels], doubles: gw) : nil }
        return Tensor(shape: x.shape, scalars: gx)
    }
}

@Suite("Registry: names, options, custom plugins")
struct RegistryTests {
    @Test("built-ins are registered in order under canonical names")
    func builtinNames() {
        #expect(Array(builtins.names.prefix(7)) == ["batch_norm", "batch_renorm", "group_norm", "layer_norm", "instance_norm",
                                                    "filter_response_norm", "evonorm_s0"])
        #expect(builtins.names == Builtins.types.map { $0.descriptor.name })
        #expect(builtins.all.allSatisfy { $0.hasReference })
        #expect(builtins.defaultMethod == "batch_norm" && (try? builtins.entry(named: "default"))?.descriptor.name == "batch_norm")
    }

    @Test("names and aliases are case-insensitive", arguments: [
        ("BN", "batch_norm"), ("Batch_Norm", "batch_norm"), ("bn", "batch_norm"), ("BatchNorm", "batch_norm"),
        ("BRN", "batch_renorm"), ("batch_RENORM", "batch_renorm"), ("gn", "group_norm"), ("Group_Norm", "group_norm"),
        ("LN", "layer_norm"), ("IN", "instance_norm"), ("Instance_Norm", "instance_norm"),
        ("FRN", "filter_response_norm"), ("Filter_Response_Norm", "filter_response_norm"),
    ])
    func caseInsensitiveLookup(name: String, canonical: String) throws {
        #expect(try builtins.entry(named: name).descriptor.name == canonical)
        // Building through any spelling gives the same method.
        let options: [String: OptionValue] = canonical == "group_norm" ? ["num_groups": .integer(1)] : [:]
        let layer = try builtins.make(NormSpec(name, options: options), shape: FeatureShape(channels: 2, spatial: [3]))
        #expect(layer.descriptor.name == canonical)
    }

    @Test("an unknown name is an error listing the known names")
    func unknownName() {
        #expect(throws: NormError.unknownMethod("batchnorm2d", known: builtins.names)) {
            try builtins.entry(named: "batchnorm2d")
        }
        let error = #expect(throws: NormError.self) {
            try builtins.make(NormSpec("weight_norm"), shape: FeatureShape(channels: 3, spatial: []))
        }
        let text = error?.description ?? ""
        #expect(text.contains("weight_norm"))
        for name in builtins.names { #expect(text.contains(name), "message should list \(name): \(text)") }
        #expect(!text.contains("\n"))
    }

    @Test("registering a taken name or alias is refused, in any case")
    func duplicateRegistration() throws {
        var registry = Builtins.registry
        #expect(throws: NormError.self) { try registry.register(BatchNorm.self) }
        // A new name whose alias collides with a built-in alias, differently cased.
        let clash = NormDescriptor(name: "my_norm", aliases: ["LN"], summary: "", reference: "", options: [])
        let error = #expect(throws: NormError.self) {
            try registry.register(descriptor: clash) { shape, options in try RMSNormSwift(shape: shape, options: options) }
        }
        #expect(error?.description.contains("layer_norm") == true)
        // A descriptor repeating its own name among its aliases.
        let selfClash = NormDescriptor(name: "twice", aliases: ["TWICE"], summary: "", reference: "", options: [])
        #expect(throws: NormError.self) {
            try registry.register(descriptor: selfClash) { shape, options in try RMSNormSwift(shape: shape, options: options) }
        }
        // Failed registrations leave the registry as it was.
        #expect(registry.names == Builtins.registry.names)
        #expect(throws: NormError.self) { try registry.entry(named: "my_norm") }
    }

    @Test("an unknown option key is an error naming the key and the known options")
    func unknownOption() {
        let error = #expect(throws: NormError.self) {
            try builtins.make(NormSpec("bn", options: ["momentun": .real(0.1)]), shape: FeatureShape(channels: 3, spatial: []))
        }
        guard case let .unknownOption(method, option, known)? = error else {
            Issue.record("expected unknownOption, got \(String(describing: error))"); return
        }
        #expect(method == "batch_norm" && option == "momentun")
        #expect(known.contains("momentum") && known.contains("eps") && known.contains("track_running_stats"))
        // Same through the CLI's KEY=VALUE parser.
        #expect(throws: NormError.self) {
            try NormOptions.parse(method: "batch_norm", schema: BatchNorm.descriptor.options, settings: ["foo=1"])
        }
    }

    @Test("bad values are refused with the option named", arguments: [
        ("bn", "momentum", OptionValue.real(1.5)), ("bn", "momentum", .real(-0.1)), ("bn", "eps", .real(-1)),
        ("bn", "eps", .text("abc")), ("bn", "affine", .integer(2)), ("bn", "running_var", .text("sample")),
        ("gn", "num_groups", .integer(0)), ("gn", "num_groups", .real(1.5)), ("brn", "r_max", .real(0.5)),
        ("brn", "d_max", .real(-1)), ("frn", "tlu", .text("maybe")),
    ])
    func badValues(method: String, key: String, value: OptionValue) {
        var options: [String: OptionValue] = [key: value]
        if method == "gn" && key != "num_groups" { options["num_groups"] = .integer(1) }
        let error = #expect(throws: NormError.self) {
            try builtins.make(NormSpec(method, options: options), shape: FeatureShape(channels: 4, spatial: [2]))
        }
        guard case let .invalidOption(_, option, _, _)? = error else {
            Issue.record("expected invalidOption, got \(String(describing: error))"); return
        }
        #expect(option == key)
    }

    @Test("KEY=VALUE parsing: unparsable values, missing '=', a key set twice; valid texts accepted")
    func settingsParsing() throws {
        let schema = BatchNorm.descriptor.options
        for bad in ["eps=abc", "momentum=0.1.2", "affine=perhaps", "eps=nan", "eps=inf", "momentum=", "track_running_stats=2"] {
            let error = #expect(throws: NormError.self, "\(bad)") {
                try NormOptions.parse(method: "batch_norm", schema: schema, settings: [bad])
            }
            if case .invalidOption? = error {} else { Issue.record("\(bad): expected invalidOption, got \(String(describing: error))") }
        }
        #expect(throws: NormError.self) { try NormOptions.parse(method: "batch_norm", schema: schema, settings: ["eps"]) }
        #expect(throws: NormError.self) { try NormOptions.parse(method: "batch_norm", schema: schema, settings: ["=1"]) }
        #expect(throws: NormError.self) { try NormOptions.parse(method: "batch_norm", schema: schema, settings: ["eps=1", "EPS=2"]) }
        let parsed = try NormOptions.parse(method: "batch_norm", schema: schema,
                                           settings: ["EPS=0.01", "momentum=None", "affine=off", "running_var=Biased"])
        #expect(parsed == ["eps": .real(0.01), "momentum": .none, "affine": .bool(false), "running_var": .text("biased")])
        let resolved = try NormOptions(method: "batch_norm", schema: schema, given: parsed)
        #expect(resolved.real("eps") == 0.01)
        #expect(resolved.optionalReal("momentum") == nil)
        #expect(resolved.isSet("eps") && !resolved.isSet("track_running_stats"))
        #expect(resolved.bool("track_running_stats"))   // default filled in
    }

    @Test("GroupNorm: num_groups is required, and divisibility is checked at construction")
    func groupNormConstruction() throws {
        #expect(throws: NormError.missingOption(method: "group_norm", option: "num_groups")) {
            try builtins.make(NormSpec("gn"), shape: FeatureShape(channels: 4, spatial: [2]))
        }
        let error = #expect(throws: NormError.self) {
            try builtins.make(NormSpec("gn", options: ["num_groups": .integer(4)]), shape: FeatureShape(channels: 6, spatial: [2]))
        }
        guard case let .invalidConfiguration(method, reason)? = error else {
            Issue.record("expected invalidConfiguration, got \(String(describing: error))"); return
        }
        #expect(method == "group_norm" && reason.contains("6") && reason.contains("4"))
        let ok = try builtins.make(NormSpec("gn", options: ["num_groups": .integer(3)]), shape: FeatureShape(channels: 6, spatial: [2]))
        #expect((ok as? GroupNorm)?.groups == 3)
    }

    @Test("contradictory settings are refused at construction")
    func contradictions() {
        let shape = FeatureShape(channels: 3, spatial: [4])
        let cases: [NormSpec] = [
            NormSpec("bn", options: ["momentum": .real(0.1), "keras_decay": .real(0.9)]),
            NormSpec("brn", options: ["momentum": .none, "keras_decay": .real(0.99)]),
            NormSpec("in", options: ["keras_decay": .real(0.9), "track_running_stats": .bool(true), "momentum": .real(0.2)]),
            NormSpec("in", options: ["momentum": .real(0.2)]),                           // IN tracks nothing by default
            NormSpec("bn", options: ["track_running_stats": .bool(false), "momentum": .real(0.2)]),
            NormSpec("brn", options: ["track_running_stats": .bool(false)]),
        ]
        for spec in cases {
            let error = #expect(throws: NormError.self, "\(spec)") { try builtins.make(spec, shape: shape) }
            if case .invalidConfiguration? = error {} else { Issue.record("\(spec): expected invalidConfiguration, got \(String(describing: error))") }
        }
        // LayerNorm cannot size its elementwise affine without the spatial extents.
        #expect(throws: NormError.self) { try builtins.make(NormSpec("ln"), shape: FeatureShape(channels: 3)) }
    }

    @Test("option defaults are PyTorch's")
    func defaults() throws {
        func resolved(_ name: String) throws -> NormOptions {
            let d = try builtins.entry(named: name).descriptor
            return try NormOptions(method: d.name, schema: d.options, given: name == "gn" ? ["num_groups": .integer(1)] : [:])
        }
        let bn = try resolved("bn")
        #expect(bn.real("eps") == 1e-5 && bn.optionalReal("momentum") == 0.1 && bn.bool("affine") && bn.bool("track_running_stats"))
        #expect(bn.choice("running_var") == "unbiased" && !bn.bool("skip_nonfinite") && bn.optionalReal("keras_decay") == nil)
        let brn = try resolved("brn")
        #expect(brn.real("r_max") == 3 && brn.real("d_max") == 5)
        let inorm = try resolved("in")
        #expect(!inorm.bool("affine") && !inorm.bool("track_running_stats"))
        let frn = try resolved("frn")
        #expect(frn.real("eps") == 1e-6 && frn.bool("tlu") && !frn.bool("learnable_eps"))
        #expect(try resolved("gn").real("eps") == 1e-5 && resolved("ln").real("eps") == 1e-5)
    }

    @Test("a custom Swift plugin registers with one call and runs forward/backward through the registry")
    func customSwiftPlugin() throws {
        var registry = Builtins.registry
        try registry.register(RMSNormSwift.self)   // the one call
        #expect(registry.names.last == "rms_norm_swift")
        #expect(try registry.entry(named: "RMSSwift").descriptor.name == "rms_norm_swift")
        #expect(throws: NormError.self) { try registry.register(RMSNormSwift.self) }
        #expect(throws: NormError.self) { try Builtins.registry.entry(named: "rms_norm_swift") }   // value semantics

        let shape = [3, 2, 4]
        let layer = try registry.make(NormSpec("RMS_Swift", options: ["eps": .real(1e-3)]), shape: featureShape(shape))
        #expect(layer is RMSNormSwift)
        var rng = TestRNG(seed: 41)
        let w = try layer.requireParameter("weight")
        w.value = Tensor(shape: [2], doubles: [1.5, -0.5])
        let x = rng.normalTensor(shape, mean: 0.2)
        let y = try layer.forward(x, mode: .train)
        let v = x.doubles
        let expected = (0..<v.count).map { i -> Double in
            let r = i / 8
            let ms = (0..<8).reduce(0.0) { $0 + v[r * 8 + $1] * v[r * 8 + $1] } / 8
            return v[i] / (ms + 1e-3).squareRoot() * (i % 8 < 4 ? 1.5 : -0.5)
        }
        expectClose(y, expected, rtol: 1e-5, "custom plugin output")
        // Its gradients pass the same finite-difference check as the built-ins (see GradientCheckTests).
        let result = try compareGradients(layer, x: x, gy: rng.normalTensor(shape), mode: .train)
        #expect(result.entries.map(\.name) == ["x", "weight"])
        for e in result.entries { #expect(e.relativeError < 1e-2, "d/d\(e.name): \(e.relativeError)") }

        // Option validation and freezing come for free.
        #expect(throws: NormError.self) {
            try registry.make(NormSpec("rmsswift", options: ["num_groups": .integer(2)]), shape: featureShape(shape))
        }
        #expect(throws: NormError.self) {
            try registry.makeLayer(NormSpec("rmsswift"), shape: featureShape(shape), freeze: FreezePolicy(freezesStatistics: true))
        }
        let frozen = try registry.makeLayer(NormSpec("rmsswift"), shape: featureShape(shape), freeze: FreezePolicy(freezesAffine: true))
        _ = try frozen.forward(x, mode: .train)
        _ = try frozen.backward(x)
        #expect(frozen.parameters.allSatisfy { $0.gradient == nil })
    }

    @Test("every error description is one line")
    func oneLineErrors() {
        let errors: [NormError] = [
            .unknownMethod("x", known: ["a", "b"]), .unknownOption(method: "m", option: "o", known: []),
            .invalidOption(method: "m", option: "o", value: "v", expected: "e"), .missingOption(method: "m", option: "o"),
            .invalidConfiguration(method: "m", reason: "r"), .invalidInput(method: "m", reason: "r"),
            .singleValueReduction(method: "m", reason: "r"), .unknownState(method: "m", name: "n", known: []),
            .stateShape(method: "m", name: "n", expected: [3], got: [4]), .invalidBackward(method: "m", reason: "r"),
            .pluginFailure(method: "m", reason: "r"),
        ]
        for e in errors { #expect(!e.description.isEmpty && !e.description.contains("\n"), "\(e)") }
    }
}
