import Foundation
import NormCore
import NormPython

/// One method at one input shape, with the inputs, parameter values and running
/// statistics every check and timing of it uses.
public struct BenchSubject {
    public let entry: NormRegistry.Entry
    public let shape: [Int]
    /// The options as given (what a reference is called with, like `normlab parity` does).
    public let given: [String: OptionValue]
    /// The method's full option set (defaults filled in).
    public let options: NormOptions
    public let input: Tensor
    public let gradOutput: Tensor
    /// Parameter values set on every layer built (non-trivial weight, bias, tau).
    public let parameters: [String: Tensor]
    /// `running_mean`/`running_var` set on every layer built (when it tracks them).
    public let buffers: [String: Tensor]
    /// Whether eval mode uses running statistics (2-pass eval forward).
    public let evalUsesRunningStatistics: Bool

    public var method: String { entry.descriptor.name }

    /// Picks options for `entry` at `shape`: defaults, plus, for a required option that must
    /// divide the channel count (a declared ``NormConstraint``), the largest divisor of C up to
    /// 32 leaving more than one value per group (GroupNorm's usual 32 groups).
    /// `nil` when the method has another required option the bench cannot choose.
    public static func options(for descriptor: NormDescriptor, shape: [Int]) -> [String: OptionValue]? {
        var given: [String: OptionValue] = [:]
        for spec in descriptor.options where spec.defaultValue == nil {
            guard descriptor.constraints.contains(.dividesChannels(option: spec.name)) else { return nil }
            let c = shape[1], s = shape.dropFirst(2).reduce(1, *)
            let g = (1...min(32, c)).reversed().first { c % $0 == 0 && (c / $0) * s > 1 } ?? 1
            given[spec.name] = .integer(g)
        }
        // An option with a default that must divide the channels or the batch (EvoNorm-S0's
        // groups, Ghost BN's virtual batch) takes the largest divisor up to its default.
        for constraint in descriptor.constraints {
            let (option, size): (String, Int)
            switch constraint {
            case let .dividesChannels(o): (option, size) = (o, shape[1])
            case let .dividesBatch(o): (option, size) = (o, shape[0])
            default: continue
            }
            guard given[option] == nil, case let .integer(d)? = descriptor.option(option)?.defaultValue, size % d != 0 else { continue }
            given[option] = .integer((1...min(d, size)).reversed().first { size % $0 == 0 } ?? 1)
        }
        return given
    }

    /// Builds the subject: seeded inputs `x ~ N(0.5, 1)`, `dL/dy ~ N(0, 1)`, weight in
    /// [0.5, 1.5), bias and tau ~ N(0, 0.3²), running mean ~ N(0, 0.2²), running var in [0.5, 1.5).
    public init(entry: NormRegistry.Entry, shape: [Int], given: [String: OptionValue], seed: UInt64) throws {
        self.entry = entry
        self.shape = shape
        self.given = given
        options = try NormOptions(method: entry.descriptor.name, schema: entry.descriptor.options, given: given)
        var rng = SeededGenerator(seed: seed)
        input = Tensor.randomNormal(shape, mean: 0.5, std: 1, using: &rng)
        gradOutput = Tensor.randomNormal(shape, using: &rng)
        let probe = try entry.make(FeatureShape(of: input), options)
        var params: [String: Tensor] = [:]
        for p in probe.parameters {
            switch p.name {
            case "weight": params[p.name] = Tensor.randomUniform(p.value.shape, low: 0.5, high: 1.5, using: &rng)
            case "bias", "tau": params[p.name] = Tensor.randomNormal(p.value.shape, std: 0.3, using: &rng)
            default: params[p.name] = p.value
            }
        }
        var bufs: [String: Tensor] = [:]
        for b in probe.buffers {
            switch b.name {
            case "running_mean": bufs[b.name] = Tensor.randomNormal(b.value.shape, std: 0.2, using: &rng)
            case "running_var": bufs[b.name] = Tensor.randomUniform(b.value.shape, low: 0.5, high: 1.5, using: &rng)
            default: break
            }
        }
        parameters = params
        buffers = bufs
        evalUsesRunningStatistics = probe.tracksRunningStatistics
    }

