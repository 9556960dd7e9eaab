import Foundation
import NormCore

/// Softmax cross-entropy over logits `(N, K)` with integer labels, averaged over the batch
/// (`nn.CrossEntropyLoss()`), computed in float64 with the log-sum-exp shift.
public enum SoftmaxCrossEntropy {
    public struct Result {
        /// Mean loss (NaN/inf when the logits are not finite).
        public let loss: Double
        /// dL/dlogits `(softmax − onehot) / N`.
        public let gradient: Tensor
        /// How many rows' argmax equals the label.
        public let correct: Int
    }

    /// Loss, gradient and correct count.
    public static func evaluate(logits: Tensor, labels: [Int]) throws -> Result {
        guard logits.rank == 2, logits.shape[0] == labels.count, logits.shape[0] > 0 else {
            throw NetError("cross_entropy: logits of shape \(logits.shape.shapeText) for \(labels.count) labels")
        }
        let n = logits.shape[0], k = logits.shape[1]
        guard labels.allSatisfy({ (0..<k).contains($0) }) else { throw NetError("cross_entropy: a label is outside 0..<\(k)") }
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
                let label = labels[r]
                total += -(Double(row[label]) - m - log(s))
                for j in 0..<k { gb[r * k + j] = Float((probs[j] / s - (j == label ? 1 : 0)) / Double(n)) }
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
