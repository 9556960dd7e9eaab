import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// Relative error `‖a − b‖ / max(‖a‖, ‖b‖, tiny)`.
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var d = 0.0, na = 0.0, nb = 0.0
    for i in a.indices { d += (a[i] - b[i]) * (a[i] - b[i]); na += a[i] * a[i]; nb += b[i] * b[i] }
    return d.squareRoot() / max(na.squareRoot(), nb.squareRoot(), 1e-12)
}

/// Central finite differences of `L = Σ r·f(x)` against a layer's analytic backward, for the
/// input and every parameter. Returns the relative error per tensor (`"input"`, parameter names).
/// `(f(p + h·eᵢ) − f(p − h·eᵢ)) / 2h` for every element i of `p`'s value (restored afterwards).
func centralDifferences(of p: Parameter, h: Float, _ objective: () throws -> Double) rethrows -> [Double] {
    var numeric: [Double] = []
    for i in 0..<p.value.count {
        let v = p.value[flat: i]
        p.value[flat: i] = v + h; let lp = try objective()
        p.value[flat: i] = v - h; let lm = try objective()
        p.value[flat: i] = v
        numeric.append((lp - lm) / Double(2 * h))
    }
    return numeric
}

func gradientErrors(_ layer: Layer, input: Tensor, h: Float = 1e-2, mode: Mode = .train, seed: UInt64 = 7) throws -> [String: Double] {
    var rng = SeededGenerator(seed: seed)
    let y0 = try layer.forward(input, mode: mode)
    let r = Tensor.randomNormal(y0.shape, using: &rng)
    let gx = try layer.backward(r)
    let analyticParams = layer.parameters.map { ($0.name, $0.gradient?.scalars.map(Double.init) ?? []) }

    func objective() throws -> Double {
        let y = try layer.forward(input, mode: mode)
        var s = 0.0
        for i in 0..<y.count { s += Double(y[flat: i]) * Double(r[flat: i]) }
        return s
    }
    var errors: [String: Double] = [:]
    if layer.computesInputGradient {
        var x = input
        var numeric: [Double] = []
        for i in 0..<x.count {
            let v = x[flat: i]
            x[flat: i] = v + h; let lp = try objectiveAt(layer, x, r, mode)
            x[flat: i] = v - h; let lm = try objectiveAt(layer, x, r, mode)
            x[flat: i] = v
            numeric.append((lp - lm) / Double(2 * h))
        }
        errors["input"] = relativeError(numeric, gx.scalars.map(Double.init))
    }
    for (p, (name, analytic)) in zip(layer.parameters, analyticParams) where p.requiresGrad {
        errors[name] = relativeError(try centralDifferences(of: p, h: h, objective), analytic)
    }
    return errors
}

private func objectiveAt(_ layer: Layer, _ x: Tensor, _ r: Tensor, _ mode: Mode) throws -> Double {
    let y = try layer.forward(x, mode: mode)
    var s = 0.0
    for i in 0..<y.count { s += Double(y[flat: i]) * Double(r[flat: i]) }
    return s
}

/// Distinct values `k · step` in a random order (no ties for max pooling).
func distinctTensor(_ shape: [Int], step: Float = 0.1, seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    var values = (0..<shape.product).map { Float($0) * step - Float(shape.product) * step / 2 + step / 2 }
    values.shuffle(using: &rng)
    return Tensor(shape: shape, scalars: values)
}

/// A small model on the synthetic task.
func smallSpec(norm: NormSpec?, depth: Int = 2, width: Int = 8, classes: Int = 4, input: [Int] = [1, 32]) -> ModelSpec {
    ModelSpec(inputShape: input, classes: classes, depth: depth, width: width, kernel: 3, norm: norm)
}

let syntheticData: Dataset = try! Datasets.load(.synthetic, seed: 1)

/// The data set restricted to its first `n` training and test samples.
func subset(_ d: Dataset, train n: Int, test m: Int) -> Dataset {
    func take(_ t: Tensor, _ k: Int) -> Tensor {
        let per = t.count / t.shape[0]
        return Tensor(shape: [k] + t.shape.dropFirst(), scalars: Array(t.scalars.prefix(k * per)))
    }
    return Dataset(name: d.name, trainInputs: take(d.trainInputs, n), trainLabels: Array(d.trainLabels.prefix(n)),
                   testInputs: take(d.testInputs, m), testLabels: Array(d.testLabels.prefix(m)),
                   classes: d.classes, contentHash: d.contentHash + "-subset")
}

/// Bit-exact copies of every parameter and buffer.
func snapshot(_ model: Model) -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (n, p, _) in model.namedParameters { out[n] = Tensor(shape: p.value.shape, scalars: p.value.scalars) }
    for (n, b) in model.namedBuffers { out[n] = Tensor(shape: b.value.shape, scalars: b.value.scalars) }
    return out
}

/// Runs /usr/bin/python3 with a script; returns stdout (throws on a non-zero exit).
func python(_ script: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", script]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw NetError("python failed: " + String(decoding: errData, as: UTF8.self))
    }
    return String(decoding: data, as: UTF8.self)
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("normnet-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
