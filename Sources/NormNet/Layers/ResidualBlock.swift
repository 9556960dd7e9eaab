import NormCore

/// A basic residual block (He et al. 2016, "Deep residual learning", Fig. 2 and §4.2; the
/// pre-activation form of He et al. 2016b, "Identity mappings in deep residual networks").
///
/// - Original (`preActivation == false`): `y = act(branch(x) + shortcut(x))` with
///   `branch = conv1 → norm1 → act → conv2 → norm2`.
/// - Pre-activation: `p = act(norm1(x))`, `y = branch(p) + shortcut(·)` with
///   `branch = conv1 → norm2 → act → conv2`; a parameter-free shortcut takes `x` (the clean
///   identity path), a projection takes `p` (as in the paper's code, the pre-activation is
///   shared).
///
/// The shortcut is the identity, option A (``ZeroPadShortcut``) or option B (1×1 conv with the
/// block's stride, then its norm slot in the original form). Backward is exact: the output
/// gradient goes to both paths and their input gradients are summed. The sums are written
/// into reused blocks (no per-step allocation beyond the sub-layers' own).
public final class ResidualBlock: CompositeLayer {
    /// Stage for `frozen_stages` (1...3).
    public let stage: Int
    /// Position inside its stage (0 = the first, possibly strided, block).
    public let index: Int
    public let preActivation: Bool
    /// Pre-activation `norm1 → act` shared by both paths (empty in the original form).
    public let pre: [(name: String, layer: Layer)]
    /// The residual branch.
    public let branch: [(name: String, layer: Layer)]
    /// The shortcut's layers; empty for the identity.
    public let shortcut: [(name: String, layer: Layer)]
    /// The activation after the addition (original form only).
    public let post: Layer?
    /// The norm slot whose scale zero-initialization silences the branch (the branch's last).
    public let lastNorm: NormSlot?
    public var computesInputGradient = true

    private let shortcutTakesPreactivated: Bool
    private var sum = ReusableStorage(slots: 2)
    private var preGradient = ReusableStorage(slots: 2)
    private var inputGradient = ReusableStorage(slots: 2)

    init(stage: Int, index: Int, preActivation: Bool, pre: [(name: String, layer: Layer)], branch: [(name: String, layer: Layer)],
         shortcut: [(name: String, layer: Layer)], post: Layer?, lastNorm: NormSlot?) {
        self.stage = stage; self.index = index; self.preActivation = preActivation
        self.pre = pre; self.branch = branch; self.shortcut = shortcut; self.post = post; self.lastNorm = lastNorm
        shortcutTakesPreactivated = preActivation && shortcut.contains { $0.layer is Convolution }
    }

    public var sublayers: [(name: String, layer: Layer)] {
        var all = pre + branch + shortcut.map { ("shortcut.\($0.name)", $0.layer) }
        if let post { all.append(("act", post)) }
        return all
    }

    /// The branch's and the shortcut's convolutions (the latter only for option B).
    public var convolutions: [Convolution] { sublayers.compactMap { $0.layer as? Convolution } }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let p = try Self.run(pre, x, mode)
        let r = try Self.run(branch, p, mode)
        let s = try Self.run(shortcut, shortcutTakesPreactivated ? p : x, mode)
        guard r.shape == s.shape else {
            throw NetError("residual block: branch output \(r.shape.shapeText) and shortcut output \(s.shape.shapeText) differ")
        }
        let y = sum.tensor(shape: r.shape)
        Self.add(r, s, into: y)
        return try post?.forward(y, mode: mode) ?? y
    }

    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        let g = try post?.backward(gradOutput) ?? gradOutput
        let gr = try Self.back(branch, g)
        let gs = try Self.back(shortcut, g)
        if shortcutTakesPreactivated {
            let gp = preGradient.tensor(shape: gr.shape)
            Self.add(gr, gs, into: gp)
            let gx = try Self.back(pre, gp)
            return computesInputGradient ? gx : .skippedGradient
        }
        let gx = try Self.back(pre, gr)
        guard computesInputGradient else { return .skippedGradient }
        guard gx.shape == gs.shape else {
            throw NetError("residual block: input gradients \(gx.shape.shapeText) and \(gs.shape.shapeText) differ")
        }
        let out = inputGradient.tensor(shape: gx.shape)
        Self.add(gx, gs, into: out)
        return out
    }

    private static func run(_ layers: [(name: String, layer: Layer)], _ x: Tensor, _ mode: Mode) throws -> Tensor {
        var h = x
        for (_, layer) in layers { h = try layer.forward(h, mode: mode) }
        return h
    }

    private static func back(_ layers: [(name: String, layer: Layer)], _ g: Tensor) throws -> Tensor {
        var h = g
        for (_, layer) in layers.reversed() { h = try layer.backward(h) }
        return h
    }

    /// `out = a + b` elementwise (`out` fresh from a ``ReusableStorage``).
    private static func add(_ a: Tensor, _ b: Tensor, into out: Tensor) {
        a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in out.withUnsafeOutputBuffer { ob in
            let ap = ab.baseAddress!, bp = bb.baseAddress!, op = ob.baseAddress!
            VectorKernels.chunked(out.count) { lo, hi in
                for i in lo..<hi { op[i] = ap[i] + bp[i] }
            }
        }}}
    }
}
