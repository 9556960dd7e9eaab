import NormCore

/// Generates seeded parity cases for a method: every rank it supports, train and eval,
/// with and without affine/tracking, non-default parameters and state, edge values, and
/// multi-step trajectories. Built-ins get method-specific edge cases; any other method with
/// a reference gets the generic cases (default options, all ranks, both modes, trajectories).
public struct ParityCaseGenerator {
    public let descriptor: NormDescriptor
    private var rng: SeededGenerator
    /// For methods that are not built-ins: the parameter shapes a layer built with these
    /// options for this input shape has (the generator cannot guess a custom method's names).
    public typealias ParameterShapes = ([String: OptionValue], [Int]) -> [String: [Int]]
    private let parameterShapes: ParameterShapes?

    public init(descriptor: NormDescriptor, seed: UInt64, parameterShapes: ParameterShapes? = nil) {
        self.descriptor = descriptor
        self.parameterShapes = parameterShapes
        // A per-method stream, so selecting methods does not change another method's cases.
        var h: UInt64 = 1469598103934665603
        for b in descriptor.name.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        rng = SeededGenerator(seed: seed ^ h)
    }

    /// `count` cases (at least; the edge cases come first, the rest are random variants).
    public mutating func cases(count: Int) -> [ParityCase] {
        var out = edgeCases()
        var i = 0
        while out.count < count {
            out.append(randomCase(index: i))
            i += 1
        }
        return Array(out.prefix(max(count, 1)))
    }

    // MARK: - Shapes and tensors

    private mutating func shape(rank: Int, channels: Int? = nil, spatialOne: Bool = false) -> [Int] {
        let n = rng.nextInt(in: 2...4)
        let c = channels ?? [2, 3, 4, 6][rng.nextInt(in: 0...3)]
        var s = [n, c]
        for _ in 0..<(rank - 2) { s.append(spatialOne ? 1 : rng.nextInt(in: 2...4)) }
        return s
    }

    private mutating func normal(_ shape: [Int], mean: Double = 0, std: Double = 1) -> Tensor {
        Tensor.randomNormal(shape, mean: mean, std: std, using: &rng)
    }

    private mutating func positive(_ shape: [Int]) -> Tensor {
        Tensor.randomUniform(shape, low: 0.5, high: 2, using: &rng)
    }

    private var isBuiltinBatchLike: Bool { ["batch_norm", "batch_renorm"].contains(descriptor.name) }
    private var hasTracking: Bool { descriptor.option("track_running_stats") != nil }
    /// BatchNorm's `train_statistics` (batch | running).
    private var hasTrainStatistics: Bool { descriptor.option("train_statistics") != nil }

    /// Non-default parameters of the right shapes for the options.
    private static let builtins: Set<String> = ["batch_norm", "batch_renorm", "group_norm", "layer_norm", "instance_norm", "filter_response_norm"]

    private mutating func parameters(for options: [String: OptionValue], xShape: [Int]) -> [String: Tensor] {
        if !Self.builtins.contains(descriptor.name) {
            // Custom method: perturb every parameter it has around 1 (scales) — values O(1).
            var p: [String: Tensor] = [:]
            for (name, shape) in (parameterShapes?(options, xShape) ?? [:]).sorted(by: { $0.key < $1.key }) {
                p[name] = normal(shape, mean: name == "bias" ? 0 : 1, std: 0.5)
            }
            return p
        }
        let c = xShape[1]
        var p: [String: Tensor] = [:]
        let affineDefault: Bool = {
            if case let .bool(b)? = descriptor.option("affine")?.defaultValue { return b }
            return false
        }()
        let affine: Bool = { if case let .bool(b)? = options["affine"] { return b }; return affineDefault }()
        if affine && descriptor.option("affine") != nil {
            let pshape = descriptor.name == "layer_norm" ? Array(xShape.dropFirst()) : [c]
            p["weight"] = normal(pshape, mean: 1, std: 0.5)
            p["bias"] = normal(pshape, std: 0.5)
        }
        if descriptor.name == "filter_response_norm" {
            if options["tlu"] != .bool(false) { p["tau"] = normal([c], std: 0.3) }
            if options["learnable_eps"] == .bool(true) { p["eps"] = Tensor(shape: [1], scalars: [Float(rng.nextUniform() * 0.1 + 1e-3)]) }
        }
        return p
    }

