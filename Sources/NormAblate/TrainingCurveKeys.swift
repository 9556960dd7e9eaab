import NormCore
import NormNet

/// The phase keys of the step-interval diagnostics (``StepEvaluation``, ``ActivationProbe``):
///
/// - `eval_every: N` — eval-mode test accuracy after every N steps (curves `eval_steps`,
///   `eval_test_accuracy`);
/// - `early_step: S` — test accuracy after exactly S steps (metric `early_test_accuracy`);
/// - `activation_probe: {layer, unit, every, examples, mode}` — the 15th/50th/85th
///   percentiles of one unit's input to a layer over a seeded probe set of test examples
///   (curves `probe_steps`, `probe_p15`, `probe_p50`, `probe_p85`; metrics
///   `probe_spread_drift`, `probe_median_drift`). `true` takes every default.
enum TrainingCurveKeys {
    static let phaseKeys = ["eval_every", "early_step", "activation_probe"]
    static let probeKeys = ["layer", "unit", "every", "examples", "mode"]
    static let metricNames = ["early_test_accuracy", "probe_spread_drift", "probe_median_drift"]
    static let curveNames = ["eval_steps", "eval_test_accuracy", "probe_steps", "probe_p15", "probe_p50", "probe_p85"]

    static let documentation: [(key: String, meaning: String)] = [
        ("eval_every", "evaluate test accuracy (eval mode) after every N steps: curves eval_steps, eval_test_accuracy"),
        ("early_step", "evaluate test accuracy after exactly S steps: metric early_test_accuracy"),
        ("activation_probe", "true | {layer, unit, every, examples, mode}: 15th/50th/85th percentiles (numpy 'linear') of one unit's input to a layer over a seeded probe set of test examples, every N steps (BN paper Fig. 1(b, c)); defaults: the last activation, unit 0, every 100, 1000 examples, mode train (batch statistics of the probe set, buffers restored)"),
        ("metrics (probe)", "probe_spread_drift: max - min over the probe points of p85 - p15; probe_median_drift: max - min of p50"),
    ]

    /// The step evaluation of the phase at prefix `p`.
    static func stepEvaluation(_ c: CellConfig, prefix p: String) throws -> StepEvaluation {
        var s = StepEvaluation()
        for key in ["eval_every", "early_step"] where c.contains(p + key) {
            let n = try c.int(p + key)
            guard n >= 1 else { throw ConfigProblem(path: p + key, message: "must be a positive integer (steps), got \(n)") }
            if key == "eval_every" { s.every = n } else { s.earlyStep = n }
        }
        return s
    }

    /// The activation probe of the phase at prefix `p` (nil when absent or `false`).
    static func activationProbe(_ c: CellConfig, prefix p: String) throws -> ActivationProbe? {
        let path = p + "activation_probe"
        guard let v = c[path], !v.isNull else { return nil }
        if let on = v.boolValue { return on ? ActivationProbe() : nil }
        guard v.mapValue != nil else { throw ConfigProblem(path: path, message: "must be true, false or {layer, unit, every, examples, mode}") }
        for problem in c.unknownKeys(at: path, allowed: probeKeys) { throw problem }
        var probe = ActivationProbe()
        if c.contains(path + ".layer") { probe.layer = try c.string(path + ".layer") }
        probe.unit = try c.int(path + ".unit", default: probe.unit)
        probe.every = try c.int(path + ".every", default: probe.every)
        probe.examples = try c.int(path + ".examples", default: probe.examples)
        if c.contains(path + ".mode") {
            let text = try c.string(path + ".mode")
            guard let mode = Mode(rawValue: text.lowercased()) else {
                throw ConfigProblem(path: path + ".mode", message: "must be train or eval, got '\(text)'")
            }
            probe.mode = mode
        }
        do { try probe.validate() } catch let error as NetError { throw ConfigProblem(path: path, message: error.description) }
        return probe
    }

    /// Checks the probe against the built model and `early_step` against a step count.
    static func check(_ phase: Phase, model: Model, prefix p: String) throws {
        if let probe = phase.activationProbe {
            do { _ = try probe.resolve(in: model) } catch let error as NetError {
                throw ConfigProblem(path: p + "activation_probe", message: error.description)
            }
        }
        if let s = phase.stepEvaluation.earlyStep, case let .steps(n)? = phase.recipe.duration, s > n {
            throw ConfigProblem(path: p + "early_step", message: "\(s) is beyond the run's \(n) steps")
        }
    }

    /// The metrics and curves a run's step evaluation and probe produced.
    static func record(_ r: TrainingResult, metrics: inout [String: Double], curves: inout [String: [Double]]) {
        if !r.stepEvaluations.isEmpty {
            curves["eval_steps"] = r.stepEvaluations.map { Double($0.step) }
            curves["eval_test_accuracy"] = r.stepEvaluations.map(\.testAccuracy)
        }
        if let early = r.earlyTestAccuracy { metrics["early_test_accuracy"] = early }
        if let probe = r.activationPercentiles, !probe.steps.isEmpty {
            curves["probe_steps"] = probe.steps.map(Double.init)
            curves["probe_p15"] = probe.p15
            curves["probe_p50"] = probe.p50
            curves["probe_p85"] = probe.p85
            metrics["probe_spread_drift"] = probe.spreadDrift ?? .nan
            metrics["probe_median_drift"] = probe.medianDrift ?? .nan
        }
    }
}