    /// A fresh layer with the subject's parameter values and running statistics.
    public func makeLayer() throws -> any Normalization {
        let layer = try entry.make(FeatureShape(of: input), options)
        for p in layer.parameters { if let v = parameters[p.name] { p.value = v } }
        for b in layer.buffers { if let v = buffers[b.name] { b.value = v } }
        return layer
    }

    /// Everything the correctness check compares, from one train step (forward + backward)
    /// and one eval forward on fresh layers: `output`, `grad_input`, `grad_<param>`, `eval_output`.
    public func results(threads: Int) throws -> [String: Tensor] {
        let saved = Parallel.threadCount
        Parallel.threadCount = threads
        defer { Parallel.threadCount = saved }
        let train = try makeLayer()
        var r: [String: Tensor] = [:]
        r["output"] = try train.forward(input, mode: .train)
        r["grad_input"] = try train.backward(gradOutput)
        for p in train.parameters { if let g = p.gradient { r["grad_\(p.name)"] = g } }
        r["eval_output"] = try makeLayer().forward(input, mode: .eval)
        return r
    }

    /// The reference path's arrays under the same names as ``results(threads:)``.
    public func referenceResults(_ reference: BenchReference) throws -> [String: Tensor] {
        let opts = given
        let train = try reference.run(method: method, input: input, mode: .train, gradOutput: gradOutput,
                                      parameters: parameters, buffers: buffers, options: opts)
        let eval = try reference.run(method: method, input: input, mode: .eval, gradOutput: nil,
                                     parameters: parameters, buffers: buffers, options: opts)
        var r = train.filter { $0.key == "output" || $0.key.hasPrefix("grad_") }
        r["eval_output"] = eval["output"]
        return r
    }

    /// The correctness check: the kernels at every thread count give bit-identical results,
    /// and (when the method has a reference) match it within `tolerance`.
    public func check(threads: [Int], reference: BenchReference?, tolerance: Double) -> (CheckOutcome, [String: Tensor]?) {
        var outcome = CheckOutcome(against: "threads", passed: true, maxRelError: 0, bitIdenticalAcrossThreads: true, failures: [])
        var base: [String: Tensor]? = nil
        do {
            for t in threads {
                let r = try results(threads: t)
                if let b = base {
                    if let name = Correctness.firstBitDifference(b, r) {
                        outcome.bitIdenticalAcrossThreads = false
                        outcome.passed = false
                        outcome.failures.append("\(name) differs between \(threads[0]) and \(t) threads")
                    }
                } else {
                    base = r
                }
            }
            var refArrays: [String: Tensor]? = nil
            if let reference, reference.covers(method) {
                let ref = try referenceResults(reference)
                refArrays = ref
                outcome.against = "reference"
                for c in Correctness.compareAll(base!, ref, tolerance: tolerance) {
                    outcome.maxRelError = max(outcome.maxRelError, c.relError.isNaN ? .infinity : c.relError)
                    if !c.passed {
                        outcome.passed = false
                        outcome.failures.append("\(c.name): \(c.problem ?? "mismatch")")
                    }
                }
            }
            return (outcome, refArrays ?? base)
        } catch {
            outcome.passed = false
            outcome.failures.append("error: \(error)")
            return (outcome, nil)
        }
    }
}

/// Runs `normlab bench`: STREAM, then every method × shape's correctness check, then the
/// timings in rounds (``BenchConfiguration/rounds``): per round and subject the numpy
/// timings and, at every thread count, a size-matched copy and the Swift timings.
public final class BenchRunner {
    public let registry: NormRegistry
    public let configuration: BenchConfiguration
    /// The reference path (default: the Python references of the methods that have one).
    public var reference: BenchReference?
    /// The numpy side (default: `python/normlab_bench.py`); `nil` leaves `speedup_vs_numpy` null.
    public var numpy: NumpySide?
    /// Progress lines (stderr in the CLI).
    public var log: (String) -> Void

