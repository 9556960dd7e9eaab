import Foundation
import Testing
@testable import NormAblate

/// A fresh temporary folder, removed by `cleanUp()`.
struct TempDir {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-ablate-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }
    func cleanUp() { try? FileManager.default.removeItem(atPath: path) }
}

/// A small spec: 2 norms × (zip of 2 batch sizes with lrs) × 2 widths = 8 cells, 3 seeds.
let smallSpecYAML = """
name: small
description: A test study.
base:
  model:
    depth: 2
    width: 8
    norm: {name: bn, options: {}}
  optimizer: {lr: 0.1, momentum: 0.9}
  batch_size: 32
  epochs: 3
grid:
  model.norm.name: [bn, gn]
  zip:
    - batch_size: [2, 32]
      optimizer.lr: [0.01, 0.1]
  model.width: [8, 16]
seeds: 3
report:
  rows: [model.norm.name, model.width]
  columns: [batch_size]
  metrics: [test_accuracy, test_loss]
  plots:
    - {kind: bar, metric: test_accuracy}
    - {kind: curve, metric: test_accuracy, name: acc-curves}
"""

func smallSpec() throws -> AblationSpec { try AblationSpec.parse(yaml: smallSpecYAML, source: "small.yaml") }

/// The problems of a spec that must fail, as `path: message` strings (failing the test when it parses).
func specProblems(_ yaml: String, runner: (any CellRunner)? = FakeRunner(), quick: Bool = false,
                  sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigProblem] {
    do {
        var spec = try AblationSpec.parse(yaml: yaml, source: "t.yaml")
        if quick { spec = try spec.quickVariant() }
        if let runner { _ = try spec.cells(validatingWith: runner) } else { _ = try spec.cells() }
        Issue.record("expected the spec to be rejected", sourceLocation: sourceLocation)
        return []
    } catch let error as SpecError {
        return error.problems
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        return []
    }
}

/// Whether some problem is at `path` with a message containing `fragment`.
func has(_ problems: [ConfigProblem], _ path: String, _ fragment: String = "") -> Bool {
    problems.contains { $0.path == path && (fragment.isEmpty || $0.message.contains(fragment)) }
}

/// Every stored (cell, seed) with its outcome, for comparisons.
func outcomes(_ store: ResultStore) throws -> [RunKey: CellResult] {
    Dictionary(uniqueKeysWithValues: try store.runs().map { ($0.key, $0.result) })
}
