import NormCore

/// Runs parity cases: each step through the Swift plugin and through the reference, and
/// compares outputs, every gradient, and every running statistic after every step.
///
/// Tolerance: the plugins compute in float32 (statistics accumulated in float64), the
/// references in float64 on the same float32 inputs. float32 rounds at 2⁻²⁴ ≈ 6e-8; each
/// output element passes through a handful of float32 operations after float64 statistics,
/// and the backward formulas cancel terms of size |g|·|w|/σ, so observed errors stay near
/// 1e-6 of an array's magnitude. An element passes when
/// `|swift − ref| ≤ 1e-4 · max(1, max|ref|)`: two orders of margin over float32 noise, while
/// every semantic slip we know of (biased vs unbiased running variance on the small cases
/// generated here, a wrong reduction axis, a wrong momentum, a missing gradient term)
/// moves values by 1e-2 or more.
public struct ParityRunner {
    /// Relative tolerance (see the type's documentation).
    public static let tolerance = 1e-4

    public let registry: NormRegistry
    public let backend: any ReferenceBackend

    public init(registry: NormRegistry, backend: any ReferenceBackend) {
        self.registry = registry
        self.backend = backend
    }

    /// One case's outcome.
    public struct CaseResult: Sendable {
        public var name: String
        public var maxAbsError: Double
        public var maxRelError: Double
        public var failure: String?
        /// Why the layer refused this case at construction (or its input at the first
        /// forward): a skipped case, never a mismatch.
        public var skipped: String?
    }

    /// Runs every case for one method and aggregates.
    public func run(method: String, cases: [ParityCase]) -> MethodParity {
        let results = cases.map(run)
        return MethodParity(method: method, results: results)
    }

    public func run(_ c: ParityCase) -> CaseResult {
        var result = CaseResult(name: c.name, maxAbsError: 0, maxRelError: 0, failure: nil)
        let layer: any Normalization
        do {
            layer = try registry.make(NormSpec(c.method, options: c.options), shape: FeatureShape(of: c.steps[0].input))
        } catch {
            result.skipped = "\(error)"
            return result
        }
        do {
            for (name, value) in c.parameters {
                guard let p = layer.parameter(named: name) else { throw ParityFailure("plugin has no parameter '\(name)'") }
                p.value = value
            }
            for (name, value) in c.buffers {
                guard let b = layer.buffer(named: name) else { throw ParityFailure("plugin has no buffer '\(name)'") }
                b.value = value
            }
            var refBuffers = c.buffers
            var refBatches = 0
            for (k, step) in c.steps.enumerated() {
                let output: Tensor
                do { output = try layer.forward(step.input, mode: step.mode) } catch let e as NormError where k == 0 && e.refusesInput {
                    result.skipped = e.description
                    return result
                }
                var swift: [String: Tensor] = ["output": output]
                if let g = step.gradOutput {
                    swift["grad_input"] = try layer.backward(g)
                    for p in layer.parameters { if let grad = p.gradient { swift["grad_\(p.name)"] = grad } }
                }
                if step.mode == .train && layer.tracksRunningStatistics {
                    for b in layer.buffers where b.name != "num_batches_tracked" { swift[b.name] = b.value }
                }
                let call = ReferenceCall(method: c.method, input: step.input, mode: step.mode, gradOutput: step.gradOutput,
                                         parameters: c.parameters, buffers: refBuffers, batchesTracked: refBatches, options: c.options)
                let ref = try backend.run(call)
                let expected = ref.arrays.filter { !["r", "d"].contains($0.key) }
                let missing = Set(expected.keys).subtracting(swift.keys), extra = Set(swift.keys).subtracting(expected.keys)
                if !missing.isEmpty || !extra.isEmpty {
                    throw ParityFailure("step \(k + 1): arrays differ — missing \(missing.sorted()), unexpected \(extra.sorted())")
                }
                for name in expected.keys.sorted() {
                    let (abs, rel) = try compare(swift[name]!, expected[name]!, name: name, step: k + 1)
                    result.maxAbsError = max(result.maxAbsError, abs)
                    result.maxRelError = max(result.maxRelError, rel)
                    if rel > Self.tolerance {
                        throw ParityFailure("step \(k + 1) \(name): error \(rel) of magnitude exceeds \(Self.tolerance)")
                    }
                }
                for name in c.buffers.keys { if let updated = ref.arrays[name] { refBuffers[name] = updated } }
                if let n = ref.batchesTracked { refBatches = n }
            }
        } catch let e as ParityFailure {
            result.failure = e.message
        } catch {
            result.failure = "\(error)"
        }
        return result
    }

    /// (max abs error, max abs error / max(1, max|ref|)).
    private func compare(_ a: Tensor, _ b: Tensor, name: String, step: Int) throws -> (Double, Double) {
        guard a.shape.squeezed == b.shape.squeezed else {
            throw ParityFailure("step \(step) \(name): shape \(a.shape.shapeText) vs reference \(b.shape.shapeText)")
        }
        var maxErr = 0.0, scale = 1.0
        for i in 0..<a.count {
            let x = Double(a[flat: i]), y = Double(b[flat: i])
            if x.isNaN != y.isNaN { throw ParityFailure("step \(step) \(name): NaN mismatch at \(i)") }
            if x.isNaN { continue }
            maxErr = max(maxErr, abs(x - y))
            scale = max(scale, abs(y))
        }
        return (maxErr, maxErr / scale)
    }
}

struct ParityFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension NormError {
    /// The layer refused the input itself (shape or a single-value reduction), as opposed to
    /// computing something wrong.
    var refusesInput: Bool {
        switch self {
        case .invalidInput, .singleValueReduction: return true
        default: return false
        }
    }
}
