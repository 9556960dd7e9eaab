import Foundation
import Testing

// End-to-end tests of `normlab ablate` with the fake runner (`--runner fake`: deterministic
// metrics, no training), including a study killed with SIGKILL and resumed.

/// Runs `normlab args` in `directory` with extra environment variables.
private func ablate(_ args: [String], in directory: String, env: [String: String] = [:]) throws -> CLIRun {
    let process = try startNormlab(args, in: directory, env: env)
    return process.finish()
}

private final class RunningProcess {
    let process: Process
    private let out = Pipe(), err = Pipe()
    private let group = DispatchGroup()
    private let outBox = Box(), errBox = Box()

    init(_ process: Process) {
        self.process = process
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
    }

    func start() throws {
        try process.run()
        let (o, e, ob, eb) = (out, err, outBox, errBox)
        DispatchQueue.global().async(group: group) { ob.data = o.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { eb.data = e.fileHandleForReading.readDataToEndOfFile() }
    }

    func finish() -> CLIRun {
        process.waitUntilExit()
        group.wait()
        return CLIRun(status: process.terminationStatus, reason: process.terminationReason,
                      stdout: String(decoding: outBox.data, as: UTF8.self), stderr: String(decoding: errBox.data, as: UTF8.self))
    }

    final class Box: @unchecked Sendable { var data = Data() }
}

private func startNormlab(_ args: [String], in directory: String, env: [String: String] = [:]) throws -> RunningProcess {
    let process = Process()
    process.executableURL = try normlabBinary.get()
    process.arguments = args
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let running = RunningProcess(process)
    try running.start()
    return running
}

/// Stored runs according to `normlab ablate status` (`runs: K/N stored`).
private func storedRuns(store: String, in directory: String) throws -> (stored: Int, total: Int)? {
    let run = try ablate(["ablate", "status", "--store", store], in: directory)
    guard run.succeeded, let line = run.stdout.split(separator: "\n").first(where: { $0.contains("runs: ") }) else { return nil }
    let text = line.split(separator: " ").first { $0.contains("/") }!
    let parts = text.split(separator: "/")
    return (Int(parts[0])!, Int(parts[1])!)
}

private let studyYAML = """
    name: cli
    base:
      model: {depth: 2, width: 8, norm: {name: bn, options: {}}}
      optimizer: {lr: 0.1, momentum: 0.9}
      batch_size: 8
      epochs: 3
    grid:
      model.norm.name: [bn, gn]
      zip:
        - batch_size: [2, 32]
          optimizer.lr: [0.01, 0.1]
      model.width: [8, 16]
    seeds: 3
    report:
      columns: [batch_size]
      metrics: [test_accuracy]
    """

/// The repository's presets folder.
private let repoPresetsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("presets").path

@Suite(.serialized) struct AblateCLITests {
    @Test func presetsAreListed() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        let run = try ablate(["ablate", "presets"], in: dir.url.path)
        #expect(run.succeeded, "\(run)")
        let names = run.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        // every presets/*.yaml, sorted
        let files = try FileManager.default.contentsOfDirectory(atPath: repoPresetsDirectory)
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
        #expect(names == files && names.contains("freeze") && names.contains("zoo") && names.count >= 10)
        #expect(run.stdout.contains("BN freezing"))
    }

