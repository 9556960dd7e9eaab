/// A float32 SIMD width that a kernel is written for once: ``RowKernels``' backward sums run
/// the same code in 4 lanes for short chunks and in 8 for the others.
protocol FloatLanes: SIMD where Scalar == Float {
    /// The sum of the lanes, in the fixed order of ``Reductions/hsum(_:)``.
    var laneSum: Float { get }
}

extension SIMD4: FloatLanes where Scalar == Float {
    @inline(__always) var laneSum: Float { Reductions.hsum(self) }
}

extension SIMD8: FloatLanes where Scalar == Float {
    @inline(__always) var laneSum: Float { Reductions.hsum(self) }
}
