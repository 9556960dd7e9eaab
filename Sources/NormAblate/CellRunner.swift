import Foundation
import NormCore
import NormNet
import NormPlugins

/// What running one (cell, seed) produced.
public struct CellResult: Sendable, Equatable {
    /// Final metrics (e.g. `test_accuracy`, `test_loss`). NaN/inf are allowed (a diverged
    /// run) and stored as SQL NULL.
    public var metrics: [String: Double]
    /// Per-epoch curves (e.g. `test_accuracy` after every epoch), one value per epoch.
    public var curves: [String: [Double]]
    /// Norm telemetry (batch-vs-running statistic gaps, clip counts, …) as a JSON-able tree;
    /// stored as JSON with the run, not aggregated.
    public var telemetry: ConfigValue
    /// The run diverged (non-finite loss, exploding weights): kept in the store, marked in
    /// reports, excluded from means.
    public var diverged: Bool
    /// Content hash of the data the run used (provenance).
    public var datasetHash: String?

    public init(metrics: [String: Double], curves: [String: [Double]] = [:], telemetry: ConfigValue = .null,
                diverged: Bool = false, datasetHash: String? = nil) {
        self.metrics = metrics
        self.curves = curves
        self.telemetry = telemetry
        self.diverged = diverged
        self.datasetHash = datasetHash
    }

    /// Whether two results are the same *outcome*: metrics, curves and the divergence flag
    /// bit for bit (NaN equals NaN). Telemetry and provenance may differ. This is what
    /// `merge` compares and what a `--jobs N` run must reproduce.
    public func sameOutcome(as other: CellResult) -> Bool {
        guard sameFinalMetrics(as: other), curves.count == other.curves.count else { return false }
        for (k, v) in curves {
            guard let w = other.curves[k], v.count == w.count, zip(v, w).allSatisfy(Self.same) else { return false }
        }
        return true
    }

    /// Whether two results have the same final metrics and divergence flag, bit for bit
    /// (NaN equals NaN), curves aside: what a run read back from a report's `runs.csv` keeps.
    public func sameFinalMetrics(as other: CellResult) -> Bool {
        guard diverged == other.diverged, metrics.count == other.metrics.count else { return false }
        return metrics.allSatisfy { k, v in other.metrics[k].map { Self.same(v, $0) } ?? false }
    }

    private static func same(_ a: Double, _ b: Double) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }
}

/// Trains and evaluates one cell. The ablation driver is generic over this: it expands the
/// grid, validates every cell through ``validate(_:)`` before anything runs, calls
/// ``run(_:seed:threads:)`` for each missing (cell, seed), and stores the results.
///
/// ## The seam to the training engine
/// The driver never interprets a cell's configuration; the runner does. A runner for the
/// real trainer (`TrainingRunner`, written against `NormNet`) turns the ``CellConfig`` tree
/// (`model.norm.name`, `optimizer.lr`, `pretrain`/`finetune`, …) into the engine's own
/// configuration types, trains with `seed` using `threads` compute threads, and returns the
/// final metrics, per-epoch curves, norm telemetry and the data set's content hash.
/// Register it under a name with ``CellRunners/register(_:factory:)`` (the CLI picks it with
/// `--runner NAME`, default `train`).
///
/// ## Requirements
/// - ``validate(_:)`` must be cheap and pure (no training, no data loading): it is called
///   for every cell before the study starts. AblationReport every problem, each with the
///   config-relative dotted path (`optimizer.lr`, `model.norm.options.num_groups`); the
///   driver rewrites paths to where the value came from in the spec
///   (`base.optimizer.lr`, `grid.batch_size[2]`) and says in which cells a problem occurs.
///   ``CellConfig``'s typed accessors throw ready-made ``ConfigProblem``s.
/// - ``run(_:seed:threads:)`` is called concurrently from `--jobs` worker threads: it must
///   not share mutable state between calls unguarded. Its result must be a function of
///   (config, seed, threads) only — that is what makes `--jobs N` equal to a serial run,
///   shards mergeable and reruns comparable. A diverged run returns a result with
///   `diverged: true`; throw only when the run could not be carried out (it is then not
///   stored and is retried next time).
public protocol CellRunner: Sendable {
    /// A short identifier (`train`, `fake`), recorded in the store: a store holds results
    /// of one runner only.
    var name: String { get }
    /// The metric names every run reports, when known in advance (checked against
    /// `report.metrics` before anything runs); nil to skip that check.
    var metricNames: [String]? { get }
    /// The per-epoch curve names runs report, when known (checked against curve plots); nil
    /// to skip that check.
    var curveNames: [String]? { get }
    /// Every problem of `config`, with config-relative paths; empty when it can run.
    func validate(_ config: CellConfig) -> [ConfigProblem]
    /// Trains and evaluates `config` with `seed`, using `threads` compute threads.
    func run(_ config: CellConfig, seed: UInt64, threads: Int) throws -> CellResult
}

extension CellRunner {
    public var metricNames: [String]? { nil }
    public var curveNames: [String]? { nil }
}

/// What a runner factory gets from the command line.
public struct RunnerContext: Sendable {
    /// The normalization registry: built-ins plus `--plugin` / `NORMLAB_PLUGIN_PATH` plugins.
    public var registry: NormRegistry

    public init(registry: NormRegistry = Builtins.registry) {
        self.registry = registry
    }
}

/// Named runner factories (`--runner NAME`). `fake` is built in; the training engine's
/// adapter registers `train`:
///
/// ```swift
/// CellRunners.register("train") { context in TrainingRunner(registry: context.registry) }
/// ```
public enum CellRunners {
    public typealias Factory = @Sendable (RunnerContext) throws -> any CellRunner

    private static let lock = NSLock()
    nonisolated(unsafe) private static var factories: [String: Factory] = [
        "fake": { context in FakeRunner.fromEnvironment(registry: context.registry) },
        "train": { context in TrainingRunner(registry: context.registry) },
    ]

    /// Registers (or replaces) the runner called `name`.
    public static func register(_ name: String, factory: @escaping Factory) {
        lock.lock(); defer { lock.unlock() }
        factories[name] = factory
    }

    /// The registered names, sorted.
    public static var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return factories.keys.sorted()
    }

    /// A new runner called `name`.
    public static func make(_ name: String, context: RunnerContext = RunnerContext()) throws -> any CellRunner {
        lock.lock()
        let factory = factories[name]
        lock.unlock()
        guard let factory else {
            throw AblationError("no runner named '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return try factory(context)
    }
}

/// A driver failure (store mismatch, bad shard, unreadable file, …): one line of text.
public struct AblationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

extension AblationError: UserFacingError {}
