import Foundation
import NormCore

/// `1 / (1 + e^(−x))`, backward `g · y · (1 − y)`.
public final class Sigmoid: ElementwiseActivation {
    public init() { super.init(name: "sigmoid", saves: .output) }

    override func activate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        VectorKernels.chunked(count) { lo, hi in
            for i in lo..<hi {
                let v = x[i]
                // Stable on both sides.
                if v >= 0 { y[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); y[i] = e / (1 + e) }
            }
        }
    }

    override func differentiate(saved y: UnsafePointer<Float>, gradOutput g: UnsafePointer<Float>,
                                gradInput gx: UnsafeMutablePointer<Float>, count: Int) {
        VectorKernels.chunked(count) { lo, hi in
            for i in lo..<hi { gx[i] = g[i] * y[i] * (1 - y[i]) }
        }
    }
}
