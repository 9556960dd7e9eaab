import NormCore

/// Training-time data augmentation for images: the standard CIFAR recipe of He et al. 2016
/// (§4.2): "4 pixels are padded on each side, and a 32×32 crop is randomly sampled from the
/// padded image or its horizontal flip". Off unless asked for (`--augment`, spec `augment:`)
/// or declared by the data set (``DatasetName/recipeDefaults``: on for Fashion-MNIST).
///
/// Only 2-D samples `(C, H, W)` are augmented; asking for augmentation on 1-D data
/// `(C, L)` is refused with an error (a flipped or shifted signal is not the same class in
/// general, e.g. MNIST-1D), rather than silently ignored.
public struct AugmentationConfig: Sendable, Equatable {
    /// Zero padding on each side before the random crop back to the input size (0 = no crop).
    public var cropPadding: Int
    /// Mirror left–right with probability 1/2.
    public var flip: Bool

    /// Pad 4 and crop, plus random horizontal flips (He et al. 2016, §4.2).
    public static let standard = AugmentationConfig(cropPadding: 4, flip: true)
    /// No augmentation.
    public static let none = AugmentationConfig(cropPadding: 0, flip: false)

    public init(cropPadding: Int = 4, flip: Bool = true) {
        self.cropPadding = cropPadding
        self.flip = flip
    }

    /// True when it changes nothing.
    public var isIdentity: Bool { cropPadding == 0 && !flip }

    /// Checks the settings against a per-sample shape.
    public func validate(sampleShape: [Int]) throws {
        guard cropPadding >= 0 else { throw NetError("augment: crop padding must be >= 0, got \(cropPadding)") }
        guard !isIdentity else { return }
        guard sampleShape.count == 3 else {
            throw NetError("augment: random crops and flips need 2-D images (C, H, W), the data set has samples of shape \(sampleShape.shapeText); drop the augmentation for 1-D data")
        }
    }
}

/// Applies an ``AugmentationConfig`` to training batches `(N, C, H, W)`, drawing from its own
/// ``SeededGenerator``: the same seed and the same sequence of batches give the same crops
/// and flips. Per sample, in order: the crop offsets `dy`, then `dx` (each uniform in
/// `0...2·padding`, only when padding > 0), then the flip (uniform < 1/2, only when flipping
/// is on). The output sample is `out[c, i, j] = x[c, i + dy − p, j' + dx − p]` with
/// `j' = W − 1 − j` when flipped (else `j`) and zero outside the image; a crop is taken
/// from the padded image, then mirrored (torchvision's `RandomCrop(padding=p)` followed by
/// `RandomHorizontalFlip()`).
public struct BatchAugmenter: Sendable {
    public let config: AugmentationConfig
    private var generator: SeededGenerator

    public init(_ config: AugmentationConfig, seed: UInt64) {
        self.config = config
        generator = SeededGenerator(seed: seed)
    }

    /// One sample's random choices.
    public struct Draw: Sendable, Equatable {
        /// Shift of the crop window relative to the image (`d − padding`), rows and columns.
        public let shiftY: Int
        public let shiftX: Int
        public let flipped: Bool
    }

    /// The next sample's draw.
    public mutating func nextDraw() -> Draw {
        let p = config.cropPadding
        let dy = p > 0 ? generator.nextInt(in: 0...(2 * p)) - p : 0
        let dx = p > 0 ? generator.nextInt(in: 0...(2 * p)) - p : 0
        let flipped = config.flip ? generator.nextUniform() < 0.5 : false
        return Draw(shiftY: dy, shiftX: dx, flipped: flipped)
    }

    /// An augmented copy of `batch` (returned unchanged when the config is the identity).
    public mutating func augment(_ batch: Tensor) -> Tensor {
        guard !config.isIdentity, batch.rank == 4 else { return batch }
        let n = batch.shape[0], c = batch.shape[1], h = batch.shape[2], w = batch.shape[3]
        let draws = (0..<n).map { _ in nextDraw() }
        return Tensor(shape: batch.shape) { out in
            batch.withUnsafeBufferPointer { x in
                for s in 0..<n {
                    let d = draws[s]
                    for ch in 0..<c {
                        let plane = (s * c + ch) * h * w
                        for i in 0..<h {
                            let si = i + d.shiftY
                            for j in 0..<w {
                                let sj = (d.flipped ? w - 1 - j : j) + d.shiftX
                                out[plane + i * w + j] = (0..<h).contains(si) && (0..<w).contains(sj) ? x[plane + si * w + sj] : 0
                            }
                        }
                    }
                }
            }
        }
    }
}
