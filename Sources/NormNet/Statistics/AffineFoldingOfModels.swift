import NormCore

/// Folding a model's norm layers into frozen per-channel affines (detectron2's
/// `FrozenBatchNorm2d` conversion).
///
/// Every layer that declares ``AffineFolding`` (BN, BRN and IN with running statistics) is
/// replaced by the frozen layer it returns, which equals it in eval mode. Layers without a
/// fixed eval affine (GN, LN, FRN, untracked IN, plugins that do not declare the capability)
/// are left alone and reported with the reason.
public enum FrozenAffineFolding {
    public struct Report: Sendable, Equatable {
        public var folded: [String] = []
        /// Slot name and why it was left alone.
        public var skipped: [(name: String, reason: String)] = []

        public static func == (a: Report, b: Report) -> Bool {
            a.folded == b.folded && a.skipped.map(\.name) == b.skipped.map(\.name) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
        }
    }

    /// The folded layer for a norm layer, or the reason it cannot be folded.
    public static func fold(_ layer: NormLayer) -> Result<any Normalization, FoldingRefusal> {
        let plugin = layer.plugin
        guard let foldable = plugin as? any AffineFolding else {
            return .failure(FoldingRefusal(plugin.tracksRunningStatistics
                ? "\(plugin.descriptor.name): its eval mode is not declared a fixed affine (AffineFolding)"
                : "\(plugin.descriptor.name): no running statistics (per-sample statistics have no fixed affine)"))
        }
        return foldable.foldedIntoAffine()
    }
}

extension Model {
    /// Replaces every foldable norm slot's layer by its frozen affine; reports the rest.
    @discardableResult
    public func foldFrozenBatchNorm() throws -> FrozenAffineFolding.Report {
        var report = FrozenAffineFolding.Report()
        for slot in normSlots {
            switch FrozenAffineFolding.fold(slot.layer) {
            case let .success(frozen):
                slot.layer = try NormLayer(frozen, freeze: .none)
                report.folded.append(slot.name)
            case let .failure(refusal):
                report.skipped.append((slot.name, refusal.description))
            }
        }
        return report
    }
}
