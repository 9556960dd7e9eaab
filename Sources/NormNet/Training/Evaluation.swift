import NormCore

/// Accuracy of a model on a data split.
public enum Evaluation {
    /// Fraction of `labels` the model predicts, in `mode`, in consecutive batches of
    /// `batchSize` (a last batch smaller than half a batch is merged into the previous one,
    /// so train-mode batch statistics never come from a tiny batch).
    ///
    /// A train-mode evaluation updates running statistics as training would; this function
    /// restores every buffer afterwards, so evaluation never changes the model. In train mode
    /// every batch is a multiple of ``Model/batchMultiple`` (a norm that splits the batch, e.g.
    /// Ghost BN's virtual batches): the last fewer-than-a-multiple samples are not scored, and
    /// the accuracy is over the samples scored.
    public static func accuracy(_ model: Model, inputs: Tensor, labels: [Int], mode: Mode, batchSize: Int) throws -> Double {
        let n = labels.count
        guard n > 0 else { return .nan }
        let saved = model.namedBuffers.map { ($0.buffer, $0.buffer.value) }
        let savedMode = model.mode
        let telemetry = model.normSlots.map(\.recordsTelemetry)
        model.recordTelemetry(false)
        defer {
            for (b, v) in saved { b.value = v }
            model.setMode(savedMode)
            for (s, on) in zip(model.normSlots, telemetry) { s.recordsTelemetry = on }
        }
        model.setMode(mode)
        var gatherer = BatchGatherer()
        var correct = 0, scored = 0
        let multiple = mode == .train ? model.batchMultiple : 1
        for full in batchRanges(count: n, batchSize: batchSize) {
            let range = full.lowerBound..<(full.lowerBound + full.count / multiple * multiple)
            guard !range.isEmpty else { continue }
            let x = gatherer.gather(inputs, range)
            let logits = try model.forward(x)
            correct += SoftmaxCrossEntropy.correctCount(logits: logits, labels: Array(labels[range]))
            scored += range.count
        }
        return scored > 0 ? Double(correct) / Double(scored) : .nan
    }

    /// Consecutive ranges of `batchSize`, the remainder merged when under half a batch.
    static func batchRanges(count: Int, batchSize: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start < count {
            var end = min(start + batchSize, count)
            if count - end > 0 && count - end < (batchSize + 1) / 2 { end = count }
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }
}
