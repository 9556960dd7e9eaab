import Testing
import NormCore
@testable import NormNet

@Suite struct AugmentationTests {
    /// A batch whose every value names its position: sample·1000 + channel·100 + row·10 + column + 1.
    func positionBatch(n: Int = 3, c: Int = 2, h: Int = 4, w: Int = 5) -> Tensor {
        Tensor(shape: [n, c, h, w]) { b in
            for s in 0..<n { for ch in 0..<c { for i in 0..<h { for j in 0..<w {
                b[((s * c + ch) * h + i) * w + j] = Float(s * 1000 + ch * 100 + i * 10 + j + 1)
            }}}}
        }
    }

    @Test func sameSeedSameCropsAndFlips() {
        let x = positionBatch()
        var a = BatchAugmenter(.standard, seed: 5), b = BatchAugmenter(.standard, seed: 5)
        var c = BatchAugmenter(.standard, seed: 6)
        var differs = false
        for _ in 0..<4 {
            let ya = a.augment(x), yb = b.augment(x), yc = c.augment(x)
            #expect(ya.isBitIdentical(to: yb))
            if !ya.isBitIdentical(to: yc) { differs = true }
        }
        #expect(differs, "another seed should give other crops")
    }

    @Test func eachSampleIsItsDrawnShiftedAndMirroredCrop() {
        let (n, c, h, w) = (6, 2, 4, 5)
        let x = positionBatch(n: n, c: c, h: h, w: w)
        let config = AugmentationConfig(cropPadding: 2, flip: true)
        var replay = BatchAugmenter(config, seed: 21)
        let draws = (0..<n).map { _ in replay.nextDraw() }
        var augmenter = BatchAugmenter(config, seed: 21)
        let y = augmenter.augment(x)
        for s in 0..<n {
            let d = draws[s]
            #expect((-2...2).contains(d.shiftY) && (-2...2).contains(d.shiftX))
            for ch in 0..<c { for i in 0..<h { for j in 0..<w {
                let si = i + d.shiftY, sj = (d.flipped ? w - 1 - j : j) + d.shiftX
                let expected: Float = (0..<h).contains(si) && (0..<w).contains(sj) ? Float(s * 1000 + ch * 100 + si * 10 + sj + 1) : 0
                #expect(y[flat: ((s * c + ch) * h + i) * w + j] == expected)
            }}}
        }
    }

    @Test func flipOnlyMirrorsRowsExactly() {
        let x = positionBatch(n: 64, c: 1, h: 2, w: 3)
        var augmenter = BatchAugmenter(AugmentationConfig(cropPadding: 0, flip: true), seed: 3)
        let y = augmenter.augment(x)
        var flips = 0
        for s in 0..<64 {
            let row = (0..<3).map { y[flat: s * 6 + $0] }, original = (0..<3).map { x[flat: s * 6 + $0] }
            if row == original { continue }
            #expect(row == original.reversed())
            #expect((0..<3).map { y[flat: s * 6 + 3 + $0] } == (0..<3).map { x[flat: s * 6 + 3 + $0] }.reversed())
            flips += 1
        }
        #expect(flips > 16 && flips < 48, "about half the samples are flipped, got \(flips)")
    }

    @Test func cropOnlyNeverFlipsAndKeepsShiftedPixels() {
        let x = positionBatch(n: 16, c: 1, h: 6, w: 6)
        var augmenter = BatchAugmenter(AugmentationConfig(cropPadding: 1, flip: false), seed: 8)
        let y = augmenter.augment(x)
        // The centre pixel (2, 2) comes from (2 + dy, 2 + dx) with |dy|, |dx| ≤ 1.
        for s in 0..<16 {
            let v = Int(y[flat: s * 36 + 2 * 6 + 2]) - s * 1000 - 1
            #expect((1...3).contains(v / 10) && (1...3).contains(v % 10))
        }
    }

    @Test func identityAndOneDimensionalData() throws {
        var augmenter = BatchAugmenter(.none, seed: 1)
        let x = positionBatch()
        #expect(augmenter.augment(x).isBitIdentical(to: x))
        #expect(throws: NetError.self) { try AugmentationConfig.standard.validate(sampleShape: [1, 40]) }
        #expect(throws: NetError.self) { try AugmentationConfig(cropPadding: -1, flip: false).validate(sampleShape: [1, 8, 8]) }
        try AugmentationConfig.none.validate(sampleShape: [1, 40])
        try AugmentationConfig.standard.validate(sampleShape: [1, 28, 28])
    }
}

/// Data sets declare the augmentation a recipe uses when it states none.
@Suite struct DefaultAugmentationTests {
    func dataset(_ augmentation: AugmentationConfig) -> Dataset {
        let x = Tensor.zeros([4, 1, 6, 6])
        var d = Dataset(name: "t", trainInputs: x, trainLabels: [0, 1, 0, 1], testInputs: x, testLabels: [0, 1, 0, 1],
                        classes: 2, contentHash: "0")
        d.recipeDefaults.augmentation = augmentation
        return d
    }

    @Test func fashionMNISTIsAugmentedByDefaultAndTheOthersAreNot() {
        #expect(DatasetName.fashionMNIST.recipeDefaults.augmentation == .standard)
        for name in DatasetName.allCases where name != .fashionMNIST {
            #expect(name.recipeDefaults.augmentation == .none, "\(name)")
        }
    }

    @Test func aRecipeUsesTheDataSetsDefaultUnlessItStatesOne() {
        let augmented = dataset(.standard), plain = dataset(.none)
        var recipe = TrainingRecipe()
        #expect(recipe.config(for: augmented).features.augmentation == .standard)
        #expect(recipe.config(for: plain).features.augmentation == .none)
        recipe.augmentation = AugmentationConfig.none   // --no-augment / augment: false
        #expect(recipe.config(for: augmented).features.augmentation == .none)
        recipe.augmentation = AugmentationConfig(cropPadding: 2, flip: false)
        #expect(recipe.config(for: plain).features.augmentation == AugmentationConfig(cropPadding: 2, flip: false))
    }
}

/// Data sets may declare the training length a recipe uses when it states none.
@Suite struct DefaultDurationTests {
    @Test func fashionMNISTTrainsTwentyEpochsByDefaultAndTheOthersUseTheDefaults() {
        #expect(DatasetName.fashionMNIST.recipeDefaults.duration == .epochs(20))
        for name in DatasetName.allCases where name != .fashionMNIST {
            #expect(name.recipeDefaults.duration == nil, "\(name)")
        }
        #expect(TrainPresets.defaults.duration == .epochs(30))
    }

    @Test func aRecipeUsesTheDataSetsLengthUnlessItStatesOne() {
        let x = Tensor.zeros([4, 1, 6, 6])
        var images = Dataset(name: "t", trainInputs: x, trainLabels: [0, 1, 0, 1], testInputs: x, testLabels: [0, 1, 0, 1],
                             classes: 2, contentHash: "0")
        var recipe = TrainingRecipe()
        #expect(recipe.config(for: images).duration == .epochs(30))
        images.recipeDefaults.duration = .epochs(20)
        #expect(recipe.config(for: images).duration == .epochs(20))
        recipe.duration = .steps(7)
        #expect(recipe.config(for: images).duration == .steps(7))
    }
}
