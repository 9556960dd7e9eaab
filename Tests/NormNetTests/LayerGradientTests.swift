import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// Finite-difference checks of every layer's analytic backward.
@Suite struct LayerGradientTests {
    static let tolerance = 5e-3

    func randomInit(_ layer: Layer, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for p in layer.parameters { p.value = Tensor.randomNormal(p.value.shape, std: 0.5, using: &rng) }
    }

    struct ConvCase: Sendable, CustomTestStringConvertible {
        let length: Int, cin: Int, cout: Int, k: Int, stride: Int, pad: Int, bias: Bool
        var testDescription: String { "L\(length) \(cin)->\(cout) k\(k) s\(stride) p\(pad) bias=\(bias)" }
    }

    @Test(arguments: [
        ConvCase(length: 9, cin: 2, cout: 3, k: 3, stride: 1, pad: 1, bias: true),
        ConvCase(length: 10, cin: 3, cout: 2, k: 5, stride: 2, pad: 2, bias: false),
        ConvCase(length: 7, cin: 1, cout: 4, k: 3, stride: 3, pad: 0, bias: true),
        ConvCase(length: 6, cin: 2, cout: 2, k: 1, stride: 1, pad: 0, bias: true),
    ])
    func conv1d(_ c: ConvCase) throws {
        let conv = try Conv1d(inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.stride, padding: c.pad, bias: c.bias)
        randomInit(conv, seed: 1)
        var rng = SeededGenerator(seed: 2)
        let x = Tensor.randomNormal([2, c.cin, c.length], using: &rng)
        let y = try conv.forward(x, mode: .train)
        #expect(y.shape == [2, c.cout, (c.length + 2 * c.pad - c.k) / c.stride + 1])
        for (name, e) in try gradientErrors(conv, input: x) { #expect(e < Self.tolerance, "\(name): \(e)") }
    }

    @Test func conv1dMatchesDirectSum() throws {
        let conv = try Conv1d(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1, bias: true)
        randomInit(conv, seed: 3)
        var rng = SeededGenerator(seed: 4)
        let x = Tensor.randomNormal([2, 2, 7], using: &rng)
        let y = try conv.forward(x, mode: .eval)
        let w = conv.weight.value, b = conv.bias!.value
        for n in 0..<2 { for o in 0..<3 { for t in 0..<y.shape[2] {
            var s = Double(b[flat: o])
            for i in 0..<2 { for k in 0..<3 {
                let pos = t * 2 - 1 + k
                if pos >= 0 && pos < 7 { s += Double(w[flat: (o * 2 + i) * 3 + k]) * Double(x[flat: (n * 2 + i) * 7 + pos]) }
            }}
            #expect(abs(Double(y[flat: (n * 3 + o) * y.shape[2] + t]) - s) < 1e-5)
        }}}
    }

    @Test(arguments: [
        ConvCase(length: 5, cin: 2, cout: 3, k: 3, stride: 1, pad: 1, bias: true),
        ConvCase(length: 6, cin: 2, cout: 2, k: 3, stride: 2, pad: 1, bias: false),
        ConvCase(length: 7, cin: 1, cout: 2, k: 2, stride: 2, pad: 0, bias: true),
    ])
    func conv2d(_ c: ConvCase) throws {
        let conv = try Conv2d(inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.stride, padding: c.pad, bias: c.bias)
        randomInit(conv, seed: 5)
        var rng = SeededGenerator(seed: 6)
        let x = Tensor.randomNormal([2, c.cin, c.length, c.length - 1], using: &rng)
        for (name, e) in try gradientErrors(conv, input: x) { #expect(e < Self.tolerance, "\(name): \(e)") }
    }

    @Test func conv2dRectangularStrideAndPadding() throws {
        let conv = try Conv2d(inChannels: 2, outChannels: 2, kernel: (3, 2), stride: (2, 1), padding: (1, 0), bias: true)
        randomInit(conv, seed: 8)
        var rng = SeededGenerator(seed: 9)
        let x = Tensor.randomNormal([2, 2, 5, 4], using: &rng)
        #expect(try conv.forward(x, mode: .train).shape == [2, 2, 3, 3])
        for (name, e) in try gradientErrors(conv, input: x) { #expect(e < Self.tolerance, "\(name): \(e)") }
    }

    @Test func linear() throws {
        let fc = try Linear(inFeatures: 5, outFeatures: 3)
        randomInit(fc, seed: 10)
        var rng = SeededGenerator(seed: 11)
        let x = Tensor.randomNormal([4, 5], using: &rng)
        for (name, e) in try gradientErrors(fc, input: x) { #expect(e < Self.tolerance, "\(name): \(e)") }
    }

    @Test func activations() throws {
        let x = distinctTensor([2, 3, 5], step: 0.13, seed: 12)
        for (name, e) in try gradientErrors(ReLU(), input: x, h: 1e-3) { #expect(e < Self.tolerance, "relu \(name): \(e)") }
        var rng = SeededGenerator(seed: 13)
        let z = Tensor.randomNormal([2, 3, 5], using: &rng)
        for (name, e) in try gradientErrors(Sigmoid(), input: z, h: 1e-2) { #expect(e < Self.tolerance, "sigmoid \(name): \(e)") }
    }

    @Test func pooling() throws {
        let x1 = distinctTensor([2, 3, 9], seed: 14)
        let x2 = distinctTensor([2, 2, 5, 6], seed: 15)
        let layers: [(String, Layer, Tensor)] = [
            ("max1d k2", MaxPool(try PoolWindow(kernel: [2])), x1),
            ("max1d k3 s2 p1", MaxPool(try PoolWindow(kernel: [3], stride: [2], padding: [1])), x1),
            ("max2d k2", MaxPool(try PoolWindow(kernel: [2, 2])), x2),
            ("max2d k3 s2 p1", MaxPool(try PoolWindow(kernel: [3, 3], stride: [2, 2], padding: [1, 1])), x2),
            ("avg1d k3 s2 p1", AvgPool(try PoolWindow(kernel: [3], stride: [2], padding: [1])), x1),
            ("avg2d k2", AvgPool(try PoolWindow(kernel: [2, 2])), x2),
            ("gap1d", GlobalAvgPool(), x1),
            ("gap2d", GlobalAvgPool(), x2),
            ("flatten", Flatten(), x2),
        ]
        for (label, layer, x) in layers {
            for (name, e) in try gradientErrors(layer, input: x, h: 1e-2) { #expect(e < Self.tolerance, "\(label) \(name): \(e)") }
        }
    }

    @Test func poolingValues() throws {
        let x = Tensor(shape: [1, 1, 5], scalars: [1, 5, 2, 4, 3])
        #expect(try MaxPool(PoolWindow(kernel: [2])).forward(x, mode: .eval).scalars == [5, 4])
        #expect(try MaxPool(PoolWindow(kernel: [3], stride: [2], padding: [1])).forward(x, mode: .eval).scalars == [5, 5, 4])
        #expect(try AvgPool(PoolWindow(kernel: [2])).forward(x, mode: .eval).scalars == [3, 3])
        // count_include_pad: the padded window [pad, 1, 5] averages to 2.
        let avg = try AvgPool(PoolWindow(kernel: [3], stride: [2], padding: [1])).forward(x, mode: .eval).scalars
        #expect(relativeError(avg.map(Double.init), [2, 11.0 / 3, 7.0 / 3]) < 1e-6)
        #expect(try GlobalAvgPool().forward(x, mode: .eval).scalars == [3])
    }

    @Test func crossEntropy() throws {
        var rng = SeededGenerator(seed: 16)
        let logits = Tensor.randomNormal([4, 5], std: 2, using: &rng)
        let labels = [0, 3, 4, 1]
        let r = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels)
        var numeric: [Double] = []
        var z = logits
        let h: Float = 1e-2
        for i in 0..<z.count {
            let v = z[flat: i]
            z[flat: i] = v + h; let lp = try SoftmaxCrossEntropy.loss(logits: z, labels: labels)
            z[flat: i] = v - h; let lm = try SoftmaxCrossEntropy.loss(logits: z, labels: labels)
            z[flat: i] = v
            numeric.append((lp - lm) / Double(2 * h))
        }
        #expect(relativeError(numeric, r.gradient.scalars.map(Double.init)) < 1e-3)
        // Hand value for one row: -log softmax.
        let row = Tensor(shape: [1, 3], scalars: [1, 2, 3])
        let expected = -(1 - log(exp(1.0) + exp(2.0) + exp(3.0)))
        #expect(abs(try SoftmaxCrossEntropy.loss(logits: row, labels: [0]) - expected) < 1e-12)
        // Large logits stay finite (log-sum-exp shift).
        let big = Tensor(shape: [1, 2], scalars: [1000, -1000])
        #expect(try SoftmaxCrossEntropy.loss(logits: big, labels: [1]) == 2000)
    }

    @Test func frozenBatchNormBackward() throws {
        let f = try FrozenBatchNorm(channels: 3, eps: 1e-3)
        var rng = SeededGenerator(seed: 17)
        f.weight.value = Tensor.randomNormal([3], using: &rng)
        f.bias.value = Tensor.randomNormal([3], using: &rng)
        f.runningMean.value = Tensor.randomNormal([3], using: &rng)
        f.runningVar.value = Tensor.randomUniform([3], low: 0.5, high: 2, using: &rng)
        let slotLike = FrozenAdapter(f)
        for (name, e) in try gradientErrors(slotLike, input: Tensor.randomNormal([2, 3, 4], using: &rng)) {
            #expect(e < Self.tolerance, "\(name): \(e)")
        }
    }

    @Test func badShapesAreErrors() throws {
        let conv = try Conv1d(inChannels: 2, outChannels: 3, kernel: 5)
        #expect(throws: NetError.self) { try conv.forward(.zeros([1, 3, 10]), mode: .train) }
        #expect(throws: NetError.self) { try conv.forward(.zeros([1, 2, 3]), mode: .train) }
        #expect(throws: NetError.self) { try Linear(inFeatures: 3, outFeatures: 2).forward(.zeros([2, 4]), mode: .train) }
        #expect(throws: NetError.self) { try SoftmaxCrossEntropy.evaluate(logits: .zeros([2, 3]), labels: [0, 3]) }
    }
}

/// A norm plugin seen as a ``Layer`` for the gradient checker.
final class FrozenAdapter: Layer {
    let plugin: any Normalization
    var computesInputGradient = true
    init(_ plugin: any Normalization) { self.plugin = plugin }
    var parameters: [Parameter] { plugin.parameters }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try plugin.forward(x, mode: mode) }
    func backward(_ g: Tensor) throws -> Tensor { try plugin.backward(g) }
}
