import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// The recipe features inside a training run: determinism, what they leave alone, and the
/// run report's fields. Tiny 2-D data: class k has a bright k-th quadrant.
@Suite struct RecipeFeatureTrainingTests {
    static let images: Dataset = {
        var rng = SeededGenerator(seed: 5)
        func split(_ n: Int) -> (Tensor, [Int]) {
            var labels: [Int] = []
            var values = [Float](repeating: 0, count: n * 64)
            for i in 0..<n {
                let k = rng.nextInt(in: 0...3)
                labels.append(k)
                for y in 0..<8 { for x in 0..<8 {
                    let inQuadrant = (y < 4 ? 0 : 2) + (x < 4 ? 0 : 1) == k
                    values[i * 64 + y * 8 + x] = Float((inQuadrant ? 1.0 : 0.0) + 0.3 * rng.nextNormal())
                }}
            }
            return (Tensor(shape: [n, 1, 8, 8], scalars: values), labels)
        }
        let (xt, yt) = split(96), (xv, yv) = split(32)
        return Dataset(name: "quadrants", trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv, classes: 4,
                       contentHash: Dataset.computeContentHash(trainInputs: xt, trainLabels: yt, testInputs: xv, testLabels: yv, classes: 4))
    }()

    func recipe(_ configure: (inout TrainingRecipe) -> Void) -> TrainingRecipe {
        var r = TrainingRecipe(norm: NormSpec("batch_norm"))
        r.width = 4
        r.batchSize = 16
        r.duration = .steps(12)
        r.seed = 3
        r.evaluateEachEpoch = false
        configure(&r)
        return r
    }

    @Test func everyFeatureTogetherIsDeterministic() throws {
        let r = recipe {
            $0.optimizer = .adamw
            $0.augmentation = .standard
            $0.dropout = 0.3
            $0.labelSmoothing = 0.1
            $0.weightStandardization = try! WeightStandardization()
        }
        let a = try r.run(on: Self.images, registry: Builtins.registry)
        let b = try r.run(on: Self.images, registry: Builtins.registry)
        #expect(a.result.losses == b.result.losses)
        #expect(a.result.testAccuracy == b.result.testAccuracy)
        #expect(a.model.namedParameters.allSatisfy { p in
            b.model.namedParameters.first { $0.name == p.name }!.parameter.value.isBitIdentical(to: p.parameter.value)
        })
        let json = a.report.json
        #expect(json["optimizer"] == .string("adamw") && json["label_smoothing"] == .real(0.1) && json["dropout"] == .real(0.3))
        #expect(json["weight_standardization"] == .real(1e-6))
        #expect(json["augment"]?["crop_padding"] == .integer(4))
        #expect(a.model.layers.contains { $0.name == "dropout" && $0.layer is Dropout })
        #expect(a.model.blocks.allSatisfy { $0.conv.weightStandardization != nil })
        #expect(a.result.losses.allSatisfy { $0.isFinite })
    }

    @Test func defaultsLeaveARunBitIdentical() throws {
        // Explicit "off" values train exactly like a recipe that never mentions the features.
        let plain = try recipe { _ in }.run(on: Self.images, registry: Builtins.registry)
        let off = try recipe {
            $0.optimizer = .sgd
            $0.augmentation = AugmentationConfig.none
            $0.dropout = 0
            $0.labelSmoothing = 0
        }.run(on: Self.images, registry: Builtins.registry)
        #expect(plain.result.losses == off.result.losses)
        #expect(plain.report.json["augment"] == ConfigValue.null && plain.report.json["optimizer"] == .string("sgd"))
    }

    @Test func augmentationChangesTheInputsNotTheBatchOrder() throws {
        // With lr 0 nothing learns, so the losses differ only through the inputs; with
        // augmentation the first step's loss must differ, and the sampler's order is its own.
        let still = try recipe { $0.learningRate = 0; $0.duration = .steps(3) }.run(on: Self.images, registry: Builtins.registry)
        let shaken = try recipe { $0.learningRate = 0; $0.duration = .steps(3); $0.augmentation = .standard }
            .run(on: Self.images, registry: Builtins.registry)
        #expect(still.result.losses != shaken.result.losses)
        let config = recipe { $0.augmentation = .standard }.config(for: Self.images)
        #expect(config.features.augmentationSeed(from: config.seed) != config.seed)
    }

    @Test func adamLearnsTheQuadrants() throws {
        let r = recipe { $0.optimizer = .adam; $0.learningRate = 0.01; $0.duration = .steps(60) }
        let run = try r.run(on: Self.images, registry: Builtins.registry)
        #expect(run.result.trainLoss! < run.result.losses.first!)
        #expect(run.result.testAccuracy! >= 0.75, "test accuracy \(run.result.testAccuracy!)")
        #expect(run.report.json["lr"] == .real(0.01) && run.report.json["weight_decay"] == .real(0))
    }

    @Test func augmentingOneDimensionalDataIsRefused() throws {
        let r = recipe { $0.augmentation = .standard; $0.width = nil }
        #expect(throws: NetError.self) { try r.run(on: syntheticData, registry: Builtins.registry) }
    }

    @Test func datasetSourceArguments() throws {
        #expect(try DatasetSource(argument: "fashion-mnist") == .builtin(.fashionMNIST))
        #expect(try DatasetSource(argument: "mnist1d") == .builtin(.mnist1d))
        #expect(try DatasetSource(argument: "mine.NPZ") == .file("mine.NPZ"))
        #expect(try DatasetSource(argument: "data/mine") == .file("data/mine"))
        #expect(throws: NetError.self) { try DatasetSource(argument: "cifar10") }
    }
}
