import NormCore
import NormNet

/// The `model` keys of a fully-connected cell (`model.name: mlp`, ``ModelSpec/mlp(inputShape:classes:hidden:norm:activation:)``):
///
/// - `model.hidden`: the hidden layers' widths (default `[100, 100, 100]`, the BN paper's
///   Figure 1 network);
/// - `model.activation`, `model.norm`, `model.norm_position`, `model.dropout`: as for conv nets.
///
/// Conv-only keys (`depth`, `width`, `kernel`, `downsample`, `head`, `width_growth`,
/// `conv_bias`, `weight_standardization`, ResNet keys) are refused with the reason.
enum MLPKeys {
    static let modelKeys = ["hidden"]
    static let convOnlyKeys = ["depth", "width", "kernel", "downsample", "head", "width_growth", "conv_bias",
                               "shortcut", "preact", "zero_init_residual", "weight_standardization"]

    static let documentation: [(key: String, meaning: String)] = [
        ("model.hidden", "mlp only: the hidden layers' widths (default [100, 100, 100]); each is Linear + norm slot + activation"),
    ]

    static func modelSpec(_ c: CellConfig, sampleShape: [Int], classes: Int, norm: NormSpec?, freeze: FreezeSpec) throws -> ModelSpec {
        for key in convOnlyKeys where c.contains("model." + key) {
            throw ConfigProblem(path: "model." + key, message: "applies to conv nets, not to an mlp (give model.hidden)")
        }
        var hidden = [100, 100, 100]
        if let v = c["model.hidden"] {
            guard let items = v.listValue, !items.isEmpty, items.allSatisfy({ ($0.intValue ?? 0) >= 1 }) else {
                throw ConfigProblem(path: "model.hidden", message: "must be a non-empty list of positive integers (layer widths), got \(v)")
            }
            hidden = items.map { $0.intValue! }
        }
        var spec = ModelSpec.mlp(inputShape: sampleShape, classes: classes, hidden: hidden, norm: norm)
        spec.activation = try TrainingRunner.choice(c, "model.activation", spec.activation)
        spec.normPosition = try TrainingRunner.choice(c, "model.norm_position", spec.normPosition)
        try RecipeFeatureKeys.apply(c, to: &spec)
        spec.freeze = freeze
        do { try spec.validate() } catch let error as NetError { throw ConfigProblem(path: "model", message: error.description) }
        return spec
    }
}
