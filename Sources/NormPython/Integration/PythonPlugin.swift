import Foundation
import NormCore

/// Normalization methods written in Python: a `.py` file with a `NORMLAB_PLUGIN`
/// descriptor, a numpy `Layer` class (forward, backward, optional buffers) and an optional
/// float64 `reference` (see `python/plugins/rms_norm.py`). Once registered, such a method
/// works everywhere a built-in does: `list`, `describe`, `apply`, `parity`.
public enum PythonPlugins {
    /// Environment variable with `:`-separated folders whose `*.py` files are loaded as plugins.
    public static let pathVariable = "NORMLAB_PLUGIN_PATH"

    /// Loads a plugin file and registers it. Any problem (missing file, syntax error, bad
    /// descriptor, name clash) is a one-line ``NormError``.
    public static func register(file path: String, into registry: inout NormRegistry) throws {
        let label = URL(fileURLWithPath: path).lastPathComponent
        let data: PyObjectRef
        do {
            let host = try PythonSupport.host()
            data = try Python.withGIL { try host.attribute("load_plugin").call(arguments: [path]) }
        } catch let e as PythonError {
            throw NormError.pluginLoad(e.typeName.hasSuffix("PluginError") ? e.message : "plugin file \(label): \(e.description)")
        }
        let descriptor = try Python.withGIL { try decodeDescriptor(data) }
        let capabilities = try Python.withGIL { try PythonPluginCapabilities(data) }
        let hasReference = try Python.withGIL { try data.item("has_reference").decode(Bool.self) }
        try registry.register(descriptor: descriptor, hasReference: hasReference) { shape, options in
            try PythonNormLayer(descriptor: descriptor, capabilities: capabilities, shape: shape, options: options)
        }
    }

    /// Limits every later call into plugin code (loading, `Layer(...)`, forward, backward,
    /// reference) to `seconds`; a call that takes longer fails with a one-line error naming
    /// the plugin. The limit stops Python bytecode (an endless loop), not one long C call.
    public static func setTimeLimit(seconds: Double) throws {
        do {
            let host = try PythonSupport.host()
            _ = try Python.withGIL { try host.attribute("set_time_limit").call(arguments: [seconds]) }
        } catch let e as PythonError {
            throw NormError.pluginLoad(e.description)
        }
    }

    /// Files named on the command line plus every `*.py` in `$NORMLAB_PLUGIN_PATH` folders.
    public static func pluginFiles(explicit: [String]) -> [String] {
        var files = explicit
        if let env = ProcessInfo.processInfo.environment[pathVariable] {
            for dir in env.split(separator: ":") where !dir.isEmpty {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: String(dir))) ?? []
                files += names.filter { $0.hasSuffix(".py") }.sorted().map { "\(dir)/\($0)" }
            }
        }
        return files
    }

    private static func decodeDescriptor(_ d: PyObjectRef) throws -> NormDescriptor {
        let name = try d.item("name").decode(String.self)
        var options: [OptionSpec] = []
        for o in try d.item("options").decode([PyObjectRef].self) {
            let oname = try o.item("name").decode(String.self)
            let type = try o.item("type").decode(String.self)
            let lo = try o.item("min").decode(Double?.self), hi = try o.item("max").decode(Double?.self)
            let kind: OptionKind
            switch type {
            case "real": kind = .real((lo ?? -.greatestFiniteMagnitude)...(hi ?? .greatestFiniteMagnitude))
            case "integer": kind = .integer(Int(lo ?? Double(Int.min / 2))...Int(hi ?? Double(Int.max / 2)))
            case "bool": kind = .bool
            default: kind = .choice(try o.item("choices").decode([String].self))
            }
            let def = try o.item("default")
            let value: OptionValue? = def.isNone ? nil : try decodeValue(def, kind: kind)
            let samples = try o.item("samples").decode([PyObjectRef].self).map { try decodeValue($0, kind: kind) }
            options.append(OptionSpec(oname, kind, default: value, try o.item("help").decode(String.self), samples: samples))
        }
        let ranks = try d.item("ranks").decode([Int].self)
        let constraints: [NormConstraint] = try d.item("constraints").decode([[String]].self).map { pair in
            pair[0] == "divides_batch" ? .dividesBatch(option: pair[1]) : .dividesChannels(option: pair[1])
        }
        let reduction: ReductionAxes? = try d.item("reduction").decode(String?.self).map { r in
            switch r {
            case "batch": return .batchAndSpatial
            case "spatial": return .spatial
            case "channels": return .channelsAndSpatial
            default: return .channelGroupsAndSpatial(groupsOption: String(r.dropFirst("groups:".count)))
            }
        }
        return NormDescriptor(
            name: name, aliases: try d.item("aliases").decode([String].self),
            summary: try d.item("summary").decode(String.self),
            reference: try d.item("reference").decode(String.self),
            options: options, ranks: ranks[0]...ranks[1],
            notes: ["custom plugin written in Python (numpy forward/backward)"],
            constraints: constraints, reduction: reduction)
    }

    private static func decodeValue(_ v: PyObjectRef, kind: OptionKind) throws -> OptionValue {
        switch kind {
        case .bool: return .bool(try v.decode(Bool.self))
        case .integer: return .integer(try v.decode(Int.self))
        case .real, .realOrNone: return v.isNone ? .none : .real(try v.decode(Double.self))
        case .choice: return .text(try v.decode(String.self))
        }
    }
}

