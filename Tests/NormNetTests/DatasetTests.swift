import Foundation
import Testing
import NormCore
import NormPython
@testable import NormNet

/// Data sets: digits and mnist1d through the embedded Python, the on-disk `.npz` cache and
/// the content hash.
@Suite struct DatasetTests {
    /// A fresh temporary cache directory, removed by `cleanup`.
    private static func temporaryCache() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("normnet-datasets-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private static func cleanup(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    private static func counts(_ labels: [Int], classes: Int) -> [Int] {
        var c = [Int](repeating: 0, count: classes)
        for y in labels { c[y] += 1 }
        return c
    }

    // MARK: SHA-256 and the content hash

    @Test func sha256KnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Incremental updates across block boundaries give the one-shot digest.
        let text = String(repeating: "normlab-", count: 300)
        var hasher = SHA256()
        let bytes = Array(text.utf8)
        var i = 0
        for step in [1, 63, 64, 65, 7, 200, 3] where i < bytes.count {
            hasher.update(bytes[i..<min(i + step, bytes.count)])
            i += step
        }
        hasher.update(bytes[min(i, bytes.count)...])
        #expect(hasher.hexDigest() == SHA256.hex(text))
        #expect(SHA256.hex(String(repeating: "a", count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func syntheticContentHashIsARealHash() throws {
        let a = try Datasets.load(.synthetic, seed: 3)
        let b = try Datasets.load(.synthetic, seed: 3)
        let c = try Datasets.load(.synthetic, seed: 4)
        #expect(a.contentHash.count == 64)
        #expect(a.contentHash == b.contentHash)
        #expect(a.contentHash != c.contentHash)
        #expect(a.contentHash == a.computedContentHash())
    }

    // MARK: digits

    @Test func digitsShapesLabelsAndRange() throws {
        let cache = try Self.temporaryCache()
        defer { Self.cleanup(cache) }
        let d = try Datasets.load(.digits, seed: 0, cacheDirectory: cache)
        #expect(d.name == "digits")
        #expect(d.classes == 10)
        #expect(d.trainInputs.shape == [1437, 1, 8, 8])
        #expect(d.testInputs.shape == [360, 1, 8, 8])
        #expect(d.sampleShape == [1, 8, 8])
        #expect(d.trainLabels.count == 1437 && d.testLabels.count == 360)
        let total = zip(Self.counts(d.trainLabels, classes: 10), Self.counts(d.testLabels, classes: 10)).map { $0 + $1 }
        // scikit-learn's digits: 1,797 images, per-class counts as shipped.
        #expect(total == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
        #expect(Self.counts(d.testLabels, classes: 10).allSatisfy { $0 > 0 })
        for x in [d.trainInputs, d.testInputs] {
            let values = x.scalars
            #expect(values.min() == 0)
            #expect(values.max() == 1)
            // values are k/16 exactly
            #expect(values.allSatisfy { ($0 * 16).rounded() == $0 * 16 })
        }
        #expect(d.contentHash == d.computedContentHash())
        // Golden: sklearn's digits with normlab's seed-0 split, hash format normlab-dataset-v1.
        #expect(d.contentHash == "8705b35a4bc33d48f14f432e7f3be36e5ba2f999071d919a0f0cca3934c0e0f8")
    }

    @Test func digitsSplitIsAFunctionOfTheSeed() throws {
        let a = try Datasets.loadWithCacheInfo(.digits, seed: 0, useCache: false)
        let b = try Datasets.loadWithCacheInfo(.digits, seed: 0, useCache: false)
        let c = try Datasets.loadWithCacheInfo(.digits, seed: 1, useCache: false)
        #expect(a.cache.status == .disabled && a.cache.path == nil)
        #expect(a.dataset.trainInputs.isBitIdentical(to: b.dataset.trainInputs))
        #expect(a.dataset.testInputs.isBitIdentical(to: b.dataset.testInputs))
        #expect(a.dataset.trainLabels == b.dataset.trainLabels && a.dataset.testLabels == b.dataset.testLabels)
        #expect(a.dataset.contentHash == b.dataset.contentHash)

        #expect(c.dataset.trainInputs.shape == a.dataset.trainInputs.shape)
        #expect(!c.dataset.testInputs.isBitIdentical(to: a.dataset.testInputs))
        #expect(c.dataset.contentHash != a.dataset.contentHash)
        // Same images, split differently: the per-pixel sums over all 1,797 images agree.
        func pixelSum(_ d: Dataset) -> Double {
            (d.trainInputs.scalars + d.testInputs.scalars).reduce(0) { $0 + Double($1) }
        }
        #expect(pixelSum(a.dataset) == pixelSum(c.dataset))

        // A seed beyond Int64 works (it reaches Python as decimal text).
        let big = try Datasets.loadWithCacheInfo(.digits, seed: UInt64.max, useCache: false)
        #expect(big.dataset.testInputs.shape == [360, 1, 8, 8])
    }

    // MARK: cache

    @Test func cacheHitGivesIdenticalArraysAndHash() throws {
        let cache = try Self.temporaryCache()
        defer { Self.cleanup(cache) }
        let first = try Datasets.loadWithCacheInfo(.digits, seed: 7, cacheDirectory: cache)
        #expect(first.cache.status == .generated)
        let file = try #require(try Datasets.cacheFile(for: .digits, seed: 7, cacheDirectory: cache))
        #expect(first.cache.path == file.path)
        #expect(FileManager.default.fileExists(atPath: file.path))
        #expect(file.lastPathComponent.hasPrefix("digits-seed7-") && file.pathExtension == "npz")
        // Only the one file: the temporary file was renamed into place.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path) == [file.lastPathComponent])

        let second = try Datasets.loadWithCacheInfo(.digits, seed: 7, cacheDirectory: cache)
        #expect(second.cache.status == .hit)
        #expect(second.dataset.trainInputs.isBitIdentical(to: first.dataset.trainInputs))
        #expect(second.dataset.testInputs.isBitIdentical(to: first.dataset.testInputs))
        #expect(second.dataset.trainLabels == first.dataset.trainLabels)
        #expect(second.dataset.testLabels == first.dataset.testLabels)
        #expect(second.dataset.contentHash == first.dataset.contentHash)

        // Other seeds get their own file.
        let other = try #require(try Datasets.cacheFile(for: .digits, seed: 8, cacheDirectory: cache))
        #expect(other != file)
        #expect(try Datasets.cacheFile(for: .synthetic) == nil)
    }

    @Test func corruptCacheFilesAreRegenerated() throws {
        let cache = try Self.temporaryCache()
        defer { Self.cleanup(cache) }
        let fresh = try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache)
        let file = try #require(fresh.cache.path)

        // 1. A truncated file (not a zip any more).
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
        let truncated = try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache)
        #expect(truncated.cache.status == .regenerated)
        #expect(!truncated.cache.note.isEmpty)
        #expect(truncated.dataset.contentHash == fresh.dataset.contentHash)
        #expect(truncated.dataset.trainInputs.isBitIdentical(to: fresh.dataset.trainInputs))
        #expect(try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache).cache.status == .hit)

        // 2. A well-formed .npz whose arrays were changed but whose stored hash was kept.
        try Python.withGIL {
            let ns = try Python.makeNamespace()
            try ns.setItem("path", to: file)
            try Python.run("""
                import numpy as np
                with np.load(path) as f:
                    entries = {k: f[k] for k in f.files}
                entries["x_train"] = entries["x_train"].copy()
                entries["x_train"][0, 0, 0, 0] += 0.5
                with open(path, "wb") as out:
                    np.savez(out, **entries)
                """, in: ns)
        }
        let tampered = try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache)
        #expect(tampered.cache.status == .regenerated)
        #expect(tampered.cache.note.contains("content hash mismatch"))
        #expect(tampered.dataset.trainInputs.isBitIdentical(to: fresh.dataset.trainInputs))
        #expect(tampered.dataset.contentHash == fresh.dataset.contentHash)

        // 3. An empty file.
        try Data().write(to: URL(fileURLWithPath: file))
        #expect(try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache).cache.status == .regenerated)
        #expect(try Datasets.loadWithCacheInfo(.digits, seed: 2, cacheDirectory: cache).cache.status == .hit)
    }

    @Test func unwritableCacheStillLoads() throws {
        let cache = try Self.temporaryCache()
        defer { Self.cleanup(cache) }
        // A regular file where the cache directory should be.
        let blocker = cache.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: blocker)
        let result = try Datasets.loadWithCacheInfo(.digits, seed: 0, cacheDirectory: blocker)
        #expect(result.cache.status == .unwritable)
        #expect(!result.cache.note.isEmpty)
        #expect(result.dataset.trainInputs.shape == [1437, 1, 8, 8])
    }

    @Test func defaultCacheDirectoryIsInTheRepository() throws {
        guard ProcessInfo.processInfo.environment[Datasets.cacheDirectoryVariable] == nil else { return }
        let dir = try Datasets.defaultCacheDirectory()
        let root = URL(fileURLWithPath: try PythonSupport.locateDirectory()).deletingLastPathComponent()
        #expect(dir.path == root.appendingPathComponent(".cache/datasets").standardizedFileURL.path)
    }

    // MARK: mnist1d

    @Test func mnist1dMatchesTheGeneratorAndCaches() throws {
        let cache = try Self.temporaryCache()
        defer { Self.cleanup(cache) }
        let first = try Datasets.loadWithCacheInfo(.mnist1d, seed: 0, cacheDirectory: cache)
        let d = first.dataset
        #expect(first.cache.status == .generated)
        #expect(d.name == "mnist1d" && d.classes == 10)
        #expect(d.trainInputs.shape == [4000, 1, 40])
        #expect(d.testInputs.shape == [1000, 1, 40])
        #expect(d.trainLabels.count == 4000 && d.testLabels.count == 1000)
        #expect(Self.counts(d.trainLabels, classes: 10).allSatisfy { $0 > 300 })
        #expect(Self.counts(d.testLabels, classes: 10).allSatisfy { $0 > 50 })
        #expect(d.contentHash == d.computedContentHash())
        // Golden: mnist1d 0.0.2.post1, make_dataset(get_dataset_args()), float32.
        #expect(d.contentHash == "321a890c55f2ba20daedd97ff4a8afc743d754e58979251f4785463178c440a0")

        // The seed does not change mnist1d (the package's own seed, 42): same file, a cache hit.
        let again = try Datasets.loadWithCacheInfo(.mnist1d, seed: 5, cacheDirectory: cache)
        #expect(again.cache.status == .hit)
        #expect(again.cache.path == first.cache.path)
        #expect(URL(fileURLWithPath: try #require(again.cache.path)).lastPathComponent.hasPrefix("mnist1d-seed42-"))
        #expect(again.dataset.trainInputs.isBitIdentical(to: d.trainInputs))
        #expect(again.dataset.testInputs.isBitIdentical(to: d.testInputs))
        #expect(again.dataset.trainLabels == d.trainLabels && again.dataset.testLabels == d.testLabels)
        #expect(again.dataset.contentHash == d.contentHash)

        // Equal to a fresh make_dataset(get_dataset_args()) run directly in Python.
        let (x, y, xTest, yTest) = try Python.withGIL { () -> (Tensor, [Int], Tensor, [Int]) in
            try Python.addToSysPath(try PythonSupport.locateDirectory())
            let ns = try Python.makeNamespace()
            try Python.run("""
                import random
                import numpy as np
                import normlab_datasets
                with normlab_datasets._LOCK:  # no concurrent first imports of scipy
                    data = normlab_datasets.import_mnist1d()
                    _np_state, _py_state = np.random.get_state(), random.getstate()
                    d = data.make_dataset(data.get_dataset_args())
                    np.random.set_state(_np_state); random.setstate(_py_state)
                x = d["x"].astype(np.float32).reshape(-1, 1, 40)
                x_test = d["x_test"].astype(np.float32).reshape(-1, 1, 40)
                y, y_test = d["y"].tolist(), d["y_test"].tolist()
                """, in: ns)
            return (try Tensor(numpy: ns.item("x")), try ns.item("y").decode([Int].self),
                    try Tensor(numpy: ns.item("x_test")), try ns.item("y_test").decode([Int].self))
        }
        #expect(x.isBitIdentical(to: d.trainInputs))
        #expect(xTest.isBitIdentical(to: d.testInputs))
        #expect(y == d.trainLabels)
        #expect(yTest == d.testLabels)
    }

    @Test func pythonErrorsBecomeOneLineNormErrors() throws {
        // What Python raises for a missing package (DatasetError) keeps its own message.
        let missing = PythonError(typeName: "normlab_datasets.DatasetError",
                                  message: "mnist1d: the Python package mnist1d==0.0.2.post1 is not installed\n(looked in x); run `make test`")
        #expect(throws: NormError.invalidConfiguration(
            method: "dataset",
            reason: "mnist1d: the Python package mnist1d==0.0.2.post1 is not installed (looked in x); run `make test`")) {
            try PythonDatasets.converting(.mnist1d) { throw missing }
        }
        // Any other Python exception names the data set.
        #expect(throws: NormError.invalidConfiguration(method: "dataset", reason: "digits: ValueError: bad")) {
            try PythonDatasets.converting(.digits) { throw PythonError(typeName: "ValueError", message: "bad") }
        }
        // The real module raises DatasetError with one line for a name it does not know.
        do {
            _ = try PythonDatasets.module().callMethod("cache_file_name", "cifar10", "0")
            Issue.record("expected an error")
        } catch let error as PythonError {
            #expect(error.typeName == "normlab_datasets.DatasetError")
            #expect(error.description == "normlab_datasets.DatasetError: unknown data set 'cifar10'; Python-generated data sets: digits, mnist1d, fashion-mnist")
        }
    }
}
