import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

@Suite struct CheckpointTests {
    let registry = Builtins.registry

    @Test func crc32KnownValues() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    @Test func zipRoundTrip() throws {
        let entries = [ZipArchive.Entry(name: "a.npy", data: Data([1, 2, 3])), ZipArchive.Entry(name: "b/c.npy", data: Data())]
        #expect(try ZipArchive.decode(ZipArchive.encode(entries)) == entries)
        var corrupt = try ZipArchive.encode(entries)
        corrupt[31 + 5] ^= 0xFF   // a payload byte of the first entry
        #expect(throws: NetError.self) { try ZipArchive.decode(corrupt) }
        #expect(throws: NetError.self) { try ZipArchive.decode(Data([1, 2, 3])) }
    }

    @Test func modelRoundTripAndFineTune() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.npz")
        let data = subset(syntheticData, train: 128, test: 32)
        let trained = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 1)
        let config = TrainingConfig(batchSize: 32, duration: .steps(4), schedule: LRSchedule(.constant))
        _ = try Trainer(model: trained, dataset: data, config: config).run()
        try Checkpoint.save(trained, to: url)

        let fresh = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 2)
        let report = try Checkpoint.load(fresh, from: url)
        #expect(report.missing.isEmpty && report.unexpected.isEmpty && report.loaded.count == Checkpoint.arrays(of: trained).count)
        let a = snapshot(trained), b = snapshot(fresh)
        #expect(a.keys.sorted() == b.keys.sorted())
        for k in a.keys { #expect(a[k]!.isBitIdentical(to: b[k]!), "\(k)") }
        trained.setMode(.eval); fresh.setMode(.eval)
        #expect(try trained.forward(data.testInputs).isBitIdentical(to: fresh.forward(data.testInputs)))

        // Fine-tune with another head (more classes) and frozen stem: non-strict load.
        var other = smallSpec(norm: NormSpec("bn"), classes: 6)
        other.freeze.frozenStages = 0
        let tuned = try Model(spec: other, registry: registry, seed: 3)
        #expect(throws: NetError.self) { try Checkpoint.load(tuned, from: url) }
        let partial = try Checkpoint.load(tuned, from: url, strict: false)
        #expect(partial.mismatched.count == 2 && partial.missing.isEmpty && partial.unexpected.isEmpty)
        #expect(snapshot(tuned)["blocks.0.conv.weight"]!.isBitIdentical(to: a["blocks.0.conv.weight"]!))
        let r = try Trainer(model: tuned, dataset: data, config: config).run()
        #expect(!r.diverged)
        #expect(snapshot(tuned)["blocks.0.norm.running_mean"]!.isBitIdentical(to: a["blocks.0.norm.running_mean"]!))
    }

    @Test func strictLoadChangesNothingOnFailure() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("bn")), registry: registry, seed: 1)
        let before = snapshot(model)
        var arrays = Checkpoint.arrays(of: model).map { ($0.name, Tensor(repeating: 7, shape: $0.tensor.shape)) }
        arrays.removeLast()
        #expect(throws: NetError.self) { try Checkpoint.load(model, arrays: arrays) }
        let after = snapshot(model)
        for k in before.keys { #expect(before[k]!.isBitIdentical(to: after[k]!)) }
    }

    @Test func numpyReadsAndWritesOurNpz() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ours = dir.appendingPathComponent("ours.npz"), theirs = dir.appendingPathComponent("theirs.npz")
        let model = try Model(spec: smallSpec(norm: NormSpec("brn")), registry: registry, seed: 4)
        try Checkpoint.save(model, to: ours)
        let arrays = Checkpoint.arrays(of: model)
        // numpy loads every array with its shape, then re-saves them with numpy.savez.
        let out = try python("""
        import numpy as np
        d = np.load('\(ours.path)')
        for k in d.files:
            a = d[k]
            assert a.dtype == np.float32, a.dtype
            print(k, a.shape, repr(float(a.astype(np.float64).sum())))
        np.savez('\(theirs.path)', **{k: d[k] for k in d.files})
        """)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == arrays.count)
        for (line, (name, t)) in zip(lines, arrays) {
            #expect(line.hasPrefix(name + " "), "\(line)")
            let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
            #expect(line.contains(" " + shape + " "), "\(line) vs \(shape)")
            let sum = Double(line.split(separator: " ").last!)!
            let expected = t.scalars.reduce(0.0) { $0 + Double($1) }
            #expect(abs(sum - expected) <= 1e-9 * max(1, abs(expected)))
        }
        let back = try NPZ.read(contentsOf: theirs)
        #expect(back.map(\.name) == arrays.map(\.name))
        for ((_, a), (_, b)) in zip(back, arrays) { #expect(a.isBitIdentical(to: b)) }
        // A compressed archive is refused with a clear message.
        let compressed = dir.appendingPathComponent("c.npz")
        _ = try python("import numpy as np; np.savez_compressed('\(compressed.path)', a=np.zeros(3, np.float32))")
        #expect(throws: NetError.self) { try NPZ.read(contentsOf: compressed) }
    }
}