    private mutating func buffers(for options: [String: OptionValue], channels: Int) -> [String: Tensor] {
        guard hasTracking else { return [:] }
        let trackDefault = descriptor.option("track_running_stats")?.defaultValue == .bool(true)
        let track: Bool = { if case let .bool(b)? = options["track_running_stats"] { return b }; return trackDefault }()
        guard track else { return [:] }
        return ["running_mean": normal([channels], std: 0.5), "running_var": positive([channels])]
    }

    private mutating func steps(_ shape: [Int], modes: [Mode], mean: Double = 0, std: Double = 1) -> [ParityStep] {
        modes.map { mode in ParityStep(input: normal(shape, mean: mean, std: std), mode: mode, gradOutput: normal(shape)) }
    }

    private mutating func make(_ name: String, rank: Int, options: [String: OptionValue], modes: [Mode],
                               mean: Double = 0, std: Double = 1, channels: Int? = nil, spatialOne: Bool = false) -> ParityCase {
        var opts = options.filter { descriptor.option($0.key) != nil }
        var s = shape(rank: rank, channels: channels, spatialOne: spatialOne)
        if descriptor.name == "group_norm", opts["num_groups"] == nil {
            let spatial = s.dropFirst(2).reduce(1, *)
            // Only group counts leaving more than one value per group (a single value is an error).
            let divisors = (1...s[1]).filter { s[1] % $0 == 0 && (s[1] / $0) * spatial > 1 }
            opts["num_groups"] = .integer(divisors[rng.nextInt(in: 0...(divisors.count - 1))])
        }
        if descriptor.name == "group_norm", case let .integer(g)? = opts["num_groups"], s[1] % g != 0 { s[1] = g * 2 }
        let params = parameters(for: opts, xShape: s)
        let bufs = buffers(for: opts, channels: s[1])
        let text = opts.keys.sorted().map { "\($0)=\(opts[$0]!)" }.joined(separator: " ")
        let label = "\(name) \(s.shapeText) \(modes.map(\.rawValue).joined(separator: "+"))" + (text.isEmpty ? "" : " \(text)")
        return ParityCase(name: label, method: descriptor.name, options: opts, parameters: params, buffers: bufs,
                          steps: steps(s, modes: modes, mean: mean, std: std))
    }

    private var ranks: [Int] { Array(descriptor.ranks) }

    // MARK: - Cases