    @Test func presetsFolderCanBeOverridden() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try FileManager.default.createDirectory(atPath: dir.path("mine"), withIntermediateDirectories: true)
        try "name: mine\ndescription: My own preset.\nbase: {epochs: 1}\n".write(toFile: dir.path("mine/mine.yaml"), atomically: true, encoding: .utf8)
        let run = try ablate(["ablate", "presets"], in: dir.url.path, env: ["NORMLAB_PRESETS_DIR": dir.path("mine")])
        #expect(run.succeeded && run.stdout == "mine  My own preset.\n", "\(run)")
        let go = try ablate(["ablate", "--preset", "mine", "--runner", "fake", "--no-report"], in: dir.url.path, env: ["NORMLAB_PRESETS_DIR": dir.path("mine")])
        #expect(go.succeeded && FileManager.default.fileExists(atPath: dir.path("results/mine.sqlite")), "\(go)")
    }

    @Test func freezeQuickPresetEndToEnd() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        let run = try ablate(["ablate", "--preset", "freeze", "--quick", "--runner", "fake", "--jobs", "2"], in: dir.url.path)
        #expect(run.succeeded, "\(run)")
        #expect(run.stdout.contains("| frozen_stages | norm_eval | requires_grad | steps=150 · test_accuracy |"))
        #expect(run.stdout.contains("16 of 16 runs stored"))
        #expect(run.stdout.contains("notebook: results/freeze-quick-report/freeze-quick.ipynb"))
        #expect(run.stderr.contains("[16/16]"))
        for f in ["results/freeze-quick.sqlite", "results/freeze-quick-report/table.md", "results/freeze-quick-report/table.csv",
                  "results/freeze-quick-report/table.json", "results/freeze-quick-report/figures/accuracy.png",
                  "results/freeze-quick-report/figures/accuracy.svg", "results/freeze-quick-report/freeze-quick.ipynb"] {
            #expect(FileManager.default.fileExists(atPath: dir.path(f)), "\(f)")
        }
        // again: nothing to run
        let again = try ablate(["ablate", "--preset", "freeze", "--quick", "--runner", "fake", "--no-report"], in: dir.url.path)
        #expect(again.succeeded && again.stderr.contains("16 already stored, 0 to run"), "\(again)")
        // a report in every format, and a notebook
        let json = try ablate(["ablate", "report", "--preset", "freeze", "--quick", "--format", "json", "--no-plots"], in: dir.url.path)
        #expect(json.succeeded)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["study"] as? String == "freeze-quick")
        let csv = try ablate(["ablate", "report", "--store", "results/freeze-quick.sqlite", "--format", "csv", "--notebook", "nb/freeze.ipynb"], in: dir.url.path)
        #expect(csv.succeeded, "\(csv)")
        #expect(csv.stdout.hasPrefix("study,cell,cell_hash,frozen_stages,norm_eval,requires_grad,steps,metric,mean,std"))
        #expect(FileManager.default.fileExists(atPath: dir.path("nb/freeze.ipynb")) && FileManager.default.fileExists(atPath: dir.path("nb/freeze.csv")))
    }

    @Test func aStudyKilledWithSIGKILLResumesWithoutLossOrDuplicates() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try studyYAML.write(toFile: dir.path("study.yaml"), atomically: true, encoding: .utf8)
        let args = ["ablate", "study.yaml", "--runner", "fake", "--store", "s.sqlite", "--jobs", "2", "--no-report"]
        let running = try startNormlab(args, in: dir.url.path, env: ["NORMLAB_FAKE_SLEEP": "1.5"])   // 24 runs ≈ 18 s: time to kill it midway even on a loaded machine
        // wait until some runs are stored, then kill -9 in the middle of the study
        var before = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let s = try storedRuns(store: "s.sqlite", in: dir.url.path), s.stored >= 6 { before = s.stored; break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(running.process.processIdentifier, SIGKILL)
        let killed = running.finish()
        #expect(killed.reason == .uncaughtSignal, "\(killed)")
        let after = try #require(try storedRuns(store: "s.sqlite", in: dir.url.path))
        #expect(after.total == 24)
        #expect(after.stored >= before && after.stored < 24)
        // the same command runs only what is missing
        let resumed = try ablate(args, in: dir.url.path)
        #expect(resumed.succeeded, "\(resumed)")
        #expect(resumed.stderr.contains("\(after.stored) already stored, \(24 - after.stored) to run"), "\(resumed.stderr)")
        #expect(try storedRuns(store: "s.sqlite", in: dir.url.path)?.stored == 24)
        // exactly one row per (cell, seed), and the same numbers as an uninterrupted study
        let report = try ablate(["ablate", "report", "--store", "s.sqlite", "--format", "csv", "--no-plots"], in: dir.url.path)
        #expect(report.succeeded)
        let runsCSV = try String(contentsOfFile: dir.path("s-report/runs.csv"), encoding: .utf8).split(separator: "\n")
        #expect(runsCSV.count == 1 + 24)
        let keys = runsCSV.dropFirst().map { line -> String in
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            return "\(f[2]) \(f[7])"   // cell_hash, seed (the zip value is quoted with a comma)
        }
        #expect(Set(keys).count == 24)
        let clean = try ablate(["ablate", "study.yaml", "--runner", "fake", "--store", "clean.sqlite", "--no-report"], in: dir.url.path)
        #expect(clean.succeeded)
        let cleanReport = try ablate(["ablate", "report", "--store", "clean.sqlite", "--format", "csv", "--no-plots"], in: dir.url.path)
        #expect(cleanReport.stdout == report.stdout)
    }

    @Test func aCrashingRunnerLeavesTheCompletedRuns() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try studyYAML.write(toFile: dir.path("study.yaml"), atomically: true, encoding: .utf8)
        let args = ["ablate", "study.yaml", "--runner", "fake", "--no-report"]
        let crashed = try ablate(args, in: dir.url.path, env: ["NORMLAB_FAKE_EXIT_AFTER": "5"])
        #expect(crashed.status == 75, "\(crashed)")
        #expect(try storedRuns(store: "results/cli.sqlite", in: dir.url.path)?.stored == 5)
        let status = try ablate(["ablate", "status", "study.yaml"], in: dir.url.path)
        #expect(status.stdout.contains("runs: 5/24 stored"), "\(status)")
        #expect(status.stdout.contains("missing: cell 1"))
        let resumed = try ablate(args, in: dir.url.path)
        #expect(resumed.succeeded && resumed.stderr.contains("5 already stored, 19 to run"), "\(resumed)")
    }

    @Test func shardsMergeIntoTheSameTable() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try studyYAML.write(toFile: dir.path("study.yaml"), atomically: true, encoding: .utf8)
        for i in 1...2 {
            let run = try ablate(["ablate", "study.yaml", "--runner", "fake", "--shard", "\(i)/2"], in: dir.url.path)
            #expect(run.succeeded, "\(run)")
            #expect(run.stdout.contains("shard \(i)/2: 12/12 runs stored in results/cli.shard-\(i)-of-2.sqlite"))
        }
        let merge = try ablate(["ablate", "merge", "results/cli.shard-1-of-2.sqlite", "results/cli.shard-2-of-2.sqlite", "--into", "results/cli.sqlite"], in: dir.url.path)
        #expect(merge.succeeded && merge.stdout.contains("24 runs added"), "\(merge)")
        let merged = try ablate(["ablate", "report", "study.yaml", "--format", "csv", "--no-plots"], in: dir.url.path)
        let one = try ablate(["ablate", "study.yaml", "--runner", "fake", "--store", "one.sqlite", "--no-report"], in: dir.url.path)
        #expect(one.succeeded)
        let single = try ablate(["ablate", "report", "--store", "one.sqlite", "--format", "csv", "--no-plots"], in: dir.url.path)
        #expect(merged.succeeded && merged.stdout == single.stdout && merged.stdout.split(separator: "\n").count == 9)
    }

    @Test func claimsOnlyRunsTheClaimsCells() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        // 8 cells × 3 seeds; the claim compares BN at B = 2 and 32, width 8
        let claim = "claims:\n  - {name: bn loses at batch 2, metric: test_accuracy, compare: {norm.name: bn, batch_size: 2, width: 8}, against: {norm.name: bn, batch_size: 32, width: 8}, expect: less}\n"
        try (studyYAML + "\n" + claim).write(toFile: dir.path("claims.yaml"), atomically: true, encoding: .utf8)
        let plan = try ablate(["ablate", "claims.yaml", "--runner", "fake", "--claims-only", "--dry-run"], in: dir.url.path)
        #expect(plan.succeeded && plan.stdout.contains("the claims' 2 cells: 6 runs (before seed rounds)"), "\(plan)")
        #expect(plan.stdout.split(separator: "\n").filter { $0.hasPrefix("  cell ") }.count == 2)
        let run = try ablate(["ablate", "claims.yaml", "--runner", "fake", "--claims-only"], in: dir.url.path)
        #expect(run.succeeded && run.stderr.contains("0 already stored, 6 to run") && run.stdout.contains("6 of 24 runs stored"), "\(run)")
        let report = try ablate(["ablate", "report", "--store", "results/cli.sqlite", "--format", "json", "--no-plots"], in: dir.url.path)
        let object = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any]
        let claims = object?["claims"] as? [[String: Any]] ?? []
        #expect(claims.count == 1 && claims[0]["verdict"] is String, "\(report.stdout.prefix(400))")
        // a study without claims: one line, nothing written
        try studyYAML.write(toFile: dir.path("study.yaml"), atomically: true, encoding: .utf8)
        let none = try ablate(["ablate", "study.yaml", "--runner", "fake", "--claims-only", "--store", "none.sqlite"], in: dir.url.path)
        #expect(none.status == 1 && none.stderrLines == ["normlab: error: --claims-only: study 'cli' declares no claims; run it without --claims-only"], "\(none)")
        #expect(!FileManager.default.fileExists(atPath: dir.path("none.sqlite")))
    }

    @Test func specProblemsArePrintedOneLineEachAndNothingRuns() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        let bad = studyYAML.replacingOccurrences(of: "model.width: [8, 16]", with: "model.width: []")
        try bad.write(toFile: dir.path("bad.yaml"), atomically: true, encoding: .utf8)
        let run = try ablate(["ablate", "bad.yaml", "--runner", "fake"], in: dir.url.path)
        #expect(run.status == 1)
        #expect(run.stderr.contains("normlab: error: bad.yaml:12: grid.model.width: has no values"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path("results")))
        // a runner problem (after the structure is fine) names the base path
        try studyYAML.replacingOccurrences(of: "epochs: 3", with: "epochs: 0").write(toFile: dir.path("bad2.yaml"), atomically: true, encoding: .utf8)
        let run2 = try ablate(["ablate", "bad2.yaml", "--runner", "fake"], in: dir.url.path)
        #expect(run2.status == 1)
        #expect(run2.stderrLines == ["normlab: error: bad2.yaml:6: base.epochs: must be a positive integer, got 0"], "\(run2)")
    }

    @Test func aStoreRefusesADifferentSpecUnderTheSameName() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try studyYAML.write(toFile: dir.path("a.yaml"), atomically: true, encoding: .utf8)
        try studyYAML.replacingOccurrences(of: "momentum: 0.9", with: "momentum: 0.8").write(toFile: dir.path("b.yaml"), atomically: true, encoding: .utf8)
        #expect(try ablate(["ablate", "a.yaml", "--runner", "fake", "--no-report"], in: dir.url.path).succeeded)
        let run = try ablate(["ablate", "b.yaml", "--runner", "fake", "--no-report"], in: dir.url.path)
        #expect(run.status == 1)
        #expect(run.stderrLines.count == 1)
        #expect(run.stderr.contains("holds study 'cli' from a different spec") && run.stderr.contains("base.optimizer.momentum"), "\(run)")
    }

    /// A report's runs.csv rebuilds the store on another machine: the study resumes with only
    /// the missing runs and reports the same table; every bad input is one line and exit 1.
    @Test func importRebuildsAStoreFromAnExportedRunsTable() throws {
        let dir = try Scratch(); defer { dir.cleanUp() }
        try studyYAML.write(toFile: dir.path("study.yaml"), atomically: true, encoding: .utf8)
        #expect(try ablate(["ablate", "study.yaml", "--runner", "fake", "--store", "old.sqlite", "--out", "old-report"], in: dir.url.path).succeeded)
        let table = try ablate(["ablate", "report", "--store", "old.sqlite", "--format", "csv", "--no-plots"], in: dir.url.path)
        // keep the header and the first 10 runs: the rest is "lost"
        let runs = try String(contentsOfFile: dir.path("old-report/runs.csv"), encoding: .utf8)
        try (runs.split(separator: "\n").prefix(11).joined(separator: "\n") + "\n").write(toFile: dir.path("part.csv"), atomically: true, encoding: .utf8)
        let imported = try ablate(["ablate", "import", "part.csv", "study.yaml"], in: dir.url.path)
        #expect(imported.succeeded && imported.stdout == "imported 10 runs of study cli from part.csv into results/cli.sqlite\n", "\(imported)")
        let again = try ablate(["ablate", "import", "part.csv", "study.yaml"], in: dir.url.path)
        #expect(again.succeeded && again.stdout.contains("imported 0 runs") && again.stdout.contains("10 already stored with the same metrics"), "\(again)")
        let resumed = try ablate(["ablate", "study.yaml", "--runner", "fake", "--no-report"], in: dir.url.path)
        #expect(resumed.succeeded && resumed.stderr.contains("10 already stored, 14 to run"), "\(resumed)")
        let rebuilt = try ablate(["ablate", "report", "study.yaml", "--format", "csv", "--no-plots"], in: dir.url.path)
        #expect(rebuilt.succeeded && rebuilt.stdout == table.stdout && table.succeeded, "\(rebuilt)")

        try studyYAML.replacingOccurrences(of: "momentum: 0.9", with: "momentum: 0.8").write(toFile: dir.path("changed.yaml"), atomically: true, encoding: .utf8)
        try "a,b\n1,2\n".write(toFile: dir.path("other.csv"), atomically: true, encoding: .utf8)
        let failures: [([String], String)] = [
            (["ablate", "import", "part.csv"], "give the study's spec file or --preset NAME"),
            (["ablate", "import", "missing.csv", "study.yaml"], "cannot read missing.csv"),
            (["ablate", "import", "other.csv", "study.yaml"], "other.csv: not a normlab runs table (no column 'study'"),
            (["ablate", "import", "part.csv", "changed.yaml", "--store", "new.sqlite"], "the spec changed since the export"),
            (["ablate", "import", "part.csv", "study.yaml", "--preset", "freeze"], "give a spec file or --preset, not both"),
            (["ablate", "import", "part.csv", "--preset", "no-such-preset"], "no-such-preset"),
        ]
        for (args, fragment) in failures {
            let run = try ablate(args, in: dir.url.path)
            #expect(run.status == 1 && run.stderrLines.count == 1 && run.stderr.contains(fragment), "\(args): \(run)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("new.sqlite")))
        // another study's store takes the table only with --add-study
        try studyYAML.replacingOccurrences(of: "name: cli", with: "name: other").write(toFile: dir.path("other.yaml"), atomically: true, encoding: .utf8)
        #expect(try ablate(["ablate", "other.yaml", "--runner", "fake", "--store", "o.sqlite", "--no-report"], in: dir.url.path).succeeded)
        let refused = try ablate(["ablate", "import", "part.csv", "study.yaml", "--store", "o.sqlite"], in: dir.url.path)
        #expect(refused.status == 1 && refused.stderr.contains("--add-study"), "\(refused)")
        let added = try ablate(["ablate", "import", "part.csv", "study.yaml", "--store", "o.sqlite", "--add-study"], in: dir.url.path)
        #expect(added.succeeded && added.stdout.contains("0 runs") && added.stdout.contains("10 already stored"), "\(added)")
    }
}