    private let stream = StreamBench()
    /// Size-matched copy measurements per `elements/threads`: one before each subject's
    /// timings at that size in every round, so a transient load does not skew every ratio.
    private var copySamples: [String: [StreamResult]] = [:]
    private var warnings: [String] = []

    public init(registry: NormRegistry, configuration: BenchConfiguration,
                reference: BenchReference? = nil, numpy: NumpySide? = nil, log: @escaping (String) -> Void = { _ in }) {
        self.registry = registry
        self.configuration = configuration
        self.reference = reference
        self.numpy = numpy
        self.log = log
    }

    /// Sets up the Python side (references and numpy) when Python is available; problems
    /// become warnings (the Swift side still runs, checked across thread counts only).
    public func attachPython() {
        let withReference = Set(registry.all.filter(\.hasReference).map(\.descriptor.name))
        do {
            _ = try PythonSupport.host()
            reference = PythonBenchReference(methods: withReference)
            if configuration.numpy { numpy = try NumpySide() }
        } catch {
            warnings.append("Python side unavailable (\(error)); checks compare thread counts only, no numpy timings")
        }
    }

    /// The registry entries selected by the configuration.
    public func selectedEntries() throws -> [NormRegistry.Entry] {
        guard let names = configuration.methods else { return registry.all }
        var out: [NormRegistry.Entry] = []
        for name in names {
            let e = try registry.entry(named: name.trimmingCharacters(in: .whitespaces))
            if !out.contains(where: { $0.descriptor.name == e.descriptor.name }) { out.append(e) }
        }
        return out
    }

    public func run() throws -> BenchReport {
        let cfg = configuration
        let entries = try selectedEntries()
        let savedThreads = Parallel.threadCount
        defer { Parallel.threadCount = savedThreads }

        // STREAM on arrays far larger than the LLC.
        var streamResults: [StreamResult] = []
        for t in cfg.threads {
            for kernel in ["copy", "triad"] {
                log("bench: stream \(kernel) \(cfg.streamElements) elements, \(t) thread(s)")
                streamResults.append(stream.measure(kernel, elements: cfg.streamElements, threads: t, warmup: 1,
                                                    minReps: cfg.quick ? 2 : 10, maxReps: 100, minSeconds: cfg.quick ? 0 : 0.5))
            }
        }
        stream.release()

        var skipped: [BenchSkip] = []
        var checks: [String: CheckOutcome] = [:]
        var subjects: [TimedSubject] = []
        for entry in entries {
            let d = entry.descriptor
            for shape in cfg.shapes {
                guard d.ranks.contains(shape.count) else {
                    skipped.append(BenchSkip(method: d.name, shape: shape, reason: "rank \(shape.count) not accepted (ranks \(d.ranks.lowerBound)...\(d.ranks.upperBound))", failed: false))
                    continue
                }
                guard let given = BenchSubject.options(for: d, shape: shape) else {
                    skipped.append(BenchSkip(method: d.name, shape: shape, reason: "has a required option the bench cannot choose", failed: false))
                    continue
                }
                do {
                    if let s = try prepare(entry, shape: shape, given: given, checks: &checks, skipped: &skipped) { subjects.append(s) }
                } catch {
                    skipped.append(BenchSkip(method: d.name, shape: shape, reason: "error: \(error)", failed: true))
                }
            }
        }
        // The timings, in rounds over every subject (see ``BenchConfiguration/rounds``).
        let rounds = max(1, cfg.rounds)
        for round in 1...rounds {
            for i in subjects.indices where !subjects[i].failed {
                do {
                    try timeRound(&subjects[i], round: round, of: rounds)
                } catch {
                    subjects[i].failed = true
                    let s = subjects[i].subject
                    skipped.append(BenchSkip(method: s.method, shape: s.shape, reason: "error: \(error)", failed: true))
                }
            }
        }
        // Each record's denominator: the median of its size's copy measurements.
        var copies: [StreamResult] = []
        for key in copySamples.keys {
            let sorted = copySamples[key]!.sorted { $0.gbps < $1.gbps }
            copies.append(sorted[sorted.count / 2])
        }
        copies.sort { ($0.elements, $0.threads) < ($1.elements, $1.threads) }
        var records: [BenchRecord] = []
        for s in subjects where !s.failed {
            for t in cfg.threads {
                let copy = copies.first { $0.elements == s.subject.shape.product && $0.threads == t }!
                for op in BenchOp.allCases {
                    records.append(BenchRecord(method: s.subject.method, op: op, shape: s.subject.shape, threads: t,
                                               timing: TimingSummary(seconds: s.times[TimingKey(threads: t, op: op)] ?? []),
                                               passes: Traffic.passes(op, evalUsesRunningStatistics: s.subject.evalUsesRunningStatistics),
                                               copyGbps: copy.gbps, numpyTiming: s.numpyTimes[op].map { TimingSummary(seconds: $0) },
                                               check: s.check))
                }
            }
        }
        return BenchReport(date: ISO8601DateFormatter().string(from: Date()), machine: MachineInfo.current(), quick: cfg.quick,
                           threads: cfg.threads, rounds: max(1, cfg.rounds),
                           numpyTiming: "inside Python: time.perf_counter around each call (Swift->Python call overhead excluded), single-threaded numpy, float32",
                           stream: streamResults, sizeMatchedCopy: copies, records: records, skipped: skipped, checks: checks,
                           targets: BenchReport.evaluateTargets(records, threads: cfg.threads), warnings: warnings)
    }

