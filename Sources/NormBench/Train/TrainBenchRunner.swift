import Foundation
import NormCore
import NormNet

/// Runs `normlab bench train`: for every thread count, model, norm and batch size, checks
/// that repeated steps are bit-identical, times training steps through the engine's own
/// path, optionally times each layer kind in separate steps, then times the same jobs in
/// PyTorch / JAX when importable.
public final class TrainBenchRunner {
    public let registry: NormRegistry
    public let configuration: TrainBenchConfiguration
    let log: (String) -> Void
    private var frameworkSide: FrameworkSide?

    static let identical = "bit-identical"

    public init(registry: NormRegistry, configuration: TrainBenchConfiguration, log: @escaping (String) -> Void = { _ in }) {
        self.registry = registry
        self.configuration = configuration
        self.log = log
    }

    /// The norm spec for a CLI label `METHOD[:OPTION=VALUE...]` (`gn:num_groups=8`; `none`
    /// is no normalization); unknown names and malformed options throw.
    public func normSpec(_ label: String) throws -> NormSpec? {
        let parts = label.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        if name.lowercased() == "none" && parts.count == 1 { return nil }
        do { _ = try registry.entry(named: name) } catch {
            throw BenchError("unknown norm method '\(name)'")
        }
        var options: [String: OptionValue] = [:]
        for item in parts.dropFirst() {
            let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else {
                throw BenchError("--norm: '\(item)' in '\(label)' is not OPTION=VALUE")
            }
            options[kv[0]] = Self.optionValue(kv[1])
        }
        return NormSpec(name, options: options)
    }

    /// `8` → integer, `0.5` → real, `true`/`false` → bool, `none` → none, else text.
    static func optionValue(_ text: String) -> OptionValue {
        if let i = Int(text) { return .integer(i) }
        if let d = Double(text) { return .real(d) }
        switch text.lowercased() {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "none": return .none
        default: return .text(text)
        }
    }

    /// Validates the selection before anything runs.
    public func validate() throws {
        guard !configuration.models.isEmpty, !configuration.norms.isEmpty, !configuration.batchSizes.isEmpty,
              !configuration.threads.isEmpty else { throw BenchError("bench train: nothing selected") }
        for n in configuration.norms { _ = try normSpec(n) }
        for m in configuration.models {
            for n in configuration.norms {
                do { _ = try m.build(norm: try normSpec(n), registry: registry, seed: 0) } catch let e as BenchError {
                    throw e
                } catch {
                    throw BenchError("\(m.name) with \(n): \(error)")
                }
            }
        }
    }

    /// Starts the framework side when Python and the module are there (quietly absent otherwise).
    public func attachFrameworks() {
        guard configuration.frameworks else { return }
        do {
            let side = try FrameworkSide()
            frameworkSide = side
            log(side.available.isEmpty ? "bench train: neither torch nor jax is importable; normlab alone"
                                       : "bench train: timing \(side.available.joined(separator: ", ")) too")
        } catch {
            log("bench train: no framework side (\(error))")
        }
    }

    public func run() throws -> TrainBenchReport {
        try validate()
        let cfg = configuration
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        var records: [TrainBenchRecord] = []
        for threads in cfg.threads {
            ComputeThreads.set(threads)
            for model in cfg.models {
                for norm in cfg.norms {
                    for batch in cfg.batchSizes {
                        log("bench train: \(model.name) \(norm) B=\(batch) \(threads) thr")
                        records.append(try measure(model, norm: norm, batch: batch, threads: threads))
                    }
                }
            }
        }
        let frameworks = frameworkSide?.available ?? []
        for framework in frameworks {
            for threads in cfg.threads {
                let indices = records.indices.filter { records[$0].threads == threads }
                let jobs = indices.map { FrameworkJob(model: records[$0].model, norm: records[$0].norm, batch: records[$0].batch) }
                log("bench train: \(framework), \(threads) thr, \(jobs.count) jobs")
                let results = try frameworkSide!.measure(framework, threads: threads, jobs: jobs, minSeconds: cfg.minSeconds,
                                                         minSteps: cfg.minSteps, maxSteps: cfg.maxSteps)
                for (i, result) in zip(indices, results) {
                    switch result {
                    case let .success(ms):
                        records[i].frameworks.append(FrameworkTiming(framework: framework, timing: TimingSummary(seconds: ms.map { $0 / 1e3 })))
                    case let .failure(e):
                        records[i].frameworks.append(FrameworkTiming(framework: framework, timing: nil, error: e.description))
                    }
                }
            }
        }
        return TrainBenchReport(date: ISO8601DateFormatter().string(from: Date()), machine: MachineInfo.current(),
                                quick: cfg.quick, frameworks: frameworks, records: records)
    }

    func makeStep(_ model: TrainBenchModel, norm: String, batch: Int) throws -> TrainStep {
        let net = try model.build(norm: try normSpec(norm), registry: registry, seed: configuration.seed)
        let (x, labels) = TrainStep.batch(batch, sampleShape: model.sampleShape, classes: model.classes, seed: configuration.seed &+ 1)
        return try TrainStep(model: net, input: x, labels: labels)
    }

    /// Whether two fresh runs of `checkSteps` steps agree bit for bit (losses and state).
    func repeatsBitIdentically(_ model: TrainBenchModel, norm: String, batch: Int) throws -> Bool {
        func trace() throws -> (losses: [Double], state: [Tensor]) {
            let step = try makeStep(model, norm: norm, batch: batch)
            var losses: [Double] = []
            for _ in 0..<max(1, configuration.checkSteps) { try step.run(); losses.append(step.loss) }
            return (losses, step.state)
        }
        let a = try trace(), b = try trace()
        return a.losses.map(\.bitPattern) == b.losses.map(\.bitPattern) && a.state.count == b.state.count
            && zip(a.state, b.state).allSatisfy { $0.isBitIdentical(to: $1) }
    }

    func measure(_ model: TrainBenchModel, norm: String, batch: Int, threads: Int) throws -> TrainBenchRecord {
        let cfg = configuration
        let check = try repeatsBitIdentically(model, norm: norm, batch: batch) ? Self.identical : "DIFFERS"
        let step = try makeStep(model, norm: norm, batch: batch)
        let seconds = try Timing.sample(warmup: cfg.warmupSteps, minReps: cfg.minSteps, maxReps: cfg.maxSteps,
                                        minSeconds: cfg.minSeconds) { try step.run() }
        var breakdown: [String: Double]?
        if cfg.breakdown {
            var byKind: [LayerKind: Double] = [:]
            var count = 0, total = 0.0
            while count < cfg.minSteps || (total < cfg.minSeconds / 2 && count < cfg.maxSteps) {
                let t0 = Timing.now()
                try step.runTimed(into: &byKind)
                total += Timing.now() - t0
                count += 1
            }
            breakdown = Dictionary(uniqueKeysWithValues: byKind.map { ($0.key.rawValue, $0.value * 1e3 / Double(count)) })
        }
        return TrainBenchRecord(model: model.name, norm: norm, batch: batch, threads: threads,
                                timing: TimingSummary(seconds: seconds), breakdown: breakdown, check: check, frameworks: [])
    }
}
