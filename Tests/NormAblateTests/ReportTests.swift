import Foundation
import NormCore
import NormNet
import Testing
@testable import NormAblate

/// Runs the small study into a fresh store and returns its report.
func smallReport(_ dir: TempDir, yaml: String = smallSpecYAML, runner: FakeRunner = FakeRunner()) throws -> AblationReport {
    let store = try ResultStore(path: dir.file("r.sqlite"))
    try AblationDriver(spec: try AblationSpec.parse(yaml: yaml, source: "r.yaml"), runner: runner, store: store).run()
    return try AblationReport.load(store: store)
}

@Suite struct ReportTableTests {
    @Test func markdownTableHasOneRowPerRowKeyAndMeanStdCounts() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let md = report.markdownTable()
        let lines = md.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 + 4)
        #expect(lines[0] == "| norm.name | width | batch_size+lr=2, 0.01 · test_accuracy | batch_size+lr=2, 0.01 · test_loss | batch_size+lr=32, 0.1 · test_accuracy | batch_size+lr=32, 0.1 · test_loss |")
        #expect(lines[1] == "|---|---|---:|---:|---:|---:|")
        #expect(lines[2].hasPrefix("| bn | 8 | "))
        #expect(lines[5].hasPrefix("| gn | 16 | "))
        let cellPattern = try Regex(#"\d\.\d{4} ± \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\] \(3\)"#)
        for line in lines[2...] {
            let fields = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            #expect(fields.count == 6)
            for f in fields[2...] { #expect(f.wholeMatch(of: cellPattern) != nil, "\(f)") }
        }
        // the numbers are the mean and sample std of the stored runs
        let cell = report.cells.first { $0.cell.config["model.norm.name"] == "gn" && $0.cell.config["model.width"] == .integer(16) && $0.cell.config["batch_size"] == .integer(32) }!
        let xs = cell.runs.map { $0.result.metrics["test_accuracy"]! }
        let mean = xs.reduce(0, +) / 3
        let std = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
        // and the 95 % Student t-interval: t(0.975, 2) = 4.302652729749462 (scipy)
        let half = 4.302652729749462 * std / 3.0.squareRoot()
        #expect(lines[5].contains(String(format: "%.4f ± %.4f [%.4f, %.4f] (3)", mean, std, mean - half, mean + half)))
        let full = report.markdown()
        #expect(full.hasPrefix("## small\n\nA test study.\n\n| norm.name |"))
        #expect(full.contains("24 of 24 runs stored"))
    }

    @Test func csvIsTidyWithOneLinePerCellAndMetric() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let lines = report.csv().split(separator: "\n").map(String.init)
        #expect(lines[0] == "study,cell,cell_hash,norm.name,batch_size+lr,width,metric,mean,std,n,runs,expected,diverged,min,max,ci_low,ci_high")
        #expect(lines.count == 1 + 8 * 2)
        #expect(lines[1].hasPrefix("small,0,\(report.cells[0].cell.hash),bn,\"2, 0.01\",8,test_accuracy,"))
        let m0 = report.cells[0].metrics["test_accuracy"]!
        #expect(lines[1].hasSuffix(",3,3,3,0," + AblationReport.csvNumber(m0.min) + "," + AblationReport.csvNumber(m0.max)
                                   + "," + AblationReport.csvNumber(m0.interval?.lower) + "," + AblationReport.csvNumber(m0.interval?.upper)))
        let mean = Double(lines[1].split(separator: ",")[8])!
        #expect(mean == report.cells[0].metrics["test_accuracy"]!.mean!)
        // runs.csv: one line per run with every metric and provenance
        let runs = report.runsCSV().split(separator: "\n").map(String.init)
        #expect(runs.count == 1 + 24)
        #expect(runs[0] == "study,cell,cell_hash,norm.name,batch_size+lr,width,seed,diverged,test_accuracy,test_loss,train_loss,dataset_hash,runner,threads,host,started_at,finished_at,duration_s,git_commit,git_dirty,normlab_version")
        #expect(runs[1].hasPrefix("small,0,\(report.cells[0].cell.hash),bn,\"2, 0.01\",8,0,false,"))
    }

    @Test func jsonHoldsCellsStatisticsLayoutAndProvenance() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let object = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        #expect(object["study"] as? String == "small")
        #expect(object["spec_hash"] as? String == report.spec.hash)
        #expect(object["metrics"] as? [String] == ["test_accuracy", "test_loss"])
        let cells = object["cells"] as! [[String: Any]]
        #expect(cells.count == 8)
        let m = (cells[0]["metrics"] as! [String: Any])["test_accuracy"] as! [String: Any]
        #expect(m["n"] as? Int == 3 && m["expected"] as? Int == 3 && m["diverged"] as? Int == 0)
        #expect((m["values"] as! [Double]).count == 3)
        // (Foundation's JSON parser may be 1 ulp off; the text itself is the shortest exact form)
        #expect(abs((m["mean"] as! Double) - report.cells[0].metrics["test_accuracy"]!.mean!) < 1e-15)
        #expect(report.json().contains("\"mean\": \(report.cells[0].metrics["test_accuracy"]!.mean!)"))
        let layout = object["layout"] as! [String: [String]]
        #expect(layout["rows"]! == ["model.norm.name", "model.width"] && layout["columns"]! == ["batch_size+optimizer.lr"])
        let runs = object["runs"] as! [String: Int]
        #expect(runs == ["expected": 24, "stored": 24, "diverged": 0])
        let provenance = object["provenance"] as! [String: String]
        #expect(provenance["runner"] == "fake" && provenance["normlab version"] == NormlabVersion.string)
        #expect((object["table"] as! [String: Any])["header"] as? [String] == report.grid.header)
    }

    @Test func divergedAndMissingRunsAreMarked() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let yaml = """
            name: div
            base: {optimizer: {lr: 0.1}, epochs: 2}
            grid:
              optimizer.lr: [0.1, 0.5, 2.0]
            seeds: 3
            """
        // stop after 5 runs: lr=0.1 complete, lr=0.5 with 2 of 3 seeds, lr=2.0 none
        let store = try ResultStore(path: dir.file("d.sqlite"))
        let spec = try AblationSpec.parse(yaml: yaml, source: "d")
        try AblationDriver(spec: spec, runner: FakeRunner(.init(failAfter: 5)), store: store).run()
        var report = try AblationReport.load(store: store)
        var rows = report.grid.rows
        #expect(rows[0][1].hasSuffix("(3)"))
        #expect(rows[1][1].hasSuffix("(2/3)"))
        #expect(rows[2][1] == "—")
        #expect(report.markdown().contains("5 of 9 runs stored"))
        // complete it: lr=2.0 diverges in every seed
        try AblationDriver(spec: spec, runner: FakeRunner(), store: store).run()
        report = try AblationReport.load(store: store)
        rows = report.grid.rows
        let accuracy = report.metrics.firstIndex(of: "test_accuracy")! + 1
        let loss = report.metrics.firstIndex(of: "test_loss")! + 1
        #expect(rows[2][loss] == "no finite value (0/3, 3† diverged)")
        #expect(rows[2][accuracy] == "no finite value (0/3, 3† diverged)")
        #expect(report.divergedRuns == 3)
        #expect(report.markdown().contains("† diverged runs (3) are excluded from mean and std"))
        #expect(report.csv().contains(",test_loss,,,0,3,3,3,,"))
        let object = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as! [String: Any]
        #expect((object["runs"] as! [String: Int])["diverged"] == 3)
    }

    @Test func noAxesAndNoReportSectionStillMakeATable() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir, yaml: "name: flat\nbase: {epochs: 2}\nseeds: 2")
        #expect(report.metrics == ["test_accuracy", "test_loss", "train_loss"])
        let lines = report.markdownTable().split(separator: "\n")
        #expect(lines[0] == "| cell | test_accuracy | test_loss | train_loss |")
        #expect(lines[2].hasPrefix("| all | "))
        #expect(report.plots.map(\.name) == ["test_accuracy-bar", "test_loss-bar", "train_loss-bar"])
    }
}

