import NormCore

/// Percentiles of one unit's input to a chosen layer over a fixed probe set, recorded at fixed
/// step intervals during training: the BN paper's Figure 1(b, c) (Ioffe & Szegedy 2015, §1 and
/// §4.1), "the evolution of input distributions to a typical sigmoid, over the course of
/// training, shown as {15, 50, 85}th percentiles" — the internal covariate shift one layer sees.
///
/// - The probe set is `examples` test examples drawn without replacement by a generator seeded
///   from the run's shuffling seed (``probeIndices(testCount:shuffleSeed:)``): the same for
///   every cell of a seed, so paired runs are probed on the same images.
/// - The values are the `unit`-th channel (feature) of the input of `layer` (a top-level layer
///   of the model before its head, e.g. `blocks.2.act`; default: the last activation), over
///   every example (and every spatial position of a conv feature map).
/// - `mode` `.train` (default) forwards the probe set with batch statistics — the distribution
///   the layer sees while training — and restores every buffer afterwards (running statistics
///   are not updated); `.eval` uses the inference statistics. A probe forward never draws a
///   random number of the training run (it stops before the head, where dropout sits), so
///   probing does not change the trajectory. Layers that count train-mode forwards as a
///   diagnostic (BRN's clip rates) count the probe's too.
/// - Percentiles use numpy's default ("linear") interpolation: the `q`-th percentile of the
///   sorted values `v₀ … v₍ₙ₋₁₎` is `v_⌊h⌋ + (h − ⌊h⌋)(v_⌊h⌋₊₁ − v_⌊h⌋)` with `h = (n − 1)·q/100`.
public struct ActivationProbe: Sendable, Equatable {
    /// The layer whose input is probed; nil = the last top-level layer named `*.act`.
    public var layer: String?
    /// The channel (feature) index.
    public var unit: Int
    /// Probe after every `every` steps (step 0, every, 2·every, …, and the last step when it
    /// is a multiple).
    public var every: Int
    /// Size of the probe set (at most the test set's size).
    public var examples: Int
    public var mode: Mode

    /// The percentiles recorded (the BN paper's).
    public static let percentiles: [Double] = [15, 50, 85]

    public init(layer: String? = nil, unit: Int = 0, every: Int = 100, examples: Int = 1000, mode: Mode = .train) {
        self.layer = layer; self.unit = unit; self.every = every; self.examples = examples; self.mode = mode
    }

    public func validate() throws {
        guard unit >= 0 else { throw NetError("activation probe: unit must be >= 0, got \(unit)") }
        guard every >= 1 else { throw NetError("activation probe: every must be >= 1, got \(every)") }
        guard examples >= 2 else { throw NetError("activation probe: examples must be >= 2, got \(examples)") }
    }

    /// The probed layer's name in `model`, checked: a top-level layer before the head, whose
    /// input has more than `unit` channels, and a probe set the model's batch split accepts.
    public func resolve(in model: Model) throws -> String {
        let body = model.layers.prefix { $0.name != "head" }.map(\.name)
        let name: String
        if let layer {
            guard body.contains(layer) else {
                let acts = body.filter { $0.hasSuffix(".act") }
                throw NetError("activation probe: the model has no layer '\(layer)' before its head (its activations: \(acts.joined(separator: ", ")))")
            }
            name = layer
        } else {
            guard let last = body.last(where: { $0.hasSuffix(".act") }) else {
                throw NetError("activation probe: the model has no activation layer (a norm includes it); name a layer (layers: \(body.joined(separator: ", ")))")
            }
            name = last
        }
        let probe = Tensor.zeros([2] + model.spec.inputShape)
        let channels = try model.input(ofLayer: name, for: probe, mode: .eval).shape[1]
        guard unit < channels else { throw NetError("activation probe: unit \(unit) is out of range: the input of \(name) has \(channels) channels") }
        if mode == .train, examples % model.batchMultiple != 0 {
            throw NetError("activation probe: examples \(examples) is not a multiple of \(model.batchMultiple), which a norm layer's batch split needs")
        }
        return name
    }

    /// `examples` distinct test indices (sorted), drawn by a generator seeded from `shuffleSeed`.
    public func probeIndices(testCount: Int, shuffleSeed: UInt64) -> [Int] {
        var order = Array(0..<testCount)
        guard examples < testCount else { return order }
        var rng = SeededGenerator(seed: shuffleSeed ^ 0x5052_4F42_4550_4354)
        for i in stride(from: testCount - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(in: 0...i)) }
        return order.prefix(examples).sorted()
    }

    /// numpy's `percentile(values, q)` with its default `linear` interpolation (`q` in 0…100).
    public static func percentile(sorted v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return .nan }
        let h = Double(v.count - 1) * q / 100
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, v.count - 1)
        return v[lo] + (h - Double(lo)) * (v[hi] - v[lo])
    }
}

