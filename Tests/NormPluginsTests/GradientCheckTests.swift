import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// One finite-difference gradient check: a method, its options, an input shape and a mode.
struct GradientCase: Sendable, CustomTestStringConvertible {
    enum Setup: Sendable {
        /// Random running statistics near the usual (mean ≈ 0, var ≈ 1).
        case plain
        /// BRN: running statistics far from the batch's, so r and d are clipped in train mode
        /// (their clipped values are constants, so finite differences see the true derivative).
        case renormClipped
        /// FRN: τ placed in a wide gap of the pre-activations, away from every TLU kink.
        case tauInGap
    }

    let method: String
    let options: [String: OptionValue]
    let shape: [Int]
    let mode: Mode
    let setup: Setup
    /// The parameter names the check must cover (so a silently absent parameter fails).
    let parameters: [String]
    let seed: UInt64

    var testDescription: String {
        let opts = options.keys.sorted().map { "\($0)=\(options[$0]!)" }.joined(separator: ",")
        return "\(method)[\(opts)] \(shape) \(mode)"
    }
}

private let shapesRank2to5: [[Int]] = [[6, 3], [3, 2, 4], [2, 3, 2, 3], [2, 2, 2, 2, 2]]
private let shapesRank3to5: [[Int]] = [[2, 3, 4], [2, 2, 2, 3], [2, 2, 2, 2, 2]]

private func gradientCases() -> [GradientCase] {
    var cases: [GradientCase] = []
    var seed: UInt64 = 100
    func add(_ method: String, _ options: [String: OptionValue], _ shapes: [[Int]], _ modes: [Mode],
             _ setup: GradientCase.Setup = .plain, params: [String]) {
        for shape in shapes {
            for mode in modes {
                seed += 1
                cases.append(GradientCase(method: method, options: options, shape: shape, mode: mode, setup: setup,
                                          parameters: params, seed: seed))
            }
        }
    }
    let wb = ["weight", "bias"]
    // BatchNorm: train (batch statistics), eval (running statistics, linear), eval without
    // tracking (batch statistics in eval too), and without affine.
    add("bn", [:], shapesRank2to5, [.train, .eval], params: wb)
    add("bn", ["track_running_stats": .bool(false)], [[4, 3], [2, 3, 2, 2]], [.eval], params: wb)
    add("bn", ["affine": .bool(false), "eps": .real(1e-3)], [[3, 2, 4]], [.train], params: [])
    // Batch Renormalization: train with r and d both clipped; eval is BN eval.
    add("brn", ["r_max": .real(2), "d_max": .real(1)], shapesRank2to5, [.train], .renormClipped, params: wb)
    add("brn", [:], shapesRank2to5, [.eval], params: wb)
    // GroupNorm: several group counts, including 1 (like LN) and C (like IN).
    // (Groups of 2 values are avoided: there x̂ = ±d/√(d² + eps) is nearly constant, so dL/dx
    // is ~eps/d³ — almost zero and dominated by float32 noise in a finite difference.)
    add("gn", ["num_groups": .integer(2)], [[3, 6], [2, 4, 3], [2, 4, 2, 2], [2, 4, 2, 1, 2]], [.train, .eval], params: wb)
    add("gn", ["num_groups": .integer(3)], [[2, 6, 2, 2]], [.train], params: wb)
    add("gn", ["num_groups": .integer(1)], [[2, 3, 4]], [.train], params: wb)
    add("gn", ["num_groups": .integer(3)], [[2, 3, 2, 2]], [.train], params: wb)
    // LayerNorm: elementwise affine over x.shape[1:].
    add("ln", [:], [[3, 5], [2, 3, 4], [2, 2, 2, 3], [2, 2, 2, 2, 2]], [.train, .eval], params: wb)
    add("ln", ["affine": .bool(false)], [[2, 3, 4]], [.train], params: [])
    // InstanceNorm: batch statistics in both modes without tracking; running statistics in
    // eval with tracking.
    add("in", ["affine": .bool(true)], shapesRank3to5, [.train, .eval], params: wb)
    add("in", [:], [[2, 3, 4]], [.train], params: [])
    add("in", ["affine": .bool(true), "track_running_stats": .bool(true)], shapesRank3to5, [.eval], params: wb)
    // Filter Response Normalization: TLU with τ (kept away from ties), learnable eps of both
    // signs (|eps| is used, so the sign of its gradient matters), and without the TLU.
    add("frn", ["learnable_eps": .bool(true), "eps": .real(0.5)], shapesRank3to5, [.train, .eval], .tauInGap,
        params: ["weight", "bias", "tau", "eps"])
    add("frn", ["learnable_eps": .bool(true), "eps": .real(-0.3), "tlu": .bool(false)], shapesRank3to5, [.train, .eval],
        params: ["weight", "bias", "eps"])
    add("frn", [:], shapesRank3to5, [.train], .tauInGap, params: ["weight", "bias", "tau"])
    add("frn", ["learnable_eps": .bool(true), "eps": .real(0.5)], [[6, 3, 1, 1]], [.train], .tauInGap,
        params: ["weight", "bias", "tau", "eps"])
    return cases
}

