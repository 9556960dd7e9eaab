import NormCore
import NormNet

/// The networks `normlab bench train` times, by name (`plain-2d`, `plain-1d`, ...).
///
/// - `plain-2d`: the anchor of the training-speed issue — input `(1, 8, 8)`,
///   3 × [conv 3×3 (32 channels, no bias) + norm + ReLU], no downsampling, global average
///   pooling, a linear layer to 10 classes.
/// - `plain-1d`: the same on 1-D inputs `(1, 40)` (MNIST-1D's length), kernel 3.
/// - `resnet20`, `resnet56`: the CIFAR ResNets (option A) on `(1, 28, 28)` (MNIST-sized).
///
/// Every model is trained with `SGDConfig()` (PyTorch's SGD, lr 0.1, momentum 0.9, weight
/// decay 5e-4 on conv/linear weights) and softmax cross-entropy.
public struct TrainBenchModel: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The CLI name.
    public let name: String
    /// Per-sample input shape `(C, L)` or `(C, H, W)`.
    public let sampleShape: [Int]
    public let classes: Int
    /// The model for a norm spec (`nil`: no normalization).
    let make: @Sendable (NormSpec?) -> ModelSpec

    public var description: String { name }

    public static func == (a: Self, b: Self) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    public static let plain2D = TrainBenchModel(name: "plain-2d", sampleShape: [1, 8, 8], classes: 10) { norm in
        ModelSpec(inputShape: [1, 8, 8], classes: 10, depth: 3, width: 32, kernel: 3, norm: norm, downsample: .none)
    }

    public static let plain1D = TrainBenchModel(name: "plain-1d", sampleShape: [1, 40], classes: 10) { norm in
        ModelSpec(inputShape: [1, 40], classes: 10, depth: 3, width: 32, kernel: 3, norm: norm, downsample: .none)
    }

    /// ResNet-20 (He et al. 2016, §4.2; option-A shortcuts, widths 16/32/64) on `(1, 28, 28)`.
    public static let resNet20 = TrainBenchModel(name: "resnet20", sampleShape: [1, 28, 28], classes: 10) { norm in
        ModelSpec.resNet(inputShape: [1, 28, 28], classes: 10, depth: 20, norm: norm)
    }

    /// ResNet-56, the same family with 9 blocks per stage.
    public static let resNet56 = TrainBenchModel(name: "resnet56", sampleShape: [1, 28, 28], classes: 10) { norm in
        ModelSpec.resNet(inputShape: [1, 28, 28], classes: 10, depth: 56, norm: norm)
    }

    /// Every model the bench knows, in table order.
    public static let all: [TrainBenchModel] = [plain2D, plain1D, resNet20, resNet56]

    /// The model called `name` (case-insensitive).
    public static func named(_ name: String) throws -> TrainBenchModel {
        guard let m = all.first(where: { $0.name == name.lowercased() }) else {
            throw BenchError("unknown model '\(name)' (known: \(all.map(\.name).joined(separator: ", ")))")
        }
        return m
    }

    /// The built, initialized network (`seed` drives the initial weights).
    public func build(norm: NormSpec?, registry: NormRegistry, seed: UInt64) throws -> Model {
        try Model(spec: make(norm), registry: registry, seed: seed)
    }
}