@Suite(.serialized) struct ReportFilesTests {
    @Test func figuresArePNGAndSVG() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let files = try report.write(to: dir.file("report"))
        #expect(files.figures.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted()
            == ["acc-curves.png", "acc-curves.svg", "test_accuracy-bar.png", "test_accuracy-bar.svg"])
        for f in files.figures {
            let data = try Data(contentsOf: URL(fileURLWithPath: f))
            #expect(data.count > 1000)
            if f.hasSuffix(".png") { #expect(Array(data.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) }
            if f.hasSuffix(".svg") { #expect(String(decoding: data.prefix(200), as: UTF8.self).contains("<svg") || String(decoding: data.prefix(100), as: UTF8.self).hasPrefix("<?xml")) }
        }
        for f in [files.markdown, files.csv, files.json, files.runsCSV] { #expect(FileManager.default.fileExists(atPath: f)) }
        #expect(try String(contentsOfFile: files.markdown, encoding: .utf8).contains("### Provenance"))
        // same data, same SVG
        let again = try report.renderFigures(to: dir.file("again"))
        let svg1 = try Data(contentsOf: URL(fileURLWithPath: files.figures.first { $0.hasSuffix("acc-curves.svg") }!))
        let svg2 = try Data(contentsOf: URL(fileURLWithPath: again.first { $0.hasSuffix("acc-curves.svg") }!))
        #expect(svg1 == svg2)
    }

    @Test func aPlotOfACurveTheRunnerDoesNotRecordIsASpecError() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let error = #expect(throws: SpecError.self) {
            try smallReport(dir, yaml: variant("name: acc-curves}", "name: acc-curves}\n    - {kind: curve, metric: test_loss}"))
        }
        #expect(error?.description.contains("records no per-epoch curve 'test_loss'") == true)
    }

    @Test func notebookValidatesWithNbformat() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let files = try report.write(to: dir.file("report"))
        let path = dir.file("nb/small.ipynb")
        let written = try report.writeNotebook(to: path, figures: files.figures)
        #expect(written == [path, dir.file("nb/small.csv"), dir.file("nb/small-runs.csv")])
        #expect(try String(contentsOfFile: dir.file("nb/small.csv"), encoding: .utf8) == report.csv())
        let (major, _, cells) = try ReportPython.validateNotebook(path)
        #expect(major == 4 && cells >= 8)
        let nb = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        let cellList = nb["cells"] as! [[String: Any]]
        let sources = cellList.map { c -> String in
            if let s = c["source"] as? String { return s }
            return (c["source"] as? [String])?.joined() ?? ""
        }
        #expect(sources.contains { $0.contains("## Spec") && $0.contains("model.norm.name: [bn, gn]") })
        #expect(sources.contains { $0.contains("## Provenance") && $0.contains("fake") })
        #expect(sources.contains { $0.contains("## Results") && $0.contains("| norm.name | width |") })
        #expect(cellList.contains { ($0["attachments"] as? [String: Any])?["test_accuracy-bar.png"] != nil })
        #expect(cellList.filter { $0["cell_type"] as? String == "code" }.count == 3)
        #expect(sources.contains { $0.contains("csv.DictReader(open(Path('small.csv')))") })
        // the system's python3 agrees (independently of the embedded interpreter), and the code cells run
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") {
            let script = """
                import json, nbformat, os, sys
                nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb)
                os.chdir(os.path.dirname(sys.argv[1]))
                import matplotlib; matplotlib.use("Agg")
                ns = {}
                for c in nb.cells:
                    if c.cell_type == "code": exec(c.source.replace("plt.show()", ""), ns)
                print(len(ns["table"]), len(ns["runs"]))
                """
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            p.arguments = ["-c", script, path]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(text)")
            #expect(text.hasSuffix("16 24\n"), "\(text)")
        }
    }

    @Test func specYAMLReadsBackAsTheSameSpec() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let yaml = report.specYAML
        #expect(yaml.contains("model.norm.name: [bn, gn]"))
        let again = try AblationSpec.parse(yaml: yaml, source: "yaml")
        #expect(again.hash == report.spec.hash)
        // strings that look like other types stay strings
        let tricky: ConfigValue = .map([("a", "true"), ("b", "1"), ("c", "x: y"), ("d", ""), ("e", .real(2.0)), ("f", .real(1e-5))])
        #expect(try YAMLTree(text: tricky.yaml, source: "t").root == tricky)
    }
}