@Suite("Finite-difference gradient checks")
struct GradientCheckTests {
    @Test("analytic gradients match central differences of L = Σ gy·y", arguments: gradientCases())
    func gradientsMatchFiniteDifferences(_ gc: GradientCase) throws {
        var rng = TestRNG(seed: gc.seed)
        let layer = try makeNorm(gc.method, gc.options, input: gc.shape)
        #expect(layer.parameters.map(\.name).sorted() == gc.parameters.sorted(), "parameters of \(gc)")

        // O(1) data and parameters; weights of both signs keep every term visible.
        let x = rng.normalTensor(gc.shape, mean: 0.3, std: 1)
        let gy = rng.normalTensor(gc.shape)
        for p in layer.parameters {
            switch p.name {
            case "weight": p.value = Tensor(shape: p.value.shape, doubles: (0..<p.value.count).map { i in
                (i % 3 == 2 ? -1 : 1) * rng.uniform(0.6, 1.4) })
            case "bias": p.value = rng.uniformTensor(p.value.shape, -0.5, 0.5)
            default: break   // tau is placed below; eps keeps its configured value
            }
        }
        if let rm = layer.buffer(named: "running_mean"), let rv = layer.buffer(named: "running_var") {
            switch gc.setup {
            case .renormClipped:
                // sigma = 10 against batch sigma ≈ 1: raw r ≈ 0.1 (clip 1/2); raw d ≈ −5 (clip −1).
                rm.value = Tensor(repeating: 50, shape: rm.value.shape)
                rv.value = Tensor(repeating: 100, shape: rv.value.shape)
            default:
                rm.value = rng.uniformTensor(rm.value.shape, -0.5, 0.5)
                rv.value = rng.uniformTensor(rv.value.shape, 0.5, 2)
            }
        }
        if gc.setup == .tauInGap { try placeTau(layer, x: x) }

        let result = try compareGradients(layer, x: x, gy: gy, mode: gc.mode)
        #expect(result.entries.map(\.name).sorted() == (["x"] + gc.parameters).sorted(), "checked tensors of \(gc)")
        for e in result.entries {
            // Tolerance: see compareGradients — 1e-2 of the gradient norm.
            #expect(e.relativeError < 1e-2, "\(gc): d/d\(e.name) relative error \(e.relativeError) (norm \(e.analyticNorm))")
            #expect(e.analyticNorm > 1e-3, "\(gc): d/d\(e.name) is vanishingly small (\(e.analyticNorm)); the check would be vacuous")
        }

        if gc.setup == .renormClipped, let brn = layer as? BatchRenorm {
            // The analytic forward of compareGradients ran in train mode with both clips active.
            _ = try brn.forward(x, mode: .train)
            #expect(brn.lastClipFractions.r == 1 && brn.lastClipFractions.d == 1, "r and d must be clipped: \(brn.lastClipFractions)")
        }
    }

