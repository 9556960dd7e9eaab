/// A rule a method's options and input shape must satisfy, declared in its descriptor so
/// that the parity case generator and the spec validator know it without knowing the method.
public enum NormConstraint: Sendable, Equatable, CustomStringConvertible {
    /// The integer option must divide the channel count (GroupNorm's `num_groups`).
    case dividesChannels(option: String)
    /// The integer option must divide the batch size (Ghost BN's `virtual_batch_size`).
    case dividesBatch(option: String)
    /// The option must have this value (e.g. BRN needs `track_running_stats=true`).
    case requires(option: String, value: OptionValue)
    /// Setting `option` explicitly needs `other` to have `value` (momentum needs tracking).
    case setRequires(option: String, other: String, value: OptionValue)
    /// At most one of the two options may be set explicitly (momentum or keras_decay).
    case exclusive(String, String)

    public var description: String {
        switch self {
        case let .dividesChannels(o): return "\(o) divides the channel count"
        case let .dividesBatch(o): return "\(o) divides the batch size"
        case let .requires(o, v): return "\(o) must be \(v)"
        case let .setRequires(o, other, v): return "setting \(o) needs \(other)=\(v)"
        case let .exclusive(a, b): return "set \(a) or \(b), not both"
        }
    }

    /// Why `options` (`explicit`: the ones the user set) and an input of `shape` `(N, C, ...)`
    /// break this rule, or nil. A batch size of 0 in `shape` means "unknown": batch rules are
    /// then not checked.
    public func violation(options: [String: OptionValue], explicit: Set<String> = [], shape: [Int]) -> String? {
        switch self {
        case let .dividesChannels(o):
            guard case let .integer(k)? = options[o], shape.count > 1, k > 0 else { return nil }
            return shape[1] % k == 0 ? nil : "\(shape[1]) channels are not divisible by \(o)=\(k)"
        case let .dividesBatch(o):
            guard case let .integer(k)? = options[o], let n = shape.first, n > 0, k > 0 else { return nil }
            return n % k == 0 ? nil : "a batch of \(n) is not divisible by \(o)=\(k)"
        case let .requires(o, v):
            guard let given = options[o] else { return nil }
            return given == v ? nil : "\(o)=\(given) is not supported (needs \(v))"
        case let .setRequires(o, other, v):
            guard explicit.contains(o), let given = options[other], given != v else { return nil }
            return "\(o) is set but \(other)=\(given) (needs \(v))"
        case let .exclusive(a, b):
            return explicit.contains(a) && explicit.contains(b) ? "set \(a) or \(b), not both" : nil
        }
    }
}

/// The axes a method takes each mean/variance over, for an input `(N, C, spatial...)`.
public enum ReductionAxes: Sendable, Equatable {
    /// Per channel over the batch and spatial axes (BatchNorm).
    case batchAndSpatial
    /// Per channel over sub-batches of the integer option's size and the spatial axes (Ghost BN).
    case virtualBatchAndSpatial(option: String)
    /// Per sample and channel over the spatial axes (InstanceNorm, FRN).
    case spatial
    /// Per sample over channel groups of the integer option's count and the spatial axes (GroupNorm).
    case channelGroupsAndSpatial(groupsOption: String)
    /// Per sample over channels and spatial axes (LayerNorm).
    case channelsAndSpatial

    /// Values in one reduction for an input of `shape` under `options` (nil when an option is missing).
    public func valuesPerReduction(shape: [Int], options: [String: OptionValue]) -> Int? {
        guard shape.count >= 2 else { return nil }
        let spatial = shape.dropFirst(2).reduce(1, *)
        switch self {
        case .batchAndSpatial: return shape[0] * spatial
        case let .virtualBatchAndSpatial(o):
            guard case let .integer(v)? = options[o] else { return nil }
            return min(v, shape[0]) * spatial
        case .spatial: return spatial
        case let .channelGroupsAndSpatial(o):
            guard case let .integer(g)? = options[o], g > 0 else { return nil }
            return shape[1] / g * spatial
        case .channelsAndSpatial: return shape[1] * spatial
        }
    }
}

extension NormDescriptor {
    /// The first declared rule that `options` (defaults filled in by the caller or not) and
    /// `shape` break, as a sentence naming the option; nil when all hold.
    public func constraintViolation(options: [String: OptionValue], shape: [Int]) -> String? {
        var resolved = options
        for o in self.options where resolved[o.name] == nil { resolved[o.name] = o.defaultValue }
        let explicit = Set(options.keys)
        for c in constraints { if let v = c.violation(options: resolved, explicit: explicit, shape: shape) { return v } }
        if let reduction, let n = reduction.valuesPerReduction(shape: shape, options: resolved), n < 2 {
            return "each statistic would be taken over \(n) value (a single-value reduction)"
        }
        return nil
    }
}
