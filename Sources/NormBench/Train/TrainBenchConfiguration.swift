import Foundation
import NormCore

/// What one `normlab bench train` run measures.
public struct TrainBenchConfiguration: Sendable, Equatable {
    public var models: [TrainBenchModel]
    /// Norm method names or aliases; `none` is a model without normalization.
    public var norms: [String]
    public var batchSizes: [Int]
    public var threads: [Int]
    public var quick: Bool
    /// Untimed steps before the timed ones (per model × norm × batch × threads).
    public var warmupSteps: Int
    /// Timed steps: at least `minSteps` and at least `minSeconds`, at most `maxSteps`.
    public var minSteps: Int
    public var maxSteps: Int
    public var minSeconds: Double
    /// Whether to time each layer kind (a second, separately timed series of steps).
    public var breakdown: Bool
    /// Whether to time the same model in PyTorch / JAX when importable.
    public var frameworks: Bool
    /// Steps run twice from the same initial state for the bit-identity check.
    public var checkSteps: Int
    /// Seed of the initial weights and the batch.
    public var seed: UInt64

    /// The batch sizes.
    public static let standardBatchSizes = [2, 8, 32, 128]

    /// The full run.
    public static func standard() -> TrainBenchConfiguration {
        TrainBenchConfiguration(models: TrainBenchModel.all, norms: [NormSpec.defaultMethodName], batchSizes: standardBatchSizes,
                                threads: BenchConfiguration.defaultThreads, quick: false,
                                warmupSteps: 3, minSteps: 5, maxSteps: 2_000, minSeconds: 1.0,
                                breakdown: true, frameworks: true, checkSteps: 2, seed: 7)
    }

    /// Seconds, not minutes: the plain nets at two small batches, few steps.
    public static func quickRun() -> TrainBenchConfiguration {
        var c = standard()
        c.models = [.plain2D, .plain1D]
        c.batchSizes = [2, 8]
        c.quick = true
        c.warmupSteps = 1
        c.minSteps = 3
        c.maxSteps = 20
        c.minSeconds = 0.05
        c.checkSteps = 2
        return c
    }

    /// Comma-separated positive batch sizes.
    public static func parseBatchSizes(_ text: String) throws -> [Int] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        return try items.map { item in
            guard let b = Int(item.trimmingCharacters(in: .whitespaces)), (1...65_536).contains(b) else {
                throw BenchError("--batch-sizes: '\(item)' is not a batch size between 1 and 65536")
            }
            return b
        }
    }

    /// Comma-separated model names.
    public static func parseModels(_ text: String) throws -> [TrainBenchModel] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map {
            try TrainBenchModel.named($0.trimmingCharacters(in: .whitespaces))
        }
    }
}
