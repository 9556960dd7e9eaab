import Foundation
import Testing
@testable import NormCore

/// Replays the fuzzer's seed corpus and every input it ever found (`fuzz/corpus`,
/// `fuzz/regressions`, see `fuzz/run.sh`) through the same checks as the fuzz target:
/// decoding the bytes and reading the file agree (same values and header, or the same
/// one-line error), and a decoded array survives an encode/decode round trip.
@Suite("NPY fuzz corpus")
struct NPYFuzzCorpusTests {
    /// The repository's `fuzz/` folder, found from this file's path.
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func inputs() -> [URL] {
        ["corpus", "regressions"].flatMap { folder -> [URL] in
            let dir = fuzzDirectory.appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.sorted().map { dir.appendingPathComponent($0) }
        }
    }

    @Test("the seed corpus is there and holds valid and invalid files")
    func corpusExists() throws {
        let corpus = Self.inputs().filter { $0.path.contains("/corpus/") }
        #expect(corpus.count >= 10)
        let decoded = try corpus.filter { (try? NPY.decode(try Data(contentsOf: $0))) != nil }
        #expect(decoded.count >= 9 && decoded.count < corpus.count)
    }

    @Test("every corpus and regression input: decode and read agree, round trip holds")
    func replay() throws {
        for url in Self.inputs() {
            let bytes = try Data(contentsOf: url)
            let decoded = Result { () throws(NPYError) in try NPY.decodeWithInfo(bytes) }
            let read = Result { () throws(NPYError) in try NPY.readWithInfo(contentsOf: url) }
            switch (decoded, read) {
            case let (.success(a), .success(b)):
                #expect(a.header == b.header && a.tensor.isBitIdentical(to: b.tensor), "\(url.lastPathComponent)")
                #expect(a.tensor.count == a.header.count, "\(url.lastPathComponent)")
                let again = try NPY.decode(NPY.encode(a.tensor))
                #expect(again.isBitIdentical(to: a.tensor), "\(url.lastPathComponent)")
            case let (.failure(a), .failure(b)):
                #expect(a == b, "\(url.lastPathComponent)")
                #expect(!a.description.contains("\n"), "\(url.lastPathComponent)")
            default:
                Issue.record("\(url.lastPathComponent): decode gave \(decoded), read gave \(read)")
            }
        }
    }
}
