import NormCore
import Foundation

/// Runs an ``ApplyRequest``: reads and validates every input, builds the layer from the
/// registry, runs forward (and backward), and only then writes all outputs at once.
public enum ApplyRunner {
    /// Reads, validates and computes; writes nothing.
    public static func compute(_ request: ApplyRequest, registry: NormRegistry) throws -> ApplyResult {
        let entry = try wrap { try registry.entry(named: request.method) }
        let name = entry.descriptor.name
        var values = ApplyValueGuard()
        let x = try read(request.input, into: &values)
        let given = try wrap { try NormOptions.parse(method: name, schema: entry.descriptor.options, settings: request.settings) }
        let options = try wrap { try NormOptions(method: name, schema: entry.descriptor.options, given: given) }
        guard x.rank >= 1 else {
            throw ApplyError.norm(.invalidInput(method: name, reason: "input is a scalar; expected (N, C, ...) with channel axis 1"))
        }
        guard entry.descriptor.ranks.contains(x.rank) else {
            // Checked again by the plugin; here so that shape-dependent construction sees a sane shape.
            throw ApplyError.norm(.invalidInput(method: name, reason:
                "input of shape \(x.shape.shapeText) has rank \(x.rank); \(name) accepts rank \(entry.descriptor.ranks.lowerBound) to \(entry.descriptor.ranks.upperBound)"
                + (entry.descriptor.ranks.lowerBound >= 3 ? " (at least one spatial axis)" : "")))
        }
        let layer = try wrap { try entry.make(FeatureShape(of: x), options) }

        var seen = Set<String>()
        for (pname, url) in request.parameterFiles {
            guard seen.insert(pname).inserted else { throw ApplyError.usage("parameter '\(pname)' is given twice") }
            guard let p = layer.parameter(named: pname) else {
                throw ApplyError.norm(.unknownState(method: name, name: pname, known: layer.parameters.map(\.name)))
            }
            p.value = try conform(read(url, into: &values), to: p.value.shape, name: pname, method: name, path: url.path)
        }
        for (bname, url) in request.bufferFiles {
            guard let b = layer.buffer(named: bname) else {
                let hint = layer.tracksRunningStatistics ? "" : " (\(name) keeps no running statistics with these options; e.g. --set track_running_stats=true)"
                throw ApplyError.usage("\(name): no buffer named '\(bname)'\(hint)")
            }
            b.value = try conform(read(url, into: &values), to: b.value.shape, name: bname, method: name, path: url.path)
        }
        let gy = try request.gradOutput.map { url -> Tensor in
            let g = try read(url, into: &values)
            guard g.shape == x.shape else {
                throw ApplyError.usage("\(url.path): grad-output shape \(g.shape.shapeText) differs from the input shape \(x.shape.shapeText)")
            }
            return g
        }

        var result = ApplyResult()
        let y = try wrap { try layer.forward(x, mode: request.mode) }
        result.arrays.append(("output", y))
        if let gy {
            let gx = try wrap { try layer.backward(gy) }
            result.arrays.append(("grad_input", gx))
            for p in layer.parameters {
                guard let g = p.gradient else { continue }
                result.arrays.append(("grad_\(p.name)", g))
            }
        }
        if let stats = (layer as? RunningStatisticsProviding)?.runningStatistics, stats.skippedUpdates > 0 {
            result.warnings.append("\(name): running statistics were not updated: the batch statistics are not finite (skip_nonfinite=true)")
        }
        if request.mode == .train && layer.tracksRunningStatistics {
            for bname in ["running_mean", "running_var"] {
                if let b = layer.buffer(named: bname) { result.arrays.append((bname, b.value)) }
            }
        }
        try values.check(result)
        return result
    }

    /// Writes every array as `<name>.npy` into `directory` (created if missing): each goes to
    /// a hidden temporary file first and all are renamed into place only when all were
    /// written, so a failure leaves no partial output.
    public static func write(_ result: ApplyResult, to directory: URL) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ApplyError.output("\(directory.path): exists and is not a directory") }
        } else {
            do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) }
            catch { throw ApplyError.output("\(directory.path): cannot create the output directory (\(error.localizedDescription))") }
        }
        let tag = "\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        var temporaries: [(URL, URL)] = []
        func cleanUp() { for (t, _) in temporaries { try? fm.removeItem(at: t) } }
        for (name, tensor) in result.arrays {
            let final = directory.appendingPathComponent("\(name).npy")
            let temp = directory.appendingPathComponent(".\(name).npy.\(tag).tmp")
            do { try NPY.encode(tensor).write(to: temp) } catch {
                cleanUp()
                throw ApplyError.output("\(final.path): cannot write (\(error.localizedDescription))")
            }
            temporaries.append((temp, final))
        }
        var placed: [URL] = []
        for (temp, final) in temporaries {
            if rename(temp.path, final.path) != 0 {
                let reason = String(cString: strerror(errno))
                for url in placed { try? fm.removeItem(at: url) }
                cleanUp()
                throw ApplyError.output("\(final.path): cannot write (\(reason))")
            }
            placed.append(final)
        }
    }

    private static func read(_ url: URL, into values: inout ApplyValueGuard) throws -> Tensor {
        let tensor: Tensor
        do { tensor = try NPY.read(contentsOf: url) } catch { throw ApplyError.file(path: url.path, error) }
        try values.admit(tensor, path: url.path)
        return tensor
    }

    /// Accepts an array whose shape equals `shape` up to size-1 axes (`(1, C, 1, 1)` for `(C,)`).
    private static func conform(_ t: Tensor, to shape: [Int], name: String, method: String, path: String) throws -> Tensor {
        guard t.shape.squeezed == shape.squeezed else {
            throw ApplyError.usage("\(path): \(method): '\(name)' must have shape \(shape.shapeText), got \(t.shape.shapeText)")
        }
        return t.reshaped(shape)
    }

    private static func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as NormError { throw ApplyError.norm(e) }
    }
}
