/// A float32 SIMD width that a kernel is written for once: ``RowKernels``' backward sums and
/// ``ThresholdKernels``' plane sums run the same code in 4 lanes for short runs and in 8 for
/// the others.
protocol FloatLanes: SIMD where Scalar == Float {
    /// The sum of the lanes, in the fixed order of ``Reductions/hsum(_:)``.
    var laneSum: Float { get }
    /// `self` where `x·s + t ≥ f`, 0 elsewhere (the TLU's pass mask). A requirement, so each
    /// width compares and selects with its own vector instructions: the generic mask
    /// operations of `SIMD` are not specialized into them.
    func passing(_ x: Self, _ s: Self, _ t: Self, _ f: Self) -> Self
}

extension SIMD4: FloatLanes where Scalar == Float {
    @inline(__always) var laneSum: Float { Reductions.hsum(self) }
    @inline(__always) func passing(_ x: Self, _ s: Self, _ t: Self, _ f: Self) -> Self {
        Self(repeating: 0).replacing(with: self, where: (x * s + t) .>= f)
    }
}

extension SIMD8: FloatLanes where Scalar == Float {
    @inline(__always) var laneSum: Float { Reductions.hsum(self) }
    @inline(__always) func passing(_ x: Self, _ s: Self, _ t: Self, _ f: Self) -> Self {
        Self(repeating: 0).replacing(with: self, where: (x * s + t) .>= f)
    }
}
