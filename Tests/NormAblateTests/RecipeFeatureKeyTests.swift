import Foundation
import Testing
import NormCore
import NormPlugins
import NormNet
@testable import NormAblate

/// The spec keys of issue 14's recipe features: `optimizer.name`, `augment`, `label_smoothing`,
/// `model.dropout`, `model.weight_standardization`, and a `.npz` path as `dataset`.
@Suite struct RecipeFeatureKeyTests {
    let runner = TrainingRunner(registry: Builtins.registry)

    func cell(_ yaml: String) throws -> CellConfig { CellConfig(try YAMLTree(text: yaml, source: "cell.yaml").root) }

    /// A phase's training configuration on a small data set (the recipe's defaults need one).
    func training(_ phase: Phase) -> TrainingConfig { phase.training(for: SyntheticDataset.make(seed: 0), seed: 1) }

    @Test func optimizerNameAndItsDefaults() throws {
        let adamw = try Phase(try cell("optimizer: {name: adamw, beta2: 0.98}"), prefix: "")
        #expect(adamw.features.optimizer == .adamw && adamw.features.adam.beta2 == 0.98)
        #expect(training(adamw).optimizer.learningRate == 1e-3 && training(adamw).optimizer.weightDecay == 1e-2)
        let adam = try Phase(try cell("optimizer: {name: adam, lr: 0.01}"), prefix: "")
        #expect(adam.features.optimizer == .adam && training(adam).optimizer.learningRate == 0.01 && training(adam).optimizer.weightDecay == 0)
        let config = training(adam)
        #expect(config.features.optimizerConfig(sgd: config.optimizer)
                == .adam(AdamConfig(learningRate: 0.01, weightDecay: 0, decoupledWeightDecay: false)))
        let sgd = try Phase(try cell("batch_size: 8"), prefix: "")
        #expect(sgd.features.optimizer == .sgd && training(sgd).optimizer.learningRate == 0.1 && training(sgd).optimizer.weightDecay == 5e-4)
    }

    /// Without `augment`, a cell trains with its data set's default augmentation (on for
    /// Fashion-MNIST), as `normlab train` does; a stated `augment` wins either way.
    @Test func unstatedAugmentIsTheDataSetsDefault() throws {
        var images = Dataset(name: "images", trainInputs: Tensor.zeros([8, 1, 6, 6]), trainLabels: Array(repeating: 0, count: 8),
                         testInputs: Tensor.zeros([4, 1, 6, 6]), testLabels: Array(repeating: 0, count: 4), classes: 2, contentHash: "0")
        images.recipeDefaults.augmentation = .standard
        let unstated = try Phase(try cell("batch_size: 8"), prefix: "")
        #expect(unstated.training(for: images, seed: 1).features.augmentation == .standard)
        #expect(training(unstated).features.augmentation == .none)   // synthetic 1-D data: none
        let off = try Phase(try cell("augment: false"), prefix: "")
        #expect(off.training(for: images, seed: 1).features.augmentation == .none)
        let custom = try Phase(try cell("augment: {crop_padding: 1}"), prefix: "")
        #expect(custom.training(for: images, seed: 1).features.augmentation == AugmentationConfig(cropPadding: 1, flip: true))
    }

    @Test func augmentLabelSmoothingDropoutAndWeightStandardization() throws {
        let c = try cell("""
            dataset: digits
            augment: {crop_padding: 2, flip: false}
            label_smoothing: 0.1
            model: {dropout: 0.25, weight_standardization: {eps: 1e-5}}
            """)
        let phase = try Phase(c, prefix: "")
        #expect(phase.features.augmentation == AugmentationConfig(cropPadding: 2, flip: false))
        #expect(phase.features.labelSmoothing == 0.1)
        let spec = try runner.modelSpec(c, dataset: ([1, 8, 8], 10), freeze: FreezeSpec())
        #expect(spec.dropout == 0.25 && spec.weightStandardization?.epsilon == 1e-5)
        #expect(try Phase(try cell("augment: true"), prefix: "").features.augmentation == .standard)
        #expect(try runner.modelSpec(try cell("model: {weight_standardization: true}"), dataset: ([1, 8, 8], 10), freeze: FreezeSpec())
                .weightStandardization == (try WeightStandardization()))
        #expect(runner.validate(c).isEmpty, "\(runner.validate(c))")
    }

    @Test func badValuesNameTheirKey() throws {
        for (yaml, path) in [("optimizer: {name: rmsprop}", "optimizer.name"),
                             ("optimizer: {name: adam, momentum: 0.9}", "optimizer.momentum"),
                             ("optimizer: {beta1: 0.5}", "optimizer.beta1"),
                             ("optimizer: {name: adamw, beta1: 1.5}", "optimizer"),
                             ("augment: {crop_padding: -1}", "augment"),
                             ("augment: {pad: 4}", "augment.pad"),
                             ("augment: 3", "augment"),
                             ("label_smoothing: 1.5", "label_smoothing"),
                             ("dataset: synthetic\nmodel: {dropout: 1}", "model.dropout"),
                             ("dataset: synthetic\nmodel: {weight_standardization: {eps: 0}}", "model.weight_standardization"),
                             ("dataset: synthetic\nmodel: {weight_standardization: {epsilon: 1e-5}}", "model.weight_standardization.epsilon"),
                             ("dataset: cifar10", "dataset"),
                             ("dataset: synthetic\naugment: true", "augment"),
                             ("dataset: missing/data.npz", "dataset")] {
            let problems = runner.validate(try cell(yaml))
            #expect(problems.contains { $0.path == path }, "\(yaml): \(problems)")
        }
    }

    @Test func npzPathIsADatasetSource() throws {
        #expect(try Phase(try cell("dataset: data/mine.npz"), prefix: "").dataset == .file("data/mine.npz"))
        #expect(try Phase(try cell("dataset: {name: fashion-mnist}"), prefix: "").dataset == .builtin(.fashionMNIST))
    }

    @Test func augmentOnOneDimensionalDataIsRefusedWhenTraining() throws {
        let c = try cell("dataset: synthetic\naugment: true\nsteps: 1\nbatch_size: 8")
        #expect(throws: NetError.self) { try runner.run(c, seed: 0, threads: 1) }
    }
}
