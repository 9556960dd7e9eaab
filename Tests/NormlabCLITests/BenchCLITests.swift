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

    @Test("Bad selections are one line on stderr and a non-zero exit", arguments: [
        ["--shapes", "32x"], ["--threads", "0"], ["--methods", "no_such_norm"],
    ])
    func badArguments(args: [String]) throws {
        let run = try normlab(["bench", "--quick", "--quiet"] + args)
        #expect(!run.succeeded)
        #expect(run.stderrLines.count == 1 && run.stderrLines[0].hasPrefix("normlab: error:"), "\(run)")
        #expect(run.stdout.isEmpty)
    }
}