@Suite struct ReportFolderTests {
    @Test func aReportFolderIsNeverSharedSilently() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        let report = try smallReport(dir)
        let out = dir.file("rep")
        _ = try report.write(to: out, figures: false)
        _ = try report.write(to: out, figures: false)        // the same study again: fine
        // another study (or store) into the same folder: refused
        let other = try AblationReport.load(store: try {
            let store = try ResultStore(path: dir.file("o.sqlite"))
            try AblationDriver(spec: try AblationSpec.parse(yaml: "name: other\nbase: {epochs: 2}", source: "o"), runner: FakeRunner(), store: store).run()
            return store
        }())
        #expect(throws: AblationError.self) { try other.write(to: out, figures: false) }
        // a folder with foreign table files: refused
        try FileManager.default.createDirectory(atPath: dir.file("foreign"), withIntermediateDirectories: true)
        try "x".write(toFile: dir.file("foreign/table.csv"), atomically: true, encoding: .utf8)
        #expect(throws: AblationError.self) { try report.write(to: dir.file("foreign"), figures: false) }
        #expect(StudyPaths.defaultReportDirectory(forStore: "results/freeze.sqlite") == "results/freeze-report")
        #expect(StudyPaths.defaultReportDirectory(forStore: "results/freeze.sqlite", study: "freeze") == "results/freeze-report")
        #expect(StudyPaths.defaultReportDirectory(forStore: "s.sqlite", study: "other") == "s-other-report")
    }
}

@Suite struct ProgressDisplayTests {
    @Test func plainLinesWhenNotATerminal() throws {
        let dir = try TempDir(); defer { dir.cleanUp() }
        final class Lines: @unchecked Sendable { var text = "" }
        let lines = Lines()
        let display = StudyProgressDisplay(isTerminal: false) { lines.text += $0 }
        let spec = try AblationSpec.parse(yaml: "name: p\nbase: {optimizer: {lr: 0.1}}\ngrid: {optimizer.lr: [0.1, 3.0]}\nseeds: 2", source: "p")
        try AblationDriver(spec: spec, runner: FakeRunner(), store: try ResultStore(path: dir.file("p.sqlite"))).run(observer: display)
        let out = lines.text.split(separator: "\n").map(String.init)
        #expect(out.first == "ablate p: 4 runs, 0 already stored, 4 to run with 1 job")
        #expect(out[1].hasPrefix("[1/4] cell ") && out[1].contains("seed 0 (lr=0.1)") && out[1].contains("test_accuracy="))
        #expect(out[3].contains("(lr=3) ") && out[3].contains("DIVERGED"))
        #expect(out.last?.hasPrefix("ablate p: ran 4 runs in ") == true)
        #expect(out.last?.contains(", 2 diverged; 4/4 runs stored in ") == true)
        #expect(!lines.text.contains("\r"))
    }
}
