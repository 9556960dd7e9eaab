import Foundation

/// The same model timed in another framework.
public struct FrameworkTiming: Sendable, Codable, Equatable {
    public var framework: String
    /// Milliseconds per step (nil when the framework could not run it).
    public var timing: TimingSummary?
    public var error: String?

    public var stepsPerSecond: Double? { timing.map { 1e3 / $0.median } }

    enum CodingKeys: String, CodingKey { case framework, timing, error }
}

/// One timed configuration: model × norm × batch size × threads.
public struct TrainBenchRecord: Sendable, Codable, Equatable {
    public var model: String
    public var norm: String
    public var batch: Int
    public var threads: Int
    /// Milliseconds per training step (forward, loss, backward, SGD update).
    public var timing: TimingSummary
    /// Milliseconds per step by layer kind (from separately timed steps with a clock around
    /// every layer call), when the breakdown was asked for.
    public var breakdown: [String: Double]?
    /// `bit-identical` when two runs of the same steps from the same seed gave the same
    /// losses, parameters and buffers bit for bit; `DIFFERS` otherwise.
    public var check: String
    public var frameworks: [FrameworkTiming]

    public var stepsPerSecond: Double { 1e3 / timing.median }
    public var imagesPerSecond: Double { Double(batch) * stepsPerSecond }

    /// normlab's steps/s over the framework's (above 1: normlab is faster).
    public func ratio(to framework: String) -> Double? {
        guard let other = frameworks.first(where: { $0.framework == framework })?.stepsPerSecond else { return nil }
        return stepsPerSecond / other
    }

    enum CodingKeys: String, CodingKey {
        case model, norm, batch, threads, timing, breakdown, check, frameworks
        case stepsPerSecond = "steps_per_second", imagesPerSecond = "images_per_second"
    }

    public init(model: String, norm: String, batch: Int, threads: Int, timing: TimingSummary,
                breakdown: [String: Double]?, check: String, frameworks: [FrameworkTiming]) {
        self.model = model; self.norm = norm; self.batch = batch; self.threads = threads
        self.timing = timing; self.breakdown = breakdown; self.check = check; self.frameworks = frameworks
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        norm = try c.decode(String.self, forKey: .norm)
        batch = try c.decode(Int.self, forKey: .batch)
        threads = try c.decode(Int.self, forKey: .threads)
        timing = try c.decode(TimingSummary.self, forKey: .timing)
        breakdown = try c.decodeIfPresent([String: Double].self, forKey: .breakdown)
        check = try c.decode(String.self, forKey: .check)
        frameworks = try c.decode([FrameworkTiming].self, forKey: .frameworks)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(norm, forKey: .norm)
        try c.encode(batch, forKey: .batch)
        try c.encode(threads, forKey: .threads)
        try c.encode(timing, forKey: .timing)
        try c.encode(stepsPerSecond, forKey: .stepsPerSecond)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
        try c.encodeIfPresent(breakdown, forKey: .breakdown)
        try c.encode(check, forKey: .check)
        try c.encode(frameworks, forKey: .frameworks)
    }
}
