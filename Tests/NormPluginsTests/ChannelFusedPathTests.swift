import Foundation
import Testing
import NormCore
@testable import NormPlugins
import NormTestSupport

/// BatchNorm / BatchRenorm train passes fused per channel (``ChannelPlaneKernels``, issue #15)
/// against the separate statistics and normalization passes they replace: outputs, dL/dx,
/// parameter gradients and running statistics bit for bit over several steps (BRN with limits
/// that clip), at 1 and 2 threads, and bit-identical across thread counts.
@Suite("BatchNorm passes fused per channel", .serialized)
struct ChannelFusedPathTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let method: String, shape: [Int], affine: Bool
        var testDescription: String { "\(method) \(shape) affine \(affine)" }
    }

    static let cases: [Case] = [
        Case(method: "bn", shape: [4, 6, 5, 5], affine: true),
        Case(method: "bn", shape: [3, 5, 17], affine: false),
        Case(method: "bn", shape: [16, 8, 20, 20], affine: true),     // above the serial threshold: channels split
        Case(method: "brn", shape: [4, 6, 5, 5], affine: true),
        Case(method: "brn", shape: [16, 8, 20, 20], affine: true),
        Case(method: "brn", shape: [2, 3, 3, 43], affine: false),     // scalar tails, runs shorter than a block
    ]

    /// Everything one training run produces, copied out of the layer.
    private struct Trace {
        var tensors: [(String, Tensor)] = []
    }

    private func run(_ c: Case, fused: Bool, threads: Int) throws -> Trace {
        let saved = (PlaneNormalizer.fusesChannelPasses, Parallel.threadCount)
        PlaneNormalizer.fusesChannelPasses = fused
        Parallel.threadCount = threads
        defer { PlaneNormalizer.fusesChannelPasses = saved.0; Parallel.threadCount = saved.1 }
        var rng = TestRNG(seed: UInt64(c.shape.reduce(1, *)))
        var options: [String: OptionValue] = ["momentum": .real(0.3), "affine": .bool(c.affine)]
        if c.method == "brn" { options["r_max"] = .real(1.2); options["d_max"] = .real(0.3) }
        let layer = try makeNorm(c.method, options, input: c.shape)
        let ch = c.shape[1]
        if c.affine {
            try layer.requireParameter("weight").value = rng.uniformTensor([ch], -1.5, 1.5)
            try layer.requireParameter("bias").value = rng.uniformTensor([ch], -0.5, 0.5)
        }
        var trace = Trace()
        for step in 0..<3 {
            // Drifting batches (mean far from the running mean, growing spread) make BRN clip r and d.
            let x = rng.normalTensor(c.shape, mean: 3 * Double(step) - 1, std: 0.5 + Double(step))
            let g = rng.normalTensor(c.shape)
            trace.tensors.append(("step \(step) y", try layer.forward(x, mode: .train).copy))
            trace.tensors.append(("step \(step) dL/dx", try layer.backward(g).copy))
            for p in layer.parameters { if let grad = p.gradient { trace.tensors.append(("step \(step) d\(p.name)", grad.copy)) } }
            for b in layer.buffers { trace.tensors.append(("step \(step) \(b.name)", b.value.copy)) }
        }
        trace.tensors.append(("eval y", try layer.forward(rng.normalTensor(c.shape), mode: .eval).copy))
        return trace
    }

    private func expectSame(_ a: Trace, _ b: Trace, _ what: String) {
        #expect(a.tensors.count == b.tensors.count && a.tensors.count >= 13)
        for (u, v) in zip(a.tensors, b.tensors) { expectBitIdentical(u.1, v.1, "\(what): \(u.0)") }
    }

    @Test("Fused per channel = separate passes, bit for bit, 1 and 2 threads", arguments: cases)
    func fusedMatchesSeparatePasses(_ c: Case) throws {
        for threads in [1, 2] {
            expectSame(try run(c, fused: true, threads: threads), try run(c, fused: false, threads: threads), "\(threads) threads")
        }
        expectSame(try run(c, fused: true, threads: 1), try run(c, fused: true, threads: 2), "1 vs 2 threads")
    }

    @Test("BRN's scalar correction equals the per-channel formula, clipped at both ends")
    func renormCorrection() {
        let limits = RenormLimits(rMax: 1.5, dMax: 0.5)
        // σ = √(1 + 0) = 1: r = √(variance), d = mean − running mean, before clipping.
        let inside = limits.correction(mean: 0.25, variance: 1.21, runningMean: 0, runningVariance: 1, eps: 0)
        #expect(inside.r == 1.21.squareRoot() && inside.d == 0.25)
        let high = limits.correction(mean: 4, variance: 9, runningMean: 0, runningVariance: 1, eps: 0)
        #expect(high.r == 1.5 && high.d == 0.5)
        let low = limits.correction(mean: -4, variance: 0.01, runningMean: 0, runningVariance: 1, eps: 0)
        #expect(low.r == 1 / 1.5 && low.d == -0.5)
    }
}