    /// Places each channel's τ at the middle of the widest gap between consecutive sorted
    /// pre-activations `z = w·x̂ + b` (middle half of the values), so some values fall below τ
    /// (τ gets a gradient) and no perturbation of the check crosses the kink.
    private func placeTau(_ layer: any Normalization, x: Tensor) throws {
        let tau = try layer.requireParameter("tau")
        let c = x.shape[1], s = x.spatialCount, v = x.doubles
        let w = try layer.requireParameter("weight").value.doubles, b = try layer.requireParameter("bias").value.doubles
        let eps = abs(Double(layer.parameter(named: "eps")?.value[flat: 0] ?? 1e-6))
        var z = [[Double]](repeating: [], count: c)
        for plane in 0..<(x.batch * c) {
            let row = v[(plane * s)..<((plane + 1) * s)]
            let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(s) + eps).squareRoot()
            for value in row { z[plane % c].append(w[plane % c] * value * inv + b[plane % c]) }
        }
        var taus = [Double]()
        for ch in 0..<c {
            let sorted = z[ch].sorted()
            let lo = max(sorted.count / 4, 1), hi = max(3 * sorted.count / 4, lo + 1)
            var best = (gap: -1.0, tau: 0.0)
            for i in lo..<min(hi, sorted.count) where sorted[i] - sorted[i - 1] > best.gap {
                best = (sorted[i] - sorted[i - 1], (sorted[i] + sorted[i - 1]) / 2)
            }
            // Perturbations move z by at most ~|w|·h·|x̂| ≈ 0.05; the kink must stay out of reach.
            try #require(best.gap / 2 > 0.06, "channel \(ch): widest gap \(best.gap) too narrow for a TLU-safe τ")
            taus.append(best.tau)
        }
        tau.value = Tensor(shape: [c], doubles: taus)
    }

    @Test("BRN with unclipped r, d: the gradient treats r and d as constants (stop-gradient)")
    func renormUnclippedStopGradient() throws {
        // With r and d constant, y = w·(r·x̂_BN + d) + b, so BRN's dL/dx is exactly BN's with
        // weight w·r, and dL/dw = Σ g·(r·x̂ + d). Finite differences would instead see r and d
        // move with x; that difference is the point of Algorithm 1.
        var rng = TestRNG(seed: 7)
        let shape = [4, 3, 5]
        let brn = try #require(try makeNorm("brn", ["r_max": .real(10), "d_max": .real(10)], input: shape) as? BatchRenorm)
        let rm = [0.2, -0.1, 0.4], rv = [1.5, 0.7, 2.5]
        try brn.requireBuffer("running_mean").value = Tensor(shape: [3], doubles: rm)
        try brn.requireBuffer("running_var").value = Tensor(shape: [3], doubles: rv)
        let w = [1.2, -0.8, 0.9], b = [0.1, 0.2, -0.3]
        try brn.requireParameter("weight").value = Tensor(shape: [3], doubles: w)
        try brn.requireParameter("bias").value = Tensor(shape: [3], doubles: b)
        let x = rng.normalTensor(shape, mean: 0.5, std: 1.3), g = rng.normalTensor(shape)
        _ = try brn.forward(x, mode: .train)
        #expect(brn.lastClipFractions.r == 0 && brn.lastClipFractions.d == 0)
        let gx = try brn.backward(g).copy
        let gw = try #require(try brn.requireParameter("weight").gradient)

        let (mean, variance, _) = channelMoments(x)
        let eps = 1e-5
        let r = (0..<3).map { ((variance[$0] + eps) / (rv[$0] + eps)).squareRoot() }
        let d = (0..<3).map { (mean[$0] - rm[$0]) / (rv[$0] + eps).squareRoot() }
        let bn = try makeNorm("bn", [:], input: shape)
        try bn.requireParameter("weight").value = Tensor(shape: [3], doubles: (0..<3).map { w[$0] * r[$0] })
        _ = try bn.forward(x, mode: .train)
        let gxBN = try bn.backward(g)
        // Same formula through different float32 roundings of w·r: ~1e-6 relative.
        expectClose(gx, gxBN, rtol: 1e-5, "BRN dL/dx vs BN(w·r) dL/dx")

        var expectedGW = [Double](repeating: 0, count: 3)
        let xv = x.doubles, gv = g.doubles
        for i in 0..<xv.count {
            let c = sampleAndChannel(i, shape: shape).c
            let xhat = (xv[i] - mean[c]) / (variance[c] + eps).squareRoot()
            expectedGW[c] += gv[i] * (r[c] * xhat + d[c])
        }
        expectClose(gw, expectedGW, rtol: 1e-5, "BRN dL/dweight")
    }
}
