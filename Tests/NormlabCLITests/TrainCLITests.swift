import Foundation
import Testing
import NormCore

/// End-to-end `normlab train` on the synthetic data set (small and fast).
@Suite(.serialized) struct TrainCLITests {
    func object(_ run: CLIRun) throws -> [String: Any] {
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 1, "stdout must be one JSON object on one line")
        return try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    }

    @Test func jsonRunIsCompleteAndDeterministic() throws {
        let args = ["train", "--dataset", "synthetic", "--steps", "30", "--json", "--threads", "2", "--seed", "3",
                    "--width", "8", "--depth", "2"]
        let a = try normlab(args), b = try normlab(args)
        #expect(a.succeeded, "\(a)")
        #expect(b.succeeded, "\(b)")
        var ja = try object(a), jb = try object(b)
        for key in ["test_accuracy", "train_loss", "steps", "seconds", "diverged", "norm_telemetry", "test_accuracy_train_mode",
                    "train_eval_accuracy_gap"] {
            #expect(ja[key] != nil, "missing \(key)")
        }
        #expect(ja["steps"] as? Int == 30 && ja["diverged"] as? Bool == false && ja["norm"] as? String == "batch_norm")
        #expect((ja["test_accuracy"] as? Double ?? 0) > 0.5)
        let telemetry = try #require(ja["norm_telemetry"] as? [[String: Any]])
        #expect(telemetry.count == 2 && telemetry.allSatisfy { ($0["recorded_steps"] as? Int) == 30 })
        // Everything but the wall-clock time is identical.
        ja["seconds"] = nil; jb["seconds"] = nil
        let sa = try JSONSerialization.data(withJSONObject: ja, options: .sortedKeys)
        let sb = try JSONSerialization.data(withJSONObject: jb, options: .sortedKeys)
        #expect(sa == sb)
        let strip = { (s: String) in s.replacingOccurrences(of: #""seconds": [0-9.e+-]+"#, with: "", options: .regularExpression) }
        #expect(strip(a.stdout) == strip(b.stdout))
    }

    @Test func everyOptionParses() throws {
        let r = try normlab(["train", "--dataset", "synthetic", "--steps", "4", "--json", "--threads", "1", "--norm", "gn",
                             "--norm-set", "num_groups=2", "--norm-set", "eps=1e-4", "--depth", "2", "--width", "4", "--kernel", "5",
                             "--norm-position", "after", "--conv-bias", "--lr", "0.01", "--momentum", "0.5", "--weight-decay", "0",
                             "--no-nesterov", "--schedule", "step", "--warmup-steps", "2", "--batch-size", "16", "--frozen-stages", "0",
                             "--activation", "sigmoid", "--head", "flatten", "--downsample", "strided"])
        #expect(r.succeeded, "\(r)")
        let j = try object(r)
        #expect(j["norm"] as? String == "group_norm" && j["batch_size"] as? Int == 16 && j["schedule"] as? String == "step")
        let model = try #require(j["model"] as? [String: Any])
        #expect(model["norm_position"] as? String == "after" && model["conv_bias"] as? Bool == true && model["kernel"] as? Int == 5)
    }

    @Test func inferenceStatisticsAndDiagnosticsAreReported() throws {
        let base = ["train", "--dataset", "synthetic", "--steps", "6", "--json", "--threads", "1", "--width", "4", "--depth", "2",
                    "--batch-size", "16", "--conv-bias"]
        let last = try object(try normlab(base + ["--inference-stats", "last_batches", "--inference-batches", "3"]))
        let info = try #require(last["inference_statistics"] as? [String: Any])
        #expect(info["estimator"] as? String == "last_batches" && info["batches_used"] as? Int == 3)
        #expect((info["updated"] as? [String])?.count == 2)
        let precise = try object(try normlab(base + ["--precise-bn", "2"]))
        #expect((precise["inference_statistics"] as? [String: Any])?["estimator"] as? String == "precise")
        let ema = try object(try normlab(base))
        #expect((ema["inference_statistics"] as? [String: Any])?["estimator"] as? String == "ema")
        // same training, different statistics: identical train loss, different eval accuracy inputs
        #expect(ema["train_loss"] as? Double == last["train_loss"] as? Double)
        #expect((ema["conv_bias_grad_rms"] as? Double ?? 1) < 1e-6)
        #expect((ema["weight_norm_final"] as? Double ?? 0) > 0 && (ema["weight_norm_initial"] as? Double ?? 0) > 0)
        let running = try normlab(base + ["--norm-set", "train_statistics=running"])
        #expect(running.succeeded, "\(running)")
        let warm = try normlab(base + ["--norm", "brn", "--renorm-hold", "2", "--renorm-ramp", "3"])
        #expect(warm.succeeded, "\(warm)")
        let badWarm = try normlab(base + ["--norm", "brn", "--renorm-hold", "-1"])
        #expect(!badWarm.succeeded && badWarm.stderrLines.count == 1, "\(badWarm)")
    }

    @Test func divergedRunExitsZero() throws {
        let r = try normlab(["train", "--dataset", "synthetic", "--steps", "20", "--json", "--threads", "1", "--norm", "none",
                             "--lr", "1e30", "--width", "4", "--depth", "1"])
        #expect(r.succeeded, "\(r)")
        let j = try object(r)
        #expect(j["diverged"] as? Bool == true)
        #expect(j["diverged_at_step"] as? Int != nil)
        let text = try normlab(["train", "--dataset", "synthetic", "--steps", "20", "--threads", "1", "--norm", "none",
                                "--lr", "1e30", "--width", "4", "--depth", "1", "--quiet"])
        #expect(text.succeeded && text.stdout.contains("DIVERGED"), "\(text)")
    }

    @Test func badInvocationsAreOneLineErrors() throws {
        for args in [["train", "--dataset", "synthetic", "--norm", "gn", "--steps", "2"],
                     ["train", "--dataset", "synthetic", "--norm", "nope", "--steps", "2"],
                     ["train", "--dataset", "synthetic", "--epochs", "1", "--steps", "2"],
                     ["train", "--dataset", "synthetic", "--norm", "gn", "--norm-set", "num_groups=3", "--steps", "2"],
                     ["train", "--dataset", "synthetic", "--norm", "ln", "--norm-eval", "--steps", "2"],
                     ["train", "--dataset", "synthetic", "--steps", "2", "--inference-stats", "median"],
                     ["train", "--dataset", "synthetic", "--steps", "2", "--inference-stats", "precise", "--inference-batches", "0"],
                     ["train", "--dataset", "synthetic", "--steps", "2", "--inference-stats", "precise", "--precise-bn", "3"],
                     ["train", "--dataset", "synthetic", "--steps", "2", "--norm-set", "train_statistics=running",
                      "--norm-set", "track_running_stats=false"]] {
            let r = try normlab(args)
            #expect(r.reason == .exit && r.status != 0, "\(args): \(r)")
            #expect(r.stderrLines.count == 1 && r.stderr.hasPrefix("normlab: error:"), "\(args): \(r)")
            #expect(r.stdout.isEmpty)
        }
        let gn = try normlab(["train", "--dataset", "synthetic", "--norm", "gn", "--steps", "2"])
        #expect(gn.stderr.contains("--norm-set num_groups="))
    }

    @Test func checkpointSaveAndInit() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let file = scratch.path("model.npz")
        let base = ["train", "--dataset", "synthetic", "--threads", "1", "--width", "4", "--depth", "2", "--json"]
        let pre = try normlab(base + ["--steps", "6", "--save", file])
        #expect(pre.succeeded, "\(pre)")
        #expect(FileManager.default.fileExists(atPath: file))
        let tune = try normlab(base + ["--steps", "3", "--init-from", file, "--frozen-stages", "0"])
        #expect(tune.succeeded, "\(tune)")
        let bad = try normlab(base + ["--steps", "3", "--init-from", file, "--width", "6"])
        #expect(!bad.succeeded && bad.stderr.contains("checkpoint does not match"))
    }
}
