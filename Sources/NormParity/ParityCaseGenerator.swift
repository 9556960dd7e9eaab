import NormCore

/// Generates seeded parity cases for any registered method from its descriptor alone: every
/// rank it supports in train and eval mode, multi-step trajectories (running statistics are
/// compared after every step), every declared edge value of every option (``OptionSpec/samples``,
/// every value of bool and choice options), large-mean inputs, and random variants.
///
/// The generator never asks for a method by name. Shapes are drawn so that declared
/// ``NormConstraint``s hold (channels made a multiple of a `dividesChannels` option, the batch
/// of a `dividesBatch` option) and each statistic covers at least two values
/// (``NormDescriptor/reduction``). Options pinned by the caller (`parity --set`) hold in every
/// case; a required option without a default is drawn among the channel count's divisors when
/// it must divide it, from its samples otherwise. Parameters and running statistics are
/// perturbed away from their initial values (the layer is built once to learn their shapes).
public struct ParityCaseGenerator {
    public let descriptor: NormDescriptor
    /// Options every case uses (`parity --set KEY=VALUE`).
    public let pinned: [String: OptionValue]
    private var rng: SeededGenerator
    /// Builds a layer for the options and input shape (to learn its parameters and buffers).
    public typealias LayerFactory = ([String: OptionValue], [Int]) throws -> any Normalization
    private let makeLayer: LayerFactory

    /// The generator for a registered method, building probe layers through `registry`.
    public init(for descriptor: NormDescriptor, in registry: NormRegistry, seed: UInt64, pinned: [String: OptionValue] = [:]) {
        self.init(descriptor: descriptor, seed: seed, pinned: pinned) { options, xShape in
            try registry.make(NormSpec(descriptor.name, options: options),
                              shape: FeatureShape(channels: xShape[1], spatial: Array(xShape.dropFirst(2))))
        }
    }

    public init(descriptor: NormDescriptor, seed: UInt64, pinned: [String: OptionValue] = [:], makeLayer: @escaping LayerFactory) {
        self.descriptor = descriptor
        self.pinned = pinned
        self.makeLayer = makeLayer
        // A per-method stream, so selecting methods does not change another method's cases.
        var h: UInt64 = 1469598103934665603
        for b in descriptor.name.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        rng = SeededGenerator(seed: seed ^ h)
    }

    /// `count` cases (the edge cases first, then random variants).
    public mutating func cases(count: Int) -> [ParityCase] {
        var out = edgeCases()
        var i = 0
        while out.count < count {
            out.append(randomCase(index: i))
            i += 1
        }
        return Array(out.prefix(max(count, 1)))
    }

    // MARK: - Cases

    private var ranks: [Int] { Array(descriptor.ranks) }
    private var mainRank: Int { ranks.contains(4) ? 4 : ranks.last! }

    private mutating func edgeCases() -> [ParityCase] {
        var out: [ParityCase] = []
        let trajectory: [Mode] = [.train, .train, .train, .eval]
        for rank in ranks {
            out.append(make("rank\(rank)", rank: rank, options: [:], modes: [.train]))
            out.append(make("rank\(rank)", rank: rank, options: [:], modes: [.eval]))
            out.append(make("trajectory rank\(rank)", rank: rank, options: [:], modes: trajectory))
        }
        out.append(make("mean>>std", rank: mainRank, options: [:], modes: [.train, .train, .eval], mean: 1000, std: 0.5))
        if descriptor.reduction == nil {
            // No statistic needs two values (no centering): 1x1 maps are valid inputs.
            for rank in ranks where rank > 2 {
                out.append(make("1x1 spatial", rank: rank, options: [:], modes: [.train, .eval], spatialOne: true))
            }
        }
        for spec in descriptor.options where pinned[spec.name] == nil {
            for value in spec.parityValues where value != spec.defaultValue {
                out.append(make("\(spec.name)=\(value)", rank: mainRank, options: [spec.name: value], modes: [.train, .train, .eval]))
            }
        }
        return out
    }

    private mutating func randomCase(index: Int) -> ParityCase {
        let rank = ranks[rng.nextInt(in: 0...(ranks.count - 1))]
        var opts: [String: OptionValue] = [:]
        for spec in descriptor.options where pinned[spec.name] == nil {
            let values = spec.parityValues
            guard !values.isEmpty, rng.nextUniform() < 0.35 else { continue }
            opts[spec.name] = values[rng.nextInt(in: 0...(values.count - 1))]
        }
        let lengths = [1, 2, 3, 4]
        let modes: [Mode] = (0..<lengths[rng.nextInt(in: 0...3)]).map { _ in rng.nextUniform() < 0.7 ? .train : .eval }
        return make("random#\(index) rank\(rank)", rank: rank, options: opts, modes: modes,
                    mean: rng.nextUniform() * 4 - 2, std: 0.5 + rng.nextUniform() * 2)
    }

    // MARK: - Building one case

