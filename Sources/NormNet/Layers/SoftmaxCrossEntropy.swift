import Foundation
import NormCore

/// Softmax cross-entropy over logits `(N, K)` with integer labels, averaged over the batch
/// (`nn.CrossEntropyLoss()`), computed in float64 with the log-sum-exp shift.
///
/// Label smoothing ε (Szegedy et al. 2016, §7) follows PyTorch's `label_smoothing`: the
/// target of a row with label `y` is `t_j = (1 − ε)·[j = y] + ε / K`, the loss
/// `−Σ_j t_j · log softmax_j` (so `(1 − ε)·NLL + ε · mean_j(−log softmax_j)`) and the gradient
/// `(softmax − t) / N`. ε = 0 is the plain loss.
public enum SoftmaxCrossEntropy {
    public struct Result {
        /// Mean loss (NaN/inf when the logits are not finite).
        public let loss: Double
        /// dL/dlogits `(softmax − t) / N` (`t` the one-hot or smoothed target).
        public let gradient: Tensor
        /// How many rows' argmax equals the label.
        public let correct: Int
    }

    /// Loss, gradient and correct count; `labelSmoothing` ε in `[0, 1]`.
    public static func evaluate(logits: Tensor, labels: [Int], labelSmoothing: Double = 0) throws -> Result {
        guard logits.rank == 2, logits.shape[0] == labels.count, logits.shape[0] > 0 else {
            throw NetError("cross_entropy: logits of shape \(logits.shape.shapeText) for \(labels.count) labels")
        }
        let n = logits.shape[0], k = logits.shape[1]
        guard labels.allSatisfy({ (0..<k).contains($0) }) else { throw NetError("cross_entropy: a label is outside 0..<\(k)") }
        guard labelSmoothing.isFinite, (0...1).contains(labelSmoothing) else {
            throw NetError("cross_entropy: label smoothing must be in [0, 1], got \(labelSmoothing)")
        }
        let eps = labelSmoothing, uniform = labelSmoothing / Double(k)
        var total = 0.0, correct = 0
        var grad = Tensor(repeating: 0, shape: [n, k])
        logits.withUnsafeBufferPointer { lb in grad.withUnsafeMutableBufferPointer { gb in
            var probs = [Double](repeating: 0, count: k)
            for r in 0..<n {
                let row = lb.baseAddress! + r * k
                var m = -Double.infinity
                for j in 0..<k { m = max(m, Double(row[j])) }
                var s = 0.0
                for j in 0..<k { probs[j] = exp(Double(row[j]) - m); s += probs[j] }
                let label = labels[r], logS = log(s)
                total += -(1 - eps) * (Double(row[label]) - m - logS)
                if eps != 0 {
                    var sumLogP = 0.0
                    for j in 0..<k { sumLogP += Double(row[j]) - m - logS }
                    total += -uniform * sumLogP
                }
                for j in 0..<k {
                    let target = (j == label ? 1 - eps : 0) + uniform
                    gb[r * k + j] = Float((probs[j] / s - target) / Double(n))
                }
                if argmax(row, k) == label { correct += 1 }
            }
        }}
        return Result(loss: total / Double(n), gradient: grad, correct: correct)
    }

    /// Mean loss only.
    public static func loss(logits: Tensor, labels: [Int]) throws -> Double {
        try evaluate(logits: logits, labels: labels).loss
    }

    /// Index of the largest of `k` values (first on ties; a NaN row gives −1, never correct).
    static func argmax(_ row: UnsafePointer<Float>, _ k: Int) -> Int {
        var best = 0
        for j in 0..<k {
            if row[j].isNaN { return -1 }
            if row[j] > row[best] { best = j }
        }
        return best
    }

    /// Correct predictions of `logits` against `labels`.
    public static func correctCount(logits: Tensor, labels: [Int]) -> Int {
        let k = logits.shape[1]
        return logits.withUnsafeBufferPointer { lb in
            (0..<labels.count).reduce(0) { $0 + (argmax(lb.baseAddress! + $1 * k, k) == labels[$1] ? 1 : 0) }
        }
    }
}
