import NormCore

/// How one array compares with its reference.
public struct ArrayComparison: Sendable, Codable, Equatable {
    public var name: String
    public var maxAbsError: Double
    /// `maxAbsError / max(1, max|ref|)`.
    public var relError: Double
    public var passed: Bool
    /// Why it failed (shape, NaN placement), when it did.
    public var problem: String?

    enum CodingKeys: String, CodingKey {
        case name, passed, problem
        case maxAbsError = "max_abs_error", relError = "rel_error"
    }
}

/// The checks run before anything is timed.
public enum Correctness {
    /// Compares `actual` with `reference` the way `normlab parity` does: shapes equal up to
    /// size-1 axes, NaN in the same places, `max|a − r| ≤ tolerance · max(1, max|r|)`.
    public static func compare(_ name: String, _ actual: Tensor, _ reference: Tensor, tolerance: Double) -> ArrayComparison {
        guard actual.shape.squeezed == reference.shape.squeezed, actual.count == reference.count else {
            return ArrayComparison(name: name, maxAbsError: .infinity, relError: .infinity, passed: false,
                                   problem: "shape \(actual.shape.shapeText) vs reference \(reference.shape.shapeText)")
        }
        var maxErr = 0.0, scale = 1.0
        let ok: Bool = actual.withUnsafeBufferPointer { a in
            reference.withUnsafeBufferPointer { r in
                for i in 0..<a.count {
                    let x = Double(a[i]), y = Double(r[i])
                    if x.isNaN != y.isNaN { return false }
                    if x.isNaN { continue }
                    maxErr = max(maxErr, abs(x - y))
                    scale = max(scale, abs(y))
                }
                return true
            }
        }
        guard ok else {
            return ArrayComparison(name: name, maxAbsError: .nan, relError: .infinity, passed: false, problem: "NaN in different places")
        }
        let rel = maxErr / scale
        return ArrayComparison(name: name, maxAbsError: maxErr, relError: rel, passed: rel <= tolerance,
                               problem: rel <= tolerance ? nil : "error \(rel) of magnitude exceeds \(tolerance)")
    }

    /// Compares every array the reference has (`names` restricts, when given) with the
    /// same-named array of `actual`; a missing array fails.
    public static func compareAll(_ actual: [String: Tensor], _ reference: [String: Tensor], tolerance: Double,
                                  prefix: String = "") -> [ArrayComparison] {
        reference.keys.sorted().map { name in
            guard let a = actual[name] else {
                return ArrayComparison(name: prefix + name, maxAbsError: .infinity, relError: .infinity, passed: false,
                                       problem: "missing from the kernel's results")
            }
            return compare(prefix + name, a, reference[name]!, tolerance: tolerance)
        }
    }

    /// Name of the first array of `other` whose bits differ from `base`'s, if any.
    public static func firstBitDifference(_ base: [String: Tensor], _ other: [String: Tensor]) -> String? {
        for name in base.keys.sorted() {
            guard let o = other[name], base[name]!.isBitIdentical(to: o) else { return name }
        }
        return nil
    }
}

/// A method's reference path: arrays by name (`output`, `grad_input`, `grad_<param>`) for
/// one call. The bench uses ``PythonBenchReference`` (normref's float64 references, or a
/// Python plugin's own `reference`); tests inject others.
public protocol BenchReference {
    /// Whether this reference covers `method` (canonical name).
    func covers(_ method: String) -> Bool
    func run(method: String, input: Tensor, mode: Mode, gradOutput: Tensor?,
             parameters: [String: Tensor], buffers: [String: Tensor], options: [String: OptionValue]) throws -> [String: Tensor]
}

/// What the correctness check found for one method and shape.
public struct CheckOutcome: Sendable, Codable, Equatable {
    /// `reference` (compared with the reference path), `threads` (no reference: only
    /// compared across thread counts).
    public var against: String
    public var passed: Bool
    /// Worst relative error against the reference (0 when only thread counts were compared).
    public var maxRelError: Double
    /// Whether every thread count gave bit-identical results.
    public var bitIdenticalAcrossThreads: Bool
    /// The failures, one line each.
    public var failures: [String]

    enum CodingKeys: String, CodingKey {
        case against, passed, failures
        case maxRelError = "max_rel_error", bitIdenticalAcrossThreads = "bit_identical_across_threads"
    }

    /// One-word summary for the table.
    public var label: String {
        guard passed else { return "FAIL" }
        return against == "reference" ? String(format: "ok %.0e", maxRelError) : "ok(thr)"
    }
}