    private mutating func make(_ name: String, rank: Int, options: [String: OptionValue], modes: [Mode],
                               mean: Double = 0, std: Double = 1, spatialOne: Bool = false) -> ParityCase {
        var opts = options.merging(pinned) { _, p in p }
        fitOptionRules(&opts)
        var s = shape(rank: rank, spatialOne: spatialOne)
        fillRequired(&opts, shape: s)
        fitConstraints(&s, options: opts)
        let (params, bufs) = state(options: opts, shape: s)
        let text = opts.keys.sorted().map { "\($0)=\(opts[$0]!)" }.joined(separator: " ")
        let label = "\(name) \(s.shapeText) \(modes.map(\.rawValue).joined(separator: "+"))" + (text.isEmpty ? "" : " \(text)")
        return ParityCase(name: label, method: descriptor.name, options: opts, parameters: params, buffers: bufs,
                          steps: modes.map { ParityStep(input: normal(s, mean: mean, std: std), mode: $0, gradOutput: normal(s)) })
    }

    private mutating func shape(rank: Int, spatialOne: Bool = false) -> [Int] {
        var s = [rng.nextInt(in: 2...4), [2, 3, 4, 6][rng.nextInt(in: 0...3)]]
        for _ in 0..<(rank - 2) { s.append(spatialOne ? 1 : rng.nextInt(in: 2...4)) }
        return s
    }

    /// Required options without a default: a divisor of the channels when they must divide
    /// them (leaving ≥ 2 values per statistic), else the first declared sample.
    private mutating func fillRequired(_ opts: inout [String: OptionValue], shape: [Int]) {
        for spec in descriptor.options where spec.defaultValue == nil && opts[spec.name] == nil {
            if descriptor.constraints.contains(.dividesChannels(option: spec.name)) {
                let c = shape[1], spatial = shape.dropFirst(2).reduce(1, *)
                let divisors = (1...c).filter { c % $0 == 0 && (c / $0) * spatial > 1 }
                opts[spec.name] = .integer(divisors.isEmpty ? 1 : divisors[rng.nextInt(in: 0...(divisors.count - 1))])
            } else if let first = spec.samples.first {
                opts[spec.name] = first
            }
        }
    }

    /// Adjusts drawn (never pinned) options to the declared rules among options: the option a
    /// set option needs, and one of two exclusive options dropped.
    private func fitOptionRules(_ opts: inout [String: OptionValue]) {
        for constraint in descriptor.constraints {
            switch constraint {
            case let .requires(o, v) where pinned[o] == nil:
                if opts[o] != nil { opts[o] = v }
            case let .setRequires(o, other, v) where opts[o] != nil && pinned[other] == nil:
                opts[other] = v
            case let .exclusive(a, b) where opts[a] != nil && opts[b] != nil:
                if pinned[b] == nil { opts[b] = nil } else if pinned[a] == nil { opts[a] = nil }
            default: break
            }
        }
    }

    /// Makes channels and batch multiples of the options that must divide them, and grows the
    /// batch until each statistic covers at least two values (where the method declares its axes).
    private func fitConstraints(_ s: inout [Int], options given: [String: OptionValue]) {
        var options = given
        for o in descriptor.options where options[o.name] == nil { options[o.name] = o.defaultValue }
        for constraint in descriptor.constraints {
            switch constraint {
            case let .dividesChannels(o):
                if case let .integer(k)? = options[o], k > 0, s[1] % k != 0 { s[1] = k * 2 }
            case let .dividesBatch(o):
                if case let .integer(k)? = options[o], k > 0, s[0] % k != 0 { s[0] = k * 2 }
            case .requires, .setRequires, .exclusive: break
            }
        }
        guard let reduction = descriptor.reduction else { return }
        if s.count > 2 && s.dropFirst(2).allSatisfy({ $0 == 1 }) { return }   // a deliberate 1x1 case
        if let n = reduction.valuesPerReduction(shape: s, options: options), n < 2, s.count > 2 {
            for i in 2..<s.count { s[i] = max(s[i], 2) }
        }
    }

    /// Parameters and buffers perturbed away from the layer's initial values: parameters by
    /// N(0, 0.5), running means N(0, 0.5), running variances U(0.5, 2); other buffers as built.
    private mutating func state(options: [String: OptionValue], shape: [Int]) -> ([String: Tensor], [String: Tensor]) {
        guard let layer = try? makeLayer(options, shape) else { return ([:], [:]) }
        var params: [String: Tensor] = [:]
        for p in layer.parameters.sorted(by: { $0.name < $1.name }) {
            let noise = normal(p.value.shape, std: 0.5)
            params[p.name] = Tensor(shape: p.value.shape, scalars: zip(p.value.scalars, noise.scalars).map { $0 + $1 })
        }
        var bufs: [String: Tensor] = [:]
        if let stats = layer.trackedStatistics?.evalStatistics {
            let c = stats.mean.value.shape
            bufs[stats.mean.name] = normal(c, std: 0.5)
            bufs[stats.variance.name] = Tensor.randomUniform(c, low: 0.5, high: 2, using: &rng)
        } else if !(layer is any BatchStatisticsReporting) {
            for b in layer.buffers { bufs[b.name] = b.value }
        }
        return (params, bufs)
    }

    private mutating func normal(_ shape: [Int], mean: Double = 0, std: Double = 1) -> Tensor {
        Tensor.randomNormal(shape, mean: mean, std: std, using: &rng)
    }
}
