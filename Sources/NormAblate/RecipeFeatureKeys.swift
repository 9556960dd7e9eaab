import NormCore
import NormNet

/// The spec keys of the recipe features of issue 14, decoded from a cell configuration:
///
/// - `optimizer.name`: `sgd` (default) | `adam` | `adamw`; Adam/AdamW take `optimizer.lr`
///   (default 1e-3), `optimizer.weight_decay` (default 0 for Adam, 1e-2 for AdamW),
///   `optimizer.beta1` / `beta2` / `eps` (0.9, 0.999, 1e-8); `momentum` and `nesterov` are
///   SGD's only.
/// - `augment`: `true` (pad 4, crop, flip), `false`, or `{crop_padding, flip}`; 2-D data only.
/// - `label_smoothing`: ε in [0, 1] (default 0).
/// - `model.dropout`: probability before the classifier (default 0).
/// - `model.weight_standardization`: `true`, `false`, or `{eps}` (default eps 1e-6).
enum RecipeFeatureKeys {
    static let phaseKeys = ["augment", "label_smoothing"]
    static let optimizerKeys = ["name", "beta1", "beta2", "eps"]
    static let sgdOnlyKeys = ["momentum", "nesterov"]
    static let modelKeys = ["dropout", "weight_standardization"]

    static let documentation: [(key: String, meaning: String)] = [
        ("optimizer.name", "sgd | adam | adamw (PyTorch's rules; Adam/AdamW default to lr 1e-3 and weight decay 0 / 1e-2)"),
        ("optimizer.beta1 / beta2 / eps", "Adam/AdamW moments' decay rates and the epsilon added after the square root (0.9, 0.999, 1e-8)"),
        ("augment", "true | false | {crop_padding, flip}: random crops with zero padding (default 4) and horizontal flips of training images (2-D data only; default: the data set's — on for fashion-mnist, off otherwise)"),
        ("label_smoothing", "epsilon of the label-smoothed cross-entropy, PyTorch's convention (default 0)"),
        ("model.dropout", "inverted-dropout probability before the classifier (default 0)"),
        ("model.weight_standardization", "true | false | {eps}: Weight Standardization of every convolution (Qiao et al. 2019; eps 1e-6 inside the square root)"),
    ]

    /// The optimizer name at `p + "optimizer.name"` (sgd when absent).
    static func optimizerName(_ c: CellConfig, prefix p: String) throws -> OptimizerName {
        let path = p + "optimizer.name"
        guard c.contains(path) else { return .sgd }
        let s = try c.string(path)
        guard let name = OptimizerName(rawValue: s.lowercased()) else {
            throw ConfigProblem(path: path, message: "must be one of \(OptimizerName.allCases.map(\.rawValue).joined(separator: ", ")), got '\(s)'")
        }
        if name != .sgd {
            for k in sgdOnlyKeys where c.contains(p + "optimizer." + k) {
                throw ConfigProblem(path: p + "optimizer." + k, message: "applies to sgd only, the optimizer is \(name.rawValue)")
            }
        }
        return name
    }

    /// The training-side features of the phase at prefix `p`.
    static func features(_ c: CellConfig, prefix p: String) throws -> RecipeFeatures {
        var f = RecipeFeatures(optimizer: try optimizerName(c, prefix: p))
        f.adam = AdamConfig(beta1: try c.double(p + "optimizer.beta1", default: 0.9),
                            beta2: try c.double(p + "optimizer.beta2", default: 0.999),
                            epsilon: try c.double(p + "optimizer.eps", default: 1e-8))
        if f.optimizer == .sgd {
            for k in ["beta1", "beta2", "eps"] where c.contains(p + "optimizer." + k) {
                throw ConfigProblem(path: p + "optimizer." + k, message: "applies to adam and adamw only (set optimizer.name)")
            }
        }
        do { try f.adam.validate() } catch { throw ConfigProblem(path: p + "optimizer", message: "\(error)") }
        f.labelSmoothing = try c.double(p + "label_smoothing", default: 0)
        let apath = p + "augment"
        if let v = c[apath] {
            if let on = v.boolValue {
                f.augmentation = on ? .standard : .none
            } else if v.mapValue != nil {
                for problem in c.unknownKeys(at: apath, allowed: ["crop_padding", "flip"]) { throw problem }
                f.augmentation = AugmentationConfig(cropPadding: try c.int(apath + ".crop_padding", default: 4),
                                                    flip: try c.bool(apath + ".flip", default: true))
            } else {
                throw ConfigProblem(path: apath, message: "must be true, false or {crop_padding, flip}")
            }
        }
        do { try f.validate() } catch { throw ConfigProblem(path: c.contains(apath) ? apath : p + "label_smoothing", message: "\(error)") }
        return f
    }

    /// Applies `model.dropout` and `model.weight_standardization` to `spec`.
    static func apply(_ c: CellConfig, to spec: inout ModelSpec) throws {
        spec.dropout = try c.double("model.dropout", default: spec.dropout)
        guard spec.dropout.isFinite, (0..<1).contains(spec.dropout) else {
            throw ConfigProblem(path: "model.dropout", message: "must be in [0, 1), got \(spec.dropout)")
        }
        let wpath = "model.weight_standardization"
        guard let v = c[wpath] else { return }
        do {
            if let on = v.boolValue {
                spec.weightStandardization = on ? try WeightStandardization() : nil
            } else if v.mapValue != nil {
                for problem in c.unknownKeys(at: wpath, allowed: ["eps"]) { throw problem }
                spec.weightStandardization = try WeightStandardization(epsilon: try c.double(wpath + ".eps", default: WeightStandardization.defaultEpsilon))
            } else {
                throw ConfigProblem(path: wpath, message: "must be true, false or {eps}")
            }
        } catch let error as NetError {
            throw ConfigProblem(path: wpath, message: error.description)
        }
    }
}
