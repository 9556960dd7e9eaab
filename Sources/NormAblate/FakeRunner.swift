import Foundation
import NormCore
import NormNet
import NormPlugins

/// A runner that trains nothing: deterministic metrics, curves and telemetry computed from
/// the cell's hash and the seed, so every driver feature (resume, `--jobs`, shards, merge,
/// reports) can be tested in milliseconds. `normlab ablate --runner fake` selects it.
///
/// - `test_accuracy` = 0.55 + 0.4·q + 0.04·(e − ½), `test_loss` = −log(test_accuracy),
///   `train_loss` = ½·test_loss, where q ∈ [0, 1) comes from the cell hash and e ∈ [0, 1)
///   from (cell hash, seed). Curves `test_accuracy`/`train_loss` have one value per epoch
///   (`epochs`, else `finetune.epochs`, else 4) ending at the final values.
/// - A learning rate (`optimizer.lr`, `finetune.optimizer.lr`, `pretrain.optimizer.lr` or
///   `lr`) ≥ ``Behaviour/divergenceLR`` diverges: losses NaN, accuracy 0.1, `diverged`.
/// - ``validate(_:)`` checks, where present: positive integer `batch_size`, `epochs`,
///   `steps` (top level, `pretrain.`, `finetune.`), positive learning rates, and that
///   `model.norm.name` is a registered normalization.
public struct FakeRunner: CellRunner {
    public struct Behaviour: Sendable {
        /// Seconds each run sleeps (to test progress, parallelism and killing).
        public var sleepSeconds: Double
        /// After this many successful runs (process-wide for this runner), every later run
        /// throws.
        public var failAfter: Int?
        /// After this many successful runs, the next run ends the process (`exit(75)`),
        /// like a crash: for out-of-process resume tests.
        public var exitAfter: Int?
        public var divergenceLR: Double

        public init(sleepSeconds: Double = 0, failAfter: Int? = nil, exitAfter: Int? = nil, divergenceLR: Double = 1.0) {
            self.sleepSeconds = sleepSeconds
            self.failAfter = failAfter
            self.exitAfter = exitAfter
            self.divergenceLR = divergenceLR
        }
    }

    /// Thrown by a run after ``Behaviour/failAfter`` runs.
    public struct InjectedFailure: Error, CustomStringConvertible {
        public let description: String
    }

    public let behaviour: Behaviour
    /// Normalizations `model.norm.name` may name.
    public let registry: NormRegistry
    private let counter = RunCounter()

    public init(_ behaviour: Behaviour = Behaviour(), registry: NormRegistry = Builtins.registry) {
        self.behaviour = behaviour
        self.registry = registry
    }

