import NormCore
/// The value range `normlab apply` accepts, and its check that no output overflowed.
///
/// normlab computes in float32 (statistics are accumulated in float32 blocks that are
/// added in float64, see ``Reductions``). A value near float32's limit silently breaks
/// that: one `-3e38` in a BatchNorm channel squares to infinity, so the channel's output
/// becomes 0 and its `running_var` inf. So every finite input value must satisfy
/// `|x| <= 1e17` (``magnitudeLimit``): squared deviations stay below 4e34, and a float32
/// block lane sums at most 128 of them, about 5e36, far from float32's 3.4e38. Infinities
/// and NaNs in an input are passed through (their propagation is the documented result).
///
/// As a backstop, when every input was finite, an output holding an infinity or NaN is an
/// error naming the output, never a silent result.
public struct ApplyValueGuard: Sendable {
    /// The largest magnitude a finite input value may have.
    public static let magnitudeLimit: Float = 1e17

    /// Whether every input admitted so far held only finite values.
    public private(set) var inputsAreFinite = true

    public init() {}

    /// Checks one input array read from `path` and records whether it was finite.
    public mutating func admit(_ tensor: Tensor, path: String) throws(ApplyError) {
        var violation: (index: Int, value: Float)?
        var finite = true
        tensor.withUnsafeBufferPointer { values in
            for (i, v) in values.enumerated() {
                if !v.isFinite { finite = false; continue }
                if abs(v) > Self.magnitudeLimit { violation = (i, v); return }
            }
        }
        if let violation {
            throw .usage("\(path): value \(violation.value) at flat index \(violation.index) exceeds the magnitude limit "
                         + "\(Self.magnitudeLimit) (larger values overflow float32 statistics)")
        }
        if !finite { inputsAreFinite = false }
    }

    /// Refuses a result that holds an infinity or NaN although every input was finite.
    public func check(_ result: ApplyResult) throws(ApplyError) {
        guard inputsAreFinite else { return }
        for (name, tensor) in result.arrays {
            let bad = tensor.withUnsafeBufferPointer { $0.first { !$0.isFinite } }
            if let bad {
                throw .usage("\(name) holds \(bad) although every input is finite: the computation overflowed float32")
            }
        }
    }
}
