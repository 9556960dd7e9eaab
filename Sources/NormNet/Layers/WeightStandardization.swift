import Foundation
import NormCore

/// Weight Standardization (Qiao et al. 2019, "Micro-Batch Training with Batch-Channel
/// Normalization and Weight Standardization", eq. 5): a convolution computes with
///
/// ```
/// Ŵ[o, ·] = (W[o, ·] − μ_o) / sqrt(σ²_o + ε)
/// ```
///
/// where μ_o and σ²_o are the mean and the biased (1/n) variance of output channel `o`'s
/// `n = C_in · k…` weights. The parameter stays `W`; the gradient reaching it is the exact
/// backward through the standardization,
///
/// ```
/// dW[o, i] = (dŴ[o, i] − mean_i(dŴ[o, ·]) − Ŵ[o, i] · mean_i(dŴ[o, ·] · Ŵ[o, ·])) / sqrt(σ²_o + ε)
/// ```
///
/// ε defaults to 1e-6 inside the square root, as timm's `StdConv2d` (which standardizes with
/// `F.batch_norm(..., eps=1e-6)`, biased variance), the implementation used with GN for
/// BiT-style ResNets. (Qiao et al.'s own code divides by the unbiased standard deviation
/// plus 1e-5; the two differ by O(1/n) in scale, which a following norm layer removes.)
/// Statistics are accumulated in float64.
public struct WeightStandardization: Sendable, Equatable {
    public var epsilon: Double

    public static let defaultEpsilon = 1e-6

    public init(epsilon: Double = WeightStandardization.defaultEpsilon) throws {
        guard epsilon.isFinite, epsilon > 0 else {
            throw NetError("weight standardization: epsilon must be positive, got \(epsilon)")
        }
        self.epsilon = epsilon
    }

    /// A standardized weight with what its backward needs.
    public struct Standardized: Sendable {
        /// Ŵ, the shape of the weight.
        public let weight: Tensor
        /// `1 / sqrt(σ²_o + ε)` per output channel.
        public let inverseScale: [Double]
    }

    /// Ŵ for a weight `(C_out, …)` (rows = output channels).
    public func standardize(_ w: Tensor) -> Standardized {
        let rows = w.shape[0], n = w.count / rows
        var inverse = [Double](repeating: 0, count: rows)
        let out = Tensor(shape: w.shape) { ob in
            w.withUnsafeBufferPointer { wb in
                for o in 0..<rows {
                    let row = wb.baseAddress! + o * n
                    var mean = 0.0
                    for i in 0..<n { mean += Double(row[i]) }
                    mean /= Double(n)
                    var variance = 0.0
                    for i in 0..<n { let d = Double(row[i]) - mean; variance += d * d }
                    variance /= Double(n)
                    let r = 1 / (variance + epsilon).squareRoot()
                    inverse[o] = r
                    for i in 0..<n { ob[o * n + i] = Float((Double(row[i]) - mean) * r) }
                }
            }
        }
        return Standardized(weight: out, inverseScale: inverse)
    }
}

extension WeightStandardization.Standardized {
    /// dL/dW from dL/dŴ (the gradient the convolution computed for this Ŵ).
    public func weightGradient(_ gradStandardized: Tensor) -> Tensor {
        let s = self
        let rows = s.weight.shape[0], n = s.weight.count / rows
        return Tensor(shape: s.weight.shape) { out in
            gradStandardized.withUnsafeBufferPointer { gb in s.weight.withUnsafeBufferPointer { wb in
                for o in 0..<rows {
                    let g = gb.baseAddress! + o * n, w = wb.baseAddress! + o * n
                    var meanG = 0.0, meanGW = 0.0
                    for i in 0..<n {
                        meanG += Double(g[i])
                        meanGW += Double(g[i]) * Double(w[i])
                    }
                    meanG /= Double(n)
                    meanGW /= Double(n)
                    let r = s.inverseScale[o]
                    for i in 0..<n { out[o * n + i] = Float((Double(g[i]) - meanG - Double(w[i]) * meanGW) * r) }
                }
            }}
        }
    }
}
