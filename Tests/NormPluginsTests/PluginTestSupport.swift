import Foundation
import Testing
import NormCore
import NormPlugins

// Shared helpers for the NormPlugins test suites (the seeded generator is NormTestSupport's): tensor builders,
// float64 reference statistics, tolerance checks and the finite-difference gradient
// checker. Everything here is deterministic (fixed seeds), so a failure reproduces.

// MARK: - Building layers

/// The built-in registry every test builds layers from.
let builtins = Builtins.registry

/// The feature shape of an input of shape `(N, C, spatial...)`.
func featureShape(_ inputShape: [Int]) -> FeatureShape {
    FeatureShape(channels: inputShape[1], spatial: Array(inputShape.dropFirst(2)))
}

/// A plugin instance for an input of `inputShape`, built through the registry.
func makeNorm(_ name: String, _ options: [String: OptionValue] = [:], input inputShape: [Int],
              registry: NormRegistry = builtins) throws -> any Normalization {
    try registry.make(NormSpec(name, options: options), shape: featureShape(inputShape))
}

extension Normalization {
    /// The parameter named `name`; fails the test when absent.
    func requireParameter(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Parameter {
        try #require(parameter(named: name), "no parameter \(name)", sourceLocation: sourceLocation)
    }

    /// The buffer named `name`; fails the test when absent.
    func requireBuffer(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Buffer {
        try #require(buffer(named: name), "no buffer \(name)", sourceLocation: sourceLocation)
    }

    /// Copies of every buffer value, by name.
    func bufferSnapshot() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: buffers.map { ($0.name, Tensor(shape: $0.value.shape, scalars: $0.value.scalars)) })
    }

    /// Copies of every parameter value, by name.
    func parameterSnapshot() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, Tensor(shape: $0.value.shape, scalars: $0.value.scalars)) })
    }
}

extension Tensor {
    /// The elements as float64.
    var doubles: [Double] { scalars.map(Double.init) }
    /// A deep copy (own storage), immune to a layer reusing its output block.
    var copy: Tensor { Tensor(shape: shape, scalars: scalars) }
}

/// Σ a·b in float64.
func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count)
    let x = a.scalars, y = b.scalars
    var s = 0.0
    for i in 0..<x.count { s += Double(x[i]) * Double(y[i]) }
    return s
}

/// Euclidean norm of a float64 vector.
func norm2(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

// MARK: - Layout helpers

/// `(n, c)` of flat element `i` of a tensor of `shape` (channel axis 1).
func sampleAndChannel(_ i: Int, shape: [Int]) -> (n: Int, c: Int) {
    let s = shape.count > 2 ? shape[2...].reduce(1, *) : 1
    let c = shape[1]
    return (i / (c * s), (i / s) % c)
}

/// Per-channel float64 mean and biased variance over every axis but 1 (BatchNorm's statistics).
func channelMoments(_ x: Tensor) -> (mean: [Double], biasedVar: [Double], count: Int) {
    let c = x.shape[1], v = x.doubles
    var sum = [Double](repeating: 0, count: c), cnt = [Int](repeating: 0, count: c)
    for i in 0..<v.count { let ch = sampleAndChannel(i, shape: x.shape).c; sum[ch] += v[i]; cnt[ch] += 1 }
    let mean = (0..<c).map { sum[$0] / Double(cnt[$0]) }
    var ss = [Double](repeating: 0, count: c)
    for i in 0..<v.count { let ch = sampleAndChannel(i, shape: x.shape).c; ss[ch] += (v[i] - mean[ch]) * (v[i] - mean[ch]) }
    return (mean, (0..<c).map { ss[$0] / Double(cnt[$0]) }, cnt[0])
}

/// Float64 mean and biased variance of each contiguous row of `length` values.
func rowMoments(_ values: [Double], length: Int) -> (mean: [Double], biasedVar: [Double]) {
    let rows = values.count / length
    var mean = [Double](), variance = [Double]()
    for r in 0..<rows {
        let row = values[(r * length)..<((r + 1) * length)]
        let m = row.reduce(0, +) / Double(length)
        mean.append(m)
        variance.append(row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(length))
    }
    return (mean, variance)
}

// MARK: - Tolerances

/// Largest `|a − b|` over the elements, and the largest `|b|`.
func maxAbsError(_ a: [Double], _ b: [Double]) -> (error: Double, scale: Double) {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var e = 0.0, s = 0.0
    for i in 0..<a.count {
        let d = abs(a[i] - b[i])
        e = d.isNaN ? .nan : max(e, d)
        s = max(s, abs(b[i]))
    }
    return (e, s)
}

/// Expects `actual ≈ expected` elementwise: `|a − e| ≤ rtol · max(1, max|e|)`.
/// The scale is the largest expected magnitude (not each element's) because float32 kernels
/// make errors relative to the size of the values they combine, not of each result.
func expectClose(_ actual: [Double], _ expected: [Double], rtol: Double, _ what: @autoclosure () -> String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what()): length \(actual.count) vs \(expected.count)", sourceLocation: sourceLocation)
    guard actual.count == expected.count else { return }
    let (e, s) = maxAbsError(actual, expected)
    let bound = rtol * max(1, s)
    #expect(e <= bound, "\(what()): max abs error \(e) > \(bound) (scale \(s))", sourceLocation: sourceLocation)
}

