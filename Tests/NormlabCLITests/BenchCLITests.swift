import Foundation
import Testing

// `normlab bench` end to end through the real binary. Nothing about timings is asserted
// (machines are noisy): only that the run completes, checks pass and the JSON has the
// documented records.
@Suite("normlab bench (subprocess)", .serialized)
struct BenchCLITests {
    @Test("--quick --json: one record per op for bn at one shape and one thread count, with the documented fields")
    func quickJSON() throws {
        let run = try normlab(["bench", "--quick", "--quiet", "--methods", "bn", "--shapes", "4x8x8x8", "--threads", "1", "--json"])
        #expect(run.succeeded, "\(run)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run)")
        let records = try #require(json["records"] as? [[String: Any]])
        #expect(records.count == 3)
        #expect(Set(records.compactMap { $0["op"] as? String }) == ["train_fwd", "eval_fwd", "backward"])
        for r in records {
            #expect(r["method"] as? String == "batch_norm")
            #expect(r["shape"] as? [Int] == [4, 8, 8, 8])
            #expect(r["threads"] as? Int == 1)
            for key in ["ms_median", "gbps", "pct_of_copy"] {
                let v = try #require(r[key] as? Double, "\(key) in \(r)")
                #expect(v > 0 && v.isFinite, "\(key) = \(v)")
            }
            // A number when numpy is available, null when it is not: present either way.
            #expect(r.keys.contains("speedup_vs_numpy"))
            #expect((r["check"] as? String)?.hasPrefix("ok") == true, "\(r)")
        }
        let stream = try #require(json["stream"] as? [[String: Any]])
        #expect(Set(stream.compactMap { $0["kernel"] as? String }) == ["copy", "triad"])
        #expect(json["targets"] is [[String: Any]] && json["machine"] is [String: Any])
    }

    @Test("The table names the method, the STREAM results and the targets")
    func quickTable() throws {
        let run = try normlab(["bench", "--quick", "--quiet", "--methods", "ln", "--shapes", "4x8x8", "--threads", "1,2", "--no-numpy"])
        #expect(run.succeeded, "\(run)")
        #expect(run.stdout.contains("layer_norm") && run.stdout.contains("STREAM") && run.stdout.contains("Targets:"))
        #expect(run.stdout.split(separator: "\n").filter { $0.hasPrefix("layer_norm") }.count == 6)
    }

    @Test("--rounds 2: every op's samples come from both rounds (the logged order interleaves the methods)")
    func rounds() throws {
        let run = try normlab(["bench", "--quick", "--methods", "ln,bn", "--shapes", "4x8x8", "--threads", "1",
                               "--no-numpy", "--rounds", "2", "--json"])
        #expect(run.succeeded, "\(run)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run)")
        #expect(json["rounds"] as? Int == 2)
        let records = try #require(json["records"] as? [[String: Any]])
        #expect(records.count == 6)
        // --quick: at least 3 calls per op, now split over 2 rounds of 2.
        #expect(records.allSatisfy { ($0["reps"] as? Int ?? 0) >= 4 }, "\(records)")
        let timed = run.stderrLines.filter { $0.contains(", round ") }
        #expect(timed.count == 12, "\(run.stderr)")
        // Round 1 times both methods before round 2 starts.
        #expect(timed.prefix(6).allSatisfy { $0.hasSuffix("round 1/2") } && timed.suffix(6).allSatisfy { $0.hasSuffix("round 2/2") })
        #expect(Set(timed.prefix(6).map { $0.contains("layer_norm") }) == [true, false])
    }

    @Test("--save-json writes the JSON report of the run whose table is printed")
    func saveJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("normlab-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bench.json")
        let run = try normlab(["bench", "--quick", "--quiet", "--methods", "ln", "--shapes", "4x8x8", "--threads", "1",
                               "--no-numpy", "--save-json", file.path])
        #expect(run.succeeded, "\(run)")
        #expect(run.stdout.contains("Targets:"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        let records = json?["records"] as? [[String: Any]] ?? []
        #expect(records.count == 3 && records.allSatisfy { $0["method"] as? String == "layer_norm" })
        // Each record's time appears in the printed table (same run, not a second one).
        for r in records {
            let ms = try #require(r["ms_median"] as? Double)
            let shown = String(format: ms >= 100 ? "%.1f" : ms >= 1 ? "%.3f" : "%.4f", ms)
            #expect(run.stdout.contains(shown), "\(shown) ms not in the table")
        }
    }

    @Test("--save-json into a missing directory fails before running, in one line")
    func saveJSONMissingDirectory() throws {
        let run = try normlab(["bench", "--quick", "--quiet", "--methods", "ln", "--save-json", "/no/such/dir/bench.json"])
        #expect(!run.succeeded)
        #expect(run.stderrLines.count == 1 && run.stderrLines[0].contains("/no/such/dir"), "\(run)")
        #expect(run.stdout.isEmpty)
    }

    @Test("Bad selections are one line on stderr and a non-zero exit", arguments: [
        ["--shapes", "32x"], ["--threads", "0"], ["--methods", "no_such_norm"], ["--rounds", "0"], ["--rounds", "x"],
    ])
    func badArguments(args: [String]) throws {
        let run = try normlab(["bench", "--quick", "--quiet"] + args)
        #expect(!run.succeeded)
        #expect(run.stderrLines.count == 1 && run.stderrLines[0].hasPrefix("normlab: error:"), "\(run)")
        #expect(run.stdout.isEmpty)
    }
}
