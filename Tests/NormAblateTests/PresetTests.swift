import Foundation
import Testing
@testable import NormAblate

@Suite struct PresetTests {
    @Test func presetsAreFoundAndListed() throws {
        #expect(try AblationPresets.names().contains("freeze"))
        let list = try AblationPresets.list()
        #expect(list.first { $0.name == "freeze" }?.summary.hasPrefix("BN freezing when fine-tuning at batch size 2") == true)
        #expect(throws: AblationError.self) { try AblationPresets.load("no-such-preset") }
    }

    @Test func freezeIsTheTwoByTwoFreezeGridWithScheduleLengthsAndFrozenStages() throws {
        let spec = try AblationPresets.load("freeze")
        #expect(spec.name == "freeze")
        #expect(spec.axes.map(\.name) == ["finetune.freeze.frozen_stages", "finetune.freeze.norm_eval", "finetune.freeze.requires_grad", "finetune.steps"])
        #expect(spec.seeds.count >= 3)
        let cells = try spec.cells(validatingWith: FakeRunner())
        #expect(cells.count == 16)
        #expect(cells.allSatisfy { $0.config["finetune.batch_size"] == .integer(2) && $0.config["model.norm.name"] == "bn" })
        #expect(cells.allSatisfy { $0.config["pretrain.steps"] != nil && $0.config["pretrain.dataset"] != nil })
        // the four freeze combinations at each schedule length
        let combos = Set(cells.map { "\($0.config["finetune.freeze.norm_eval"]!)/\($0.config["finetune.freeze.requires_grad"]!)" })
        #expect(combos == ["false/true", "false/false", "true/true", "true/false"])
        #expect(Set(cells.compactMap { $0.config["finetune.steps"]?.intValue }) == [1000, 2000])
        #expect(spec.report.columns == ["finetune.steps"])
        #expect(spec.report.metrics.contains("test_accuracy"))
        #expect(spec.report.plots.map(\.kind) == [.bar, .curve])
    }

    @Test func freezeQuickIsSmaller() throws {
        let quick = try AblationPresets.load("freeze").quickVariant()
        #expect(quick.name == "freeze-quick")
        let cells = try quick.cells(validatingWith: FakeRunner())
        #expect(cells.count == 8 && quick.seeds.count == 2)
        #expect(cells.allSatisfy { ($0.config["pretrain.steps"]?.intValue ?? 0) < 1500 && ($0.config["finetune.steps"]?.intValue ?? 0) <= 300 })
        #expect(StudyPaths.defaultStore(for: quick) == "results/freeze-quick.sqlite")
    }
}