    /// Measures a STREAM copy of `elements` floats with `threads` threads (kept as one more
    /// sample of that size; the report uses the median sample).
    @discardableResult
    public func sizeMatchedCopy(elements: Int, threads: Int, rounds: Int = 1) -> StreamResult {
        let cfg = configuration
        let r = stream.measure("copy", elements: elements, threads: threads, warmup: cfg.warmup,
                               minReps: share(cfg.minReps, rounds), maxReps: share(cfg.maxReps, rounds),
                               minSeconds: cfg.minSeconds / Double(rounds))
        copySamples["\(elements)/\(threads)", default: []].append(r)
        return r
    }

    /// Checks a method at a shape (kernels across thread counts and against the reference;
    /// the numpy implementation against the same reference). `nil` when the check failed
    /// (recorded in `skipped`).
    private func prepare(_ entry: NormRegistry.Entry, shape: [Int], given: [String: OptionValue],
                         checks: inout [String: CheckOutcome], skipped: inout [BenchSkip]) throws -> TimedSubject? {
        let cfg = configuration
        let name = entry.descriptor.name
        log("bench: \(name) \(shapeLabel(shape)): check")
        let subject = try BenchSubject(entry: entry, shape: shape, given: given, seed: cfg.seed &+ UInt64(shape.product))
        let (outcome, expected) = subject.check(threads: cfg.threads, reference: reference, tolerance: cfg.tolerance)
        checks["\(name) \(shapeLabel(shape))"] = outcome
        guard outcome.passed else {
            skipped.append(BenchSkip(method: name, shape: shape, reason: "correctness check failed: " + outcome.failures.joined(separator: "; "), failed: true))
            return nil
        }
        var timed = TimedSubject(subject: subject, check: outcome.label)
        if let numpy, try numpy.implements(name) {
            let impl = try numpy.make(method: name, input: subject.input, parameters: subject.parameters,
                                      buffers: subject.buffers, options: subject.options.values)
            let out = try numpy.outputs(impl, gradOutput: subject.gradOutput)
            let got = ["output": out.train, "grad_input": out.gradInput, "eval_output": out.eval]
            let bad = Correctness.compareAll(got, (expected ?? [:]).filter { got[$0.key] != nil }, tolerance: cfg.tolerance * 10).filter { !$0.passed }
            if bad.isEmpty {
                timed.timesNumpy = true
            } else {
                warnings.append("numpy implementation of \(name) at \(shapeLabel(shape)) disagrees with the reference (\(bad.map { "\($0.name): \($0.problem ?? "")" }.joined(separator: "; "))); not used")
            }
        }
        return timed
    }

