import Foundation
import NormCore

/// Saving and loading every parameter and buffer of a ``Model`` as a `.npz` keyed by
/// dotted names (`blocks.0.conv.weight`, `blocks.0.norm.running_mean`, `classifier.bias`,
/// …), so a pre-trained model can be fine-tuned (possibly with another head or freeze policy).
public enum Checkpoint {
    /// What a load did.
    public struct LoadReport: Sendable, Equatable {
        /// Model tensors that were set from the file.
        public var loaded: [String] = []
        /// Model tensors the file does not have (kept as they were; only with `strict: false`).
        public var missing: [String] = []
        /// File arrays the model does not have (ignored; only with `strict: false`).
        public var unexpected: [String] = []
        /// Arrays skipped for a shape mismatch (only with `strict: false`).
        public var mismatched: [String] = []
    }

    /// Every parameter then every buffer, in model order.
    public static func arrays(of model: Model) -> [(name: String, tensor: Tensor)] {
        model.namedParameters.map { ($0.name, $0.parameter.value) } + model.namedBuffers.map { ($0.name, $0.buffer.value) }
    }

    public static func save(_ model: Model, to url: URL) throws {
        try NPZ.write(arrays(of: model), to: url)
    }

    /// Loads into `model`. `strict` (default) requires the file to hold exactly the model's
    /// tensors with the same shapes; otherwise matching names and shapes are loaded and the
    /// rest reported. Nothing is changed when a strict load fails.
    @discardableResult
    public static func load(_ model: Model, from url: URL, strict: Bool = true) throws -> LoadReport {
        try load(model, arrays: try NPZ.read(contentsOf: url), strict: strict)
    }

    @discardableResult
    public static func load(_ model: Model, arrays: [(name: String, tensor: Tensor)], strict: Bool = true) throws -> LoadReport {
        var file: [String: Tensor] = [:]
        for (n, t) in arrays { file[n] = t }
        var targets: [(String, (Tensor) -> Void, [Int])] = []
        for (n, p, _) in model.namedParameters { targets.append((n, { p.value = $0 }, p.value.shape)) }
        for (n, b) in model.namedBuffers { targets.append((n, { b.value = $0 }, b.value.shape)) }
        var report = LoadReport()
        var updates: [(Tensor) -> Void] = [], values: [Tensor] = []
        let known = Set(targets.map(\.0))
        report.unexpected = arrays.map(\.name).filter { !known.contains($0) }
        for (name, set, shape) in targets {
            guard let t = file[name] else { report.missing.append(name); continue }
            guard t.shape == shape else { report.mismatched.append("\(name) (file \(t.shape.shapeText), model \(shape.shapeText))"); continue }
            updates.append(set); values.append(t)
            report.loaded.append(name)
        }
        if strict, !(report.missing.isEmpty && report.unexpected.isEmpty && report.mismatched.isEmpty) {
            var parts: [String] = []
            if !report.missing.isEmpty { parts.append("missing \(report.missing.joined(separator: ", "))") }
            if !report.unexpected.isEmpty { parts.append("unexpected \(report.unexpected.joined(separator: ", "))") }
            if !report.mismatched.isEmpty { parts.append("shape mismatch \(report.mismatched.joined(separator: ", "))") }
            throw NetError("checkpoint does not match the model: " + parts.joined(separator: "; "))
        }
        for (set, v) in zip(updates, values) { set(v) }
        return report
    }
}