/// What an ``ActivationProbe`` recorded over a run.
public struct ActivationPercentileCurve: Sendable, Equatable {
    public var layer: String
    public var unit: Int
    public var examples: Int
    public var mode: Mode
    /// Optimizer steps taken at each probe point.
    public var steps: [Int] = []
    /// One row per ``ActivationProbe/percentiles`` entry (15th, 50th, 85th), one value per point.
    public var values: [[Double]] = ActivationProbe.percentiles.map { _ in [] }

    public var p15: [Double] { values[0] }
    public var p50: [Double] { values[1] }
    public var p85: [Double] { values[2] }

    /// max − min over the probe points of the spread `p85 − p15` (nil without points): how far
    /// the width of the unit's input distribution moved during training.
    public var spreadDrift: Double? { Self.range(zip(p85, p15).map { $0 - $1 }) }
    /// max − min over the probe points of the median: how far the distribution's centre moved.
    public var medianDrift: Double? { Self.range(p50) }

    static func range(_ xs: [Double]) -> Double? {
        guard let lo = xs.min(), let hi = xs.max(), xs.allSatisfy(\.isFinite) else { return xs.isEmpty ? nil : .nan }
        return hi - lo
    }
}

extension Model {
    /// The input of the top-level layer `name` for the batch `x`, in `mode` (the model's own
    /// mode is restored; buffers are not: a train-mode caller restores them).
    public func input(ofLayer name: String, for x: Tensor, mode: Mode) throws -> Tensor {
        guard let stop = layers.firstIndex(where: { $0.name == name }) else { throw NetError("model: no layer '\(name)'") }
        guard Array(x.shape.dropFirst()) == spec.inputShape else {
            throw NetError("model: input of shape \(x.shape.shapeText), expected (N, \(spec.inputShape.map(String.init).joined(separator: ", ")))")
        }
        var h = x
        for (_, layer) in layers[..<stop] { h = try layer.forward(h, mode: mode) }
        return h
    }
}

/// Records an ``ActivationProbe`` during training (``TrainingObserver``).
public final class ActivationProbeObserver: TrainingObserver {
    private let probe: ActivationProbe
    private var layer = ""
    private var inputs: Tensor?
    private var curve: ActivationPercentileCurve?

    public init(_ probe: ActivationProbe) { self.probe = probe }

    public func runWillStart(_ context: TrainingContext) throws {
        layer = try probe.resolve(in: context.model)
        let data = context.dataset
        let indices = probe.probeIndices(testCount: data.testLabels.count, shuffleSeed: context.config.seed)
        var gatherer = BatchGatherer()
        let t = gatherer.gather(data.testInputs, indices)
        inputs = Tensor(shape: t.shape, scalars: t.scalars)   // own copy: the gatherer reuses its blocks
        curve = ActivationPercentileCurve(layer: layer, unit: probe.unit, examples: indices.count, mode: probe.mode)
    }

    public func stepWillStart(_ step: Int, _ context: TrainingContext) throws {
        if step % probe.every == 0 { try record(step, context.model) }
    }

    public func runDidFinish(_ context: TrainingContext, diverged: Bool) throws {
        // The last point, unless the run stopped early (a diverged model has nothing to show).
        if !diverged, context.totalSteps % probe.every == 0 { try record(context.totalSteps, context.model) }
    }

    public func contribute(to result: inout TrainingResult) { result.activationPercentiles = curve }

    private func record(_ step: Int, _ model: Model) throws {
        guard let inputs, var curve else { return }
        let saved = model.namedBuffers.map { ($0.buffer, $0.buffer.value) }
        let telemetry = model.normSlots.map(\.recordsTelemetry)
        model.recordTelemetry(false)
        defer {
            for (b, v) in saved { b.value = v }
            for (s, on) in zip(model.normSlots, telemetry) { s.recordsTelemetry = on }
        }
        let h = try model.input(ofLayer: layer, for: inputs, mode: probe.mode)
        let values = Self.channel(probe.unit, of: h).sorted()
        curve.steps.append(step)
        for (k, q) in ActivationProbe.percentiles.enumerated() { curve.values[k].append(ActivationProbe.percentile(sorted: values, q)) }
        self.curve = curve
    }

    /// Every value of channel `c` of `(N, C, ...)` as doubles.
    static func channel(_ c: Int, of h: Tensor) -> [Double] {
        let n = h.shape[0], channels = h.shape[1], plane = h.count / max(n * channels, 1)
        var out: [Double] = []
        out.reserveCapacity(n * plane)
        h.withUnsafeBufferPointer { b in
            for i in 0..<n { for j in 0..<plane { out.append(Double(b[(i * channels + c) * plane + j])) } }
        }
        return out
    }
}