    /// One round of a subject's timings: numpy (single-threaded) per op, then at every thread
    /// count a size-matched copy and the kernels per op, each for `1/rounds` of the budget.
    private func timeRound(_ s: inout TimedSubject, round: Int, of rounds: Int) throws {
        let cfg = configuration
        let subject = s.subject, name = subject.method, label = shapeLabel(subject.shape)
        let of = rounds > 1 ? ", round \(round)/\(rounds)" : ""
        if s.timesNumpy, let numpy {
            for op in BenchOp.allCases {
                log("bench: \(name) \(label): numpy \(op.rawValue)\(of)")
                let fresh = try numpy.make(method: name, input: subject.input, parameters: subject.parameters,
                                           buffers: subject.buffers, options: subject.options.values)
                s.numpyTimes[op, default: []] += try numpy.time(fresh, op: op, gradOutput: subject.gradOutput, warmup: 1,
                                                                minReps: share(cfg.numpyMinReps, rounds), maxReps: share(cfg.maxReps, rounds),
                                                                minSeconds: cfg.numpyMinSeconds / Double(rounds))
            }
        }
        for t in cfg.threads {
            sizeMatchedCopy(elements: subject.shape.product, threads: t, rounds: rounds)
            Parallel.threadCount = t
            let layer = try subject.makeLayer()
            for op in BenchOp.allCases {
                log("bench: \(name) \(label): \(op.rawValue), \(t) thread(s)\(of)")
                s.times[TimingKey(threads: t, op: op), default: []] += try time(layer, op, subject, rounds: rounds)
            }
        }
    }

    /// A round's share of a count of calls (at least 1).
    private func share(_ count: Int, _ rounds: Int) -> Int { max(1, (count + rounds - 1) / rounds) }

    /// Seconds per call of `op` on `layer`; every result is dropped before the next call so
    /// the layer's output blocks are reused (as in a training loop).
    private func time(_ layer: any Normalization, _ op: BenchOp, _ s: BenchSubject, rounds: Int) throws -> [Double] {
        var cfg = configuration
        cfg.minReps = share(cfg.minReps, rounds)
        cfg.maxReps = share(cfg.maxReps, rounds)
        cfg.minSeconds /= Double(rounds)
        let x = s.input, g = s.gradOutput
        switch op {
        case .trainForward:
            return try Timing.sample(warmup: cfg.warmup, minReps: cfg.minReps, maxReps: cfg.maxReps, minSeconds: cfg.minSeconds) {
                _ = try layer.forward(x, mode: .train)
            }
        case .evalForward:
            return try Timing.sample(warmup: cfg.warmup, minReps: cfg.minReps, maxReps: cfg.maxReps, minSeconds: cfg.minSeconds) {
                _ = try layer.forward(x, mode: .eval)
            }
        case .backward:
            _ = try layer.forward(x, mode: .train)
            return try Timing.sample(warmup: cfg.warmup, minReps: cfg.minReps, maxReps: cfg.maxReps, minSeconds: cfg.minSeconds) {
                _ = try layer.backward(g)
            }
        }
    }
}

/// A method × shape being timed: its subject, check label and the samples of every round.
struct TimedSubject {
    let subject: BenchSubject
    let check: String
    /// Whether the numpy implementation exists and agrees with the reference.
    var timesNumpy = false
    /// Seconds per call, pooled over the rounds.
    var times: [TimingKey: [Double]] = [:]
    var numpyTimes: [BenchOp: [Double]] = [:]
    /// Set when a round threw: the subject is reported as skipped instead.
    var failed = false

    init(subject: BenchSubject, check: String) {
        self.subject = subject
        self.check = check
    }
}

/// One timed series of a subject: an op at a thread count.
struct TimingKey: Hashable {
    let threads: Int
    let op: BenchOp
}