    /// Behaviour from `NORMLAB_FAKE_SLEEP` (seconds), `NORMLAB_FAKE_FAIL_AFTER` and
    /// `NORMLAB_FAKE_EXIT_AFTER` (run counts), for CLI tests.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment,
                                       registry: NormRegistry = Builtins.registry) -> FakeRunner {
        FakeRunner(Behaviour(sleepSeconds: env["NORMLAB_FAKE_SLEEP"].flatMap(Double.init) ?? 0,
                             failAfter: env["NORMLAB_FAKE_FAIL_AFTER"].flatMap { Int($0) },
                             exitAfter: env["NORMLAB_FAKE_EXIT_AFTER"].flatMap { Int($0) }),
                   registry: registry)
    }

    public var name: String { "fake" }
    public var metricNames: [String]? { ["test_accuracy", "test_loss", "train_loss"] }
    public var curveNames: [String]? { ["test_accuracy", "train_loss"] }

    /// Successful runs so far.
    public var completedRuns: Int { counter.value }

    public func validate(_ config: CellConfig) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
        for prefix in ["", "pretrain.", "finetune."] {
            for key in ["batch_size", "epochs", "steps"] where config.contains(prefix + key) {
                let path = prefix + key
                do {
                    let v = try config.int(path)
                    if v < 1 { problems.append(ConfigProblem(path: path, message: "must be a positive integer, got \(v)")) }
                } catch let p as ConfigProblem { problems.append(p) } catch {}
            }
            let lrPath = prefix + "optimizer.lr"
            if config.contains(lrPath) {
                do {
                    let lr = try config.double(lrPath)
                    if !(lr > 0) { problems.append(ConfigProblem(path: lrPath, message: "must be a positive number, got \(JSONWriter.number(lr))")) }
                } catch let p as ConfigProblem { problems.append(p) } catch {}
            }
        }
        if config.contains("model.norm.name") {
            do {
                let name = try config.string("model.norm.name")
                if (try? registry.entry(named: name)) == nil {
                    problems.append(ConfigProblem(path: "model.norm.name", message: "unknown normalization '\(name)' (known: \(registry.names.joined(separator: ", ")))"))
                }
            } catch let p as ConfigProblem { problems.append(p) } catch {}
        }
        return problems
    }

    public func run(_ config: CellConfig, seed: UInt64, threads: Int) throws -> CellResult {
        let done = counter.value
        if let n = behaviour.exitAfter, done >= n {
            FileHandle.standardError.write("fake runner: exiting after \(done) runs (NORMLAB_FAKE_EXIT_AFTER)\n".data(using: .utf8)!)
            exit(75)
        }
        if let n = behaviour.failAfter, done >= n {
            throw InjectedFailure(description: "fake runner: injected failure after \(done) runs")
        }
        if behaviour.sleepSeconds > 0 { Thread.sleep(forTimeInterval: behaviour.sleepSeconds) }

        let q = Self.unit(config.hash)
        let e = Self.unit(config.hash + ":" + String(seed))
        let epochs = max(1, min(50, (try? config.int("epochs")) ?? (try? config.int("finetune.epochs")) ?? 4))
        let lr = ["optimizer.lr", "finetune.optimizer.lr", "pretrain.optimizer.lr", "lr"].lazy
            .compactMap { config[$0]?.doubleValue }.first ?? 0.1
        let diverged = lr >= behaviour.divergenceLR
        let accuracy = diverged ? 0.1 : min(1, 0.55 + 0.4 * q + 0.04 * (e - 0.5))
        let testLoss = diverged ? Double.nan : -log(accuracy)
        let trainLoss = diverged ? Double.nan : 0.5 * testLoss
        let norm = 1 - pow(0.5, Double(epochs))
        let accCurve = (0..<epochs).map { k in 0.1 + (accuracy - 0.1) * (1 - pow(0.5, Double(k + 1))) / norm }
        let lossCurve = (0..<epochs).map { k -> Double in
            if diverged { return k == epochs - 1 ? .nan : 2.3 * Double(k + 2) }
            return trainLoss + (2.3 - trainLoss) * pow(0.5, Double(k + 1)) - (2.3 - trainLoss) * pow(0.5, Double(epochs))
        }
        let telemetry: ConfigValue = .map([
            ("runner", "fake"),
            ("threads", .integer(threads)),
            ("layers", .list([
                .map([("name", "block0.norm"), ("mean_gap", .real(0.01 * q)), ("var_ratio", .real(1 + 0.1 * e))]),
                .map([("name", "block1.norm"), ("mean_gap", .real(0.02 * q)), ("var_ratio", .real(1 + 0.2 * e))]),
            ])),
        ])
        let dataset = config["dataset"] ?? config["finetune.dataset"] ?? "fake"
        counter.increment()
        return CellResult(
            metrics: ["test_accuracy": accuracy, "test_loss": testLoss, "train_loss": trainLoss],
            curves: ["test_accuracy": accCurve, "train_loss": lossCurve],
            telemetry: telemetry, diverged: diverged,
            datasetHash: dataset.canonicalHash)
    }

    /// A number in [0, 1) from the first 8 bytes of SHA-256(text).
    static func unit(_ text: String) -> Double {
        let hex = SHA256.hex(text)
        let v = UInt64(hex.prefix(13), radix: 16) ?? 0   // 52 bits
        return Double(v) / Double(1 << 52)
    }
}

/// A thread-safe counter (shared by copies of a runner).
final class RunCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func increment() { lock.lock(); count += 1; lock.unlock() }
}