/// What a Python plugin's descriptor declares beyond its options (the capabilities a Swift
/// plugin declares through protocols): whether its output includes the activation (always,
/// or when a bool option is on) and which of its buffers are running statistics.
struct PythonPluginCapabilities: Sendable {
    let includesActivation: Bool
    let activationOption: String?
    /// `nil`: every buffer is a running statistic.
    let runningBuffers: [String]?

    init(_ d: PyObjectRef) throws {
        includesActivation = try d.item("includes_activation").decode(Bool?.self) ?? false
        activationOption = try d.item("activation_option").decode(String?.self)
        runningBuffers = try d.item("running_buffers").decode([String]?.self)
    }
}

/// A layer whose forward and backward run in a Python plugin's `Layer` object. Parameters
/// and buffers live in Swift tensors that Python sees as zero-copy numpy views (buffers are
/// writable only in train mode).
final class PythonNormLayer: Normalization, @unchecked Sendable {
    let descriptor: NormDescriptor
    let parameters: [Parameter]
    let buffers: [Buffer]
    private let layer: PyObjectRef
    private var lastInput: Tensor?

    let includesActivation: Bool
    let tracksRunningStatistics: Bool

    init(descriptor: NormDescriptor, capabilities: PythonPluginCapabilities, shape: FeatureShape, options: NormOptions) throws {
        self.descriptor = descriptor
        includesActivation = capabilities.activationOption.map { options.values[$0] == .bool(true) } ?? capabilities.includesActivation
        let host = try PythonSupport.host()
        do {
            let built = try Python.withGIL {
                try host.attribute("make_layer").call(arguments: [
                    descriptor.name, shape.channels, shape.spatial, options.values])
            }
            layer = try built.item(0)
            let params = try built.item(1).decode([String: Tensor].self)
            let bufs = try built.item(2).decode([String: Tensor].self)
            parameters = params.keys.sorted { ($0 == "weight" ? 0 : $0 == "bias" ? 1 : 2, $0) < ($1 == "weight" ? 0 : $1 == "bias" ? 1 : 2, $1) }
                .map { Parameter(name: $0, value: params[$0]!) }
            buffers = bufs.keys.sorted().map { Buffer(name: $0, value: bufs[$0]!) }
        } catch let e as PythonError {
            throw e.asPluginFailure(method: descriptor.name)
        }
        tracksRunningStatistics = buffers.contains { capabilities.runningBuffers?.contains($0.name) ?? true }
    }

    private var parameterViews: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.value) })
    }

    func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard descriptor.ranks.contains(x.rank) else {
            throw NormError.invalidInput(method: descriptor.name,
                reason: "input of shape \(x.shape.shapeText) has rank \(x.rank); expected rank \(descriptor.ranks.lowerBound) to \(descriptor.ranks.upperBound)")
        }
        guard x.shape[0] > 0, x.shape.allSatisfy({ $0 > 0 }) else {
            throw NormError.invalidInput(method: descriptor.name, reason: "empty batch: input shape \(x.shape.shapeText)")
        }
        do {
            let host = try PythonSupport.host()
            let y = try Python.withGIL { () -> Tensor in
                let bufferViews = try PyObjectRef.dict([])
                for b in buffers {
                    let view = mode == .train ? try b.value.writableNumpyView() : try b.value.numpyView()
                    try bufferViews.setItem(b.name, to: view)
                }
                let out = try host.attribute("forward").call(arguments: [
                    descriptor.name, layer, x, mode.rawValue, parameterViews, bufferViews])
                return try Tensor(numpy: out)
            }
            lastInput = x
            return y
        } catch let e as PythonError {
            throw e.asPluginFailure(method: descriptor.name)
        }
    }

    func backward(_ gradOutput: Tensor) throws -> Tensor {
        guard let x = lastInput else {
            throw NormError.invalidBackward(method: descriptor.name, reason: "backward called before forward")
        }
        guard gradOutput.shape == x.shape else {
            throw NormError.invalidBackward(method: descriptor.name,
                reason: "gradient shape \(gradOutput.shape.shapeText) differs from the input shape \(x.shape.shapeText)")
        }
        do {
            let host = try PythonSupport.host()
            return try Python.withGIL { () -> Tensor in
                let out = try host.attribute("backward").call(arguments: [descriptor.name, layer, gradOutput, parameterViews])
                let gx = try Tensor(numpy: out.item(0))
                let grads = try out.item(1).decode([String: Tensor].self)
                for p in parameters { p.gradient = p.requiresGrad ? grads[p.name] : nil }
                return gx
            }
        } catch let e as PythonError {
            throw e.asPluginFailure(method: descriptor.name)
        }
    }
}