func expectClose(_ actual: Tensor, _ expected: Tensor, rtol: Double, _ what: @autoclosure () -> String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "\(what()): shape \(actual.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
    expectClose(actual.doubles, expected.doubles, rtol: rtol, what(), sourceLocation: sourceLocation)
}

func expectClose(_ actual: Tensor, _ expected: [Double], rtol: Double, _ what: @autoclosure () -> String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    expectClose(actual.doubles, expected, rtol: rtol, what(), sourceLocation: sourceLocation)
}

/// Expects two tensors to be bit-identical (same shape, same bit patterns).
func expectBitIdentical(_ a: Tensor, _ b: Tensor, _ what: @autoclosure () -> String,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.isBitIdentical(to: b), "\(what()): not bit-identical (max diff \(a.shape == b.shape ? a.maxAbsDifference(b) : .nan))",
            sourceLocation: sourceLocation)
}

// MARK: - Finite-difference gradient check

/// The result of comparing analytic gradients with central finite differences of the
/// loss `L = Σ gy·y` (computed in float64 from the layer's float32 output).
struct GradientComparison {
    /// Per checked tensor (`x` or a parameter name): relative error and the analytic norm.
    var entries: [(name: String, relativeError: Double, analyticNorm: Double)] = []
}

/// Checks every gradient (`x` and each parameter with `requiresGrad`) of `layer` at `x` in
/// `mode` by central differences.
///
/// Tolerance rationale. Forward runs in float32: each output carries a rounding error of a few
/// ulps (~1e-7 relative), so the float64 loss over ≤ 50 O(1) terms is off by ≲ 1e-6, and a
/// central difference with a step of 1e-2 turns that into ≲ 1e-4 absolute error per
/// component. The truncation error of a central difference is O(h²·f''') ≈ 1e-4 relative for
/// these smooth O(1) functions. Both are ≤ 1e-3 of gradient norms of order 0.1–10, so a
/// relative error (‖fd − analytic‖ / ‖analytic‖) below 1e-2 passes a correct gradient with an
/// order of magnitude to spare, while any missing or wrong term (a dropped mean term, 1/n vs
/// 1/(n−1), a wrong sign of eps) produces errors of 10% or more.
///
/// The step is relative-ish (`h = 1e-2 · max(1, |v|)`) and the actual step is taken from the
/// float32-rounded perturbed values. Buffers are restored before every forward, so train-mode
/// running-stat updates (which BRN's r and d read) do not leak between evaluations.
func compareGradients(_ layer: any Normalization, x: Tensor, gy: Tensor, mode: Mode,
                      relativeStep: Double = 1e-2) throws -> GradientComparison {
    let saved = layer.bufferSnapshot()
    func restore() { for b in layer.buffers { b.value = saved[b.name]!.copy } }
    func loss(_ input: Tensor) throws -> Double {
        restore()
        return dot(try layer.forward(input, mode: mode), gy)
    }

    // Analytic.
    restore()
    _ = try layer.forward(x, mode: mode)
    let gx = try layer.backward(gy).copy
    var analytic: [(String, Tensor)] = [("x", gx)]
    for p in layer.parameters where p.requiresGrad {
        let g = try #require(p.gradient, "parameter \(p.name) got no gradient")
        #expect(g.shape == p.value.shape, "gradient of \(p.name) has shape \(g.shape), value \(p.value.shape)")
        analytic.append((p.name, g.copy))
    }

    var result = GradientComparison()
    for (name, grad) in analytic {
        var numeric = [Double](repeating: 0, count: grad.count)
        if name == "x" {
            for i in 0..<x.count {
                let v = Double(x[flat: i]), h = relativeStep * max(1, abs(v))
                var xp = x.copy, xm = x.copy
                xp[flat: i] = Float(v + h); xm[flat: i] = Float(v - h)
                let step = Double(xp[flat: i]) - Double(xm[flat: i])
                numeric[i] = (try loss(xp) - loss(xm)) / step
            }
        } else {
            let p = layer.parameter(named: name)!
            let original = p.value.copy
            for i in 0..<original.count {
                let v = Double(original[flat: i]), h = relativeStep * max(1, abs(v))
                var vp = original.copy, vm = original.copy
                vp[flat: i] = Float(v + h); vm[flat: i] = Float(v - h)
                let step = Double(vp[flat: i]) - Double(vm[flat: i])
                p.value = vp
                let lp = try loss(x)
                p.value = vm
                let lm = try loss(x)
                numeric[i] = (lp - lm) / step
            }
            p.value = original
        }
        let a = grad.doubles
        let diff = zip(a, numeric).map { $0 - $1 }
        let an = norm2(a)
        result.entries.append((name, norm2(diff) / max(an, 1e-12), an))
    }
    restore()
    return result
}
