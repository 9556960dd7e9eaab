import Foundation
import NormCore

/// Records, per train step, how far a layer's batch statistics are from the running
/// statistics eval mode will use (the running statistics *before* the step's update):
///
/// - mean gap `|μ_B − μ_run| / √(σ²_run + eps)` (BRN's unclipped |d|),
/// - std log-ratio `|ln(√(σ²_B + eps) / √(σ²_run + eps))|` (BRN's unclipped |ln r|),
///
/// each averaged over channels (over instances for IN).
public final class NormTelemetryRecorder {
    public private(set) var meanGaps: [Double] = []
    public private(set) var stdLogRatios: [Double] = []
    public private(set) var rClipFractions: [Double] = []
    public private(set) var dClipFractions: [Double] = []

    public init() {}

    func record(_ m: BatchMoments, runningMean: Tensor, runningVar: Tensor, eps: Double) {
        let channels = runningMean.count
        guard channels > 0, m.mean.count % channels == 0, !m.mean.isEmpty else { return }
        let rm = runningMean.scalars, rv = runningVar.scalars
        var gap = 0.0, ratio = 0.0
        for g in 0..<m.mean.count {
            let c = g % channels
            let sigma2 = Double(rv[c]) + eps
            gap += abs(m.mean[g] - Double(rm[c])) / sigma2.squareRoot()
            ratio += abs(0.5 * log((m.variance[g] + eps) / sigma2))
        }
        meanGaps.append(gap / Double(m.mean.count))
        stdLogRatios.append(ratio / Double(m.mean.count))
    }

    func recordClips(_ f: (r: Double, d: Double)) {
        rClipFractions.append(f.r)
        dClipFractions.append(f.d)
    }

    public func reset() {
        meanGaps = []; stdLogRatios = []; rClipFractions = []; dClipFractions = []
    }
}

/// What one norm layer did over a run.
public struct NormTelemetry: Sendable, Equatable {
    public var name: String
    public var method: String
    public var tracksRunningStatistics: Bool
    public var freeze: FreezePolicy
    /// Train steps with a recorded gap (0 when the layer has no running statistics, its
    /// statistics are frozen, or it does not expose its batch statistics).
    public var recordedSteps: Int
    /// Averages over all recorded steps (nil when none).
    public var meanGap: Double?
    public var stdLogRatio: Double?
    /// Averages over the last 10 % of recorded steps (at least one).
    public var finalMeanGap: Double?
    public var finalStdLogRatio: Double?
    /// Layers with r/d corrections (``RenormalizationControl``) only: clipped channel-steps / channel-steps for r and d over training.
    public var rClipRate: Double?
    public var dClipRate: Double?
    /// Layers with r/d corrections only: the same over the last 10 % of train steps.
    public var finalRClipRate: Double?
    public var finalDClipRate: Double?
    /// Why no gap was recorded, when none was.
    public var note: String?

    /// Summarizes a slot's recorder.
    public init(slot: NormSlot) {
        let r = slot.telemetry
        name = slot.name
        method = slot.method
        tracksRunningStatistics = slot.layer.plugin.tracksRunningStatistics
        freeze = slot.freeze
        recordedSteps = r.meanGaps.count
        func mean(_ a: ArraySlice<Double>) -> Double? { a.isEmpty ? nil : a.reduce(0, +) / Double(a.count) }
        func tail(_ a: [Double]) -> ArraySlice<Double> { a.suffix(max(1, a.count / 10)) }
        meanGap = mean(r.meanGaps[...]); stdLogRatio = mean(r.stdLogRatios[...])
        finalMeanGap = mean(tail(r.meanGaps)); finalStdLogRatio = mean(tail(r.stdLogRatios))
        if let brn = slot.layer.plugin as? any RenormalizationControl {
            rClipRate = brn.clipRates.r; dClipRate = brn.clipRates.d
            finalRClipRate = mean(tail(r.rClipFractions)); finalDClipRate = mean(tail(r.dClipFractions))
        }
        if recordedSteps == 0 {
            if !tracksRunningStatistics { note = "no running statistics (train and eval use the same statistics)" }
            else if slot.freeze.freezesStatistics { note = "statistics frozen (norm_eval): running statistics used throughout" }
            else if slot.layer.plugin.trackedStatistics == nil { note = "plugin does not expose its batch statistics" }
            else { note = "no train steps recorded" }
        }
    }
}
