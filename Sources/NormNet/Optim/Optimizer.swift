import NormCore

/// A first-order optimizer the ``Trainer`` drives: after each backward pass, one `step` with
/// the scheduled learning rate updates every parameter that requires a gradient and has one.
public protocol Optimizer: AnyObject {
    /// One update with learning rate `learningRate` (the configured base rate when nil).
    func step(learningRate: Double?)
}

extension SGD: Optimizer {}

/// Which optimizer a run uses, with its settings: what the recipe and the CLI
/// (`--optimizer sgd|adam|adamw`) and specs (`optimizer.name`) choose between.
public enum OptimizerConfig: Sendable, Equatable {
    /// `torch.optim.SGD` (``SGD``).
    case sgd(SGDConfig)
    /// `torch.optim.Adam` or `torch.optim.AdamW` (``Adam``; ``AdamConfig/decoupledWeightDecay`` tells which).
    case adam(AdamConfig)

    /// The base learning rate the schedule scales.
    public var learningRate: Double {
        get {
            switch self {
            case let .sgd(c): return c.learningRate
            case let .adam(c): return c.learningRate
            }
        }
        set {
            switch self {
            case var .sgd(c): c.learningRate = newValue; self = .sgd(c)
            case var .adam(c): c.learningRate = newValue; self = .adam(c)
            }
        }
    }

    /// The weight-decay coefficient (L2 for SGD and Adam, decoupled for AdamW).
    public var weightDecay: Double {
        get {
            switch self {
            case let .sgd(c): return c.weightDecay
            case let .adam(c): return c.weightDecay
            }
        }
        set {
            switch self {
            case var .sgd(c): c.weightDecay = newValue; self = .sgd(c)
            case var .adam(c): c.weightDecay = newValue; self = .adam(c)
            }
        }
    }

    /// `sgd`, `adam` or `adamw`.
    public var name: String {
        switch self {
        case .sgd: return OptimizerName.sgd.rawValue
        case let .adam(c): return (c.decoupledWeightDecay ? OptimizerName.adamw : OptimizerName.adam).rawValue
        }
    }

    public func validate() throws {
        switch self {
        case let .sgd(c): try c.validate()
        case let .adam(c): try c.validate()
        }
    }

    /// The optimizer over `parameters` (each with whether weight decay applies to it).
    public func makeOptimizer(parameters: [(parameter: Parameter, decays: Bool)]) throws -> Optimizer {
        switch self {
        case let .sgd(c): return try SGD(c, parameters: parameters)
        case let .adam(c): return try Adam(c, parameters: parameters)
        }
    }

    /// The optimizer for every parameter of `model` (decay per ``Model/namedParameters``).
    public func makeOptimizer(for model: Model) throws -> Optimizer {
        try makeOptimizer(parameters: model.namedParameters.map { ($0.parameter, $0.decays) })
    }
}

/// The optimizer names of the CLI and specs.
public enum OptimizerName: String, Sendable, CaseIterable {
    case sgd
    case adam
    case adamw

    /// The optimizer with PyTorch's defaults for this name, at learning rate `learningRate`
    /// and weight decay `weightDecay` (SGD keeps `sgd`'s momentum and Nesterov settings).
    public func config(learningRate: Double, weightDecay: Double, sgd: SGDConfig = SGDConfig()) -> OptimizerConfig {
        switch self {
        case .sgd:
            var c = sgd
            c.learningRate = learningRate
            c.weightDecay = weightDecay
            return .sgd(c)
        case .adam:
            return .adam(AdamConfig(learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: false))
        case .adamw:
            return .adam(AdamConfig(learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: true))
        }
    }
}