    private mutating func edgeCases() -> [ParityCase] {
        var out: [ParityCase] = []
        let trajectory: [Mode] = [.train, .train, .train, .eval]
        for rank in ranks {
            out.append(make("rank\(rank)", rank: rank, options: [:], modes: [.train]))
            out.append(make("rank\(rank)", rank: rank, options: [:], modes: [.eval]))
            out.append(make("trajectory rank\(rank)", rank: rank, options: [:], modes: trajectory))
        }
        let r = ranks.contains(4) ? 4 : ranks.last!
        out.append(make("eps large", rank: r, options: ["eps": .real(1.0)], modes: [.train, .eval]))
        out.append(make("eps tiny", rank: r, options: ["eps": .real(1e-10)], modes: [.train, .eval]))
        out.append(make("mean>>std", rank: r, options: [:], modes: [.train, .train, .eval], mean: 1000, std: 0.5))
        if descriptor.option("affine") != nil {
            out.append(make("no affine", rank: r, options: ["affine": .bool(false)], modes: [.train, .eval]))
            out.append(make("affine", rank: r, options: ["affine": .bool(true)], modes: [.train, .eval]))
        }
        if hasTracking && descriptor.name != "batch_renorm" {
            out.append(make("tracking toggled", rank: r, options: ["track_running_stats": .bool(descriptor.name == "instance_norm")],
                            modes: [.train, .eval]))
        }
        if hasTracking {
            do {
                let track: [String: OptionValue] = descriptor.name == "instance_norm" ? ["track_running_stats": .bool(true)] : [:]
                out.append(make("momentum=none trajectory", rank: r, options: track.merging(["momentum": .none]) { a, _ in a },
                                modes: [.train, .train, .train, .train, .eval]))
                out.append(make("momentum=0.3 trajectory", rank: r, options: track.merging(["momentum": .real(0.3)]) { a, _ in a },
                                modes: [.train, .train, .train, .eval]))
            }
        }
        switch descriptor.name {
        case "batch_renorm":
            out.append(make("clipping active", rank: r, options: ["r_max": .real(1.1), "d_max": .real(0.05)],
                            modes: [.train, .train, .train, .eval], mean: 2, std: 3))
            out.append(make("r_max=1 d_max=0", rank: r, options: ["r_max": .real(1), "d_max": .real(0)], modes: [.train, .eval]))
        case "group_norm":
            out.append(make("one group", rank: r, options: ["num_groups": .integer(1)], modes: [.train]))
            out.append(make("groups=C", rank: r, options: ["num_groups": .integer(4)], modes: [.train], channels: 4))
        case "filter_response_norm":
            for rank in ranks {
                out.append(make("1x1 spatial learnable eps", rank: rank, options: ["learnable_eps": .bool(true)], modes: [.train], spatialOne: true))
            }
            out.append(make("no tlu", rank: r, options: ["tlu": .bool(false)], modes: [.train]))
            out.append(make("learnable eps", rank: r, options: ["learnable_eps": .bool(true)], modes: [.train, .train]))
        case "instance_norm":
            out.append(make("tracked affine", rank: r, options: ["track_running_stats": .bool(true), "affine": .bool(true)],
                            modes: [.train, .train, .eval]))
        default: break
        }
        if isBuiltinBatchLike {
            out.append(make("running_var=biased", rank: r, options: ["running_var": .text("biased")], modes: [.train, .train, .eval]))
        }
        if hasTrainStatistics {
            // BN normalizing with its running statistics in train mode (Ioffe 2017, §2 ablation):
            // trajectories where each step reads the previous step's update, rank 2 (channel-row
            // kernels) and 4, and with the cumulative average.
            let running: [String: OptionValue] = ["train_statistics": .text("running")]
            out.append(make("train_statistics=running trajectory", rank: r, options: running, modes: [.train, .train, .train, .eval]))
            if ranks.contains(2) {
                out.append(make("train_statistics=running rank2", rank: 2, options: running, modes: [.train, .train, .eval]))
            }
            out.append(make("train_statistics=running momentum=none", rank: r, options: running.merging(["momentum": .none]) { a, _ in a },
                            modes: [.train, .train, .train]))
        }
        return out
    }

    private mutating func randomCase(index: Int) -> ParityCase {
        let rank = ranks[rng.nextInt(in: 0...(ranks.count - 1))]
        var opts: [String: OptionValue] = [:]
        if descriptor.option("eps") != nil, rng.nextUniform() < 0.5 { opts["eps"] = .real([1e-3, 0.1, 0.5][rng.nextInt(in: 0...2)]) }
        if descriptor.option("affine") != nil, rng.nextUniform() < 0.3 { opts["affine"] = .bool(rng.nextUniform() < 0.5) }
        if hasTracking {
            let track = descriptor.name == "instance_norm" ? rng.nextUniform() < 0.6 : rng.nextUniform() < 0.85
            if descriptor.name != "batch_renorm" { opts["track_running_stats"] = .bool(track) }
            if track || descriptor.name == "batch_renorm", rng.nextUniform() < 0.5 {
                opts["momentum"] = rng.nextUniform() < 0.3 ? OptionValue.none : .real(rng.nextUniform() * 0.5 + 0.05)
            }
            // train_statistics=running needs tracking; drawn only for methods that have it (BN).
            if hasTrainStatistics, track, rng.nextUniform() < 0.3 { opts["train_statistics"] = .text("running") }
        }
        if descriptor.name == "batch_renorm" {
            opts["r_max"] = .real(1 + rng.nextUniform() * 2)
            opts["d_max"] = .real(rng.nextUniform())
        }
        if descriptor.name == "filter_response_norm" {
            if rng.nextUniform() < 0.3 { opts["tlu"] = .bool(false) }
            if rng.nextUniform() < 0.4 { opts["learnable_eps"] = .bool(true) }
        }
        let lengths = [1, 2, 3, 4]
        let modes: [Mode] = (0..<lengths[rng.nextInt(in: 0...3)]).map { _ in rng.nextUniform() < 0.7 ? .train : .eval }
        return make("random#\(index) rank\(rank)", rank: rank, options: opts, modes: modes,
                    mean: rng.nextUniform() * 4 - 2, std: 0.5 + rng.nextUniform() * 2)
    }
}
