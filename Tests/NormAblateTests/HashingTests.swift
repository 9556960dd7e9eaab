import Foundation
import NormCore
import NormNet
import Testing
@testable import NormAblate

@Suite struct HashingTests {
    @Test func sha256MatchesTheNISTVectors() {
        #expect(AblationHash.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(AblationHash.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(AblationHash.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // 1,000,000 × "a" crosses many blocks and the 56-byte padding boundary.
        #expect(AblationHash.sha256(bytes: [UInt8](repeating: 0x61, count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // exactly 55, 56 and 64 bytes (padding edge cases)
        #expect(AblationHash.sha256(String(repeating: "a", count: 55)) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(AblationHash.sha256(String(repeating: "a", count: 56)) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        #expect(AblationHash.sha256(String(repeating: "a", count: 64)) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    @Test func canonicalJSONSortsKeysAndNormalizesNumbers() throws {
        let a = try YAMLTree(text: "b: 1\na: {y: 0.1, x: [1, 2.0, 1e-3]}\nc: 'text'", source: "a").root
        let b = try YAMLTree(text: "a: {x: [1.0, 2, 0.001], y: 1.0e-1}\nc: text\nb: 1.0", source: "b").root
        #expect(a.canonicalJSON == #"{"a":{"x":[1,2,0.001],"y":0.1},"b":1,"c":"text"}"#)
        #expect(a.canonicalJSON == b.canonicalJSON)
        #expect(CellConfig(a).hash == CellConfig(b).hash)
        // a quoted number is a string: another configuration
        let c = try YAMLTree(text: "a: {x: [1, 2, 0.001], y: 0.1}\nb: '1'\nc: text", source: "c").root
        #expect(CellConfig(c).hash != CellConfig(a).hash)
        // escapes
        #expect(ConfigValue.string("q\"\\\n\u{1}é").canonicalJSON == #""q\"\\\n\u0001é""#)
    }

    @Test func cellHashIsPinned() throws {
        // A change here invalidates every existing store: bump AblationFormat.storeVersion.
        let config = CellConfig(try YAMLTree(text: "model: {norm: {name: gn, options: {num_groups: 4}}, depth: 2}\noptimizer: {lr: 0.05}\nbatch_size: 8", source: "p").root)
        #expect(config.canonicalJSON == #"{"batch_size":8,"model":{"depth":2,"norm":{"name":"gn","options":{"num_groups":4}}},"optimizer":{"lr":0.05}}"#)
        #expect(config.hash == AblationHash.sha256(config.canonicalJSON))
        #expect(config.hash == "78c039f8d23ce65f2027bb8e8f0e8c9a21ece749f195d3b60902e3efd56c33fd")
    }

    @Test func specHashIgnoresReportAndDescriptionButNotGridOrder() throws {
        let a = try smallSpec()
        let b = try AblationSpec.parse(yaml: smallSpecYAML.replacingOccurrences(of: "A test study.", with: "Other words.")
            .replacingOccurrences(of: "metrics: [test_accuracy, test_loss]", with: "metrics: [test_loss]"), source: "b")
        #expect(a.hash == b.hash)
        let c = try AblationSpec.parse(yaml: smallSpecYAML.replacingOccurrences(of: "seeds: 3", with: "seeds: [0, 1, 2, 3]"), source: "c")
        #expect(a.hash != c.hash)
        let d = try AblationSpec.parse(yaml: smallSpecYAML.replacingOccurrences(of: "model.width: [8, 16]", with: "model.width: [16, 8]"), source: "d")
        #expect(a.hash != d.hash)
        // same cells, different order → different study (the order decides shards)
        #expect(Set(try a.cells().map(\.hash)) == Set(try d.cells().map(\.hash)))
    }

    @Test func seedIsNotPartOfTheCellHash() throws {
        let spec = try smallSpec()
        let cells = try spec.cells()
        let plan = RunPlan(spec: spec, cells: cells)
        #expect(plan.runs.count == cells.count * 3)
        #expect(Set(plan.runs.map(\.key)).count == plan.runs.count)
        #expect(Set(plan.runs.map(\.key.cellHash)).count == cells.count)
        for cell in cells { #expect(!cell.config.canonicalJSON.contains("seed")) }
    }
}
