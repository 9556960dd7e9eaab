import Benchmark
import NormCore
import NormPlugins

// Regression benchmarks of the normalization kernels: every built-in's train forward, eval
// forward and backward at the large shape and one small shape, plus a STREAM-like
// copy for reference. Correctness is checked by `normlab bench` / `normlab parity`; these only
// watch wall-clock time (and allocations: a kernel must not allocate per call beyond its
// small coefficient arrays).

private struct Case {
    let method: String
    let options: [String: OptionValue]
    let shape: [Int]
}

private let shapes: [[Int]] = [[32, 64, 56, 56], [64, 32, 8, 8], [256, 1024]]
private let methods: [(String, [String: OptionValue], Bool)] = [
    ("bn", [:], true), ("brn", [:], true), ("gn", ["num_groups": .integer(32)], true),
    ("ln", [:], true), ("in", [:], false), ("frn", [:], false),
]

/// A layer with non-trivial parameters, its input and gradient, built once per benchmark.
private final class Fixture {
    let layer: any Normalization
    let x: Tensor
    let g: Tensor

    init(_ c: Case) throws {
        var rng = SeededGenerator(seed: 11)
        x = Tensor.randomNormal(c.shape, mean: 0.5, std: 1, using: &rng)
        g = Tensor.randomNormal(c.shape, using: &rng)
        layer = try Builtins.registry.make(NormSpec(c.method, options: c.options), shape: FeatureShape(of: x))
        for p in layer.parameters where p.name == "weight" {
            p.value = Tensor.randomUniform(p.value.shape, low: 0.5, high: 1.5, using: &rng)
        }
        _ = try layer.forward(x, mode: .train)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 3,
        maxDuration: .seconds(1),
        maxIterations: 200
    )

    for threads in [1, 2] {
        for (method, options, rank2) in methods {
            for shape in shapes where rank2 || shape.count > 2 {
                let label = shape.map(String.init).joined(separator: "x")
                let c = Case(method: method, options: options, shape: shape)
                for op in ["train_fwd", "eval_fwd", "backward"] {
                    Benchmark("\(method) \(op) \(label) t\(threads)") { benchmark, fixture in
                        Parallel.threadCount = threads
                        for _ in benchmark.scaledIterations {
                            switch op {
                            case "train_fwd": blackHole(try fixture.layer.forward(fixture.x, mode: .train))
                            case "eval_fwd": blackHole(try fixture.layer.forward(fixture.x, mode: .eval))
                            default: blackHole(try fixture.layer.backward(fixture.g))
                            }
                        }
                    } setup: {
                        try Fixture(c)
                    }
                }
            }
        }

        // STREAM-like copy of the large shape's size (the % of copy denominator).
        let n = 32 * 64 * 56 * 56
        Benchmark("copy 32x64x56x56 t\(threads)") { benchmark, buffers in
            Parallel.threadCount = threads
            let (a, b) = buffers
            for _ in benchmark.scaledIterations {
                Parallel.forEach(n, work: n) { range in
                    (b.base + range.lowerBound).update(from: a.base + range.lowerBound, count: range.count)
                }
            }
        } setup: {
            (TensorStorage(repeating: 1, count: n), TensorStorage(repeating: 0, count: n))
        }
    }
}
