import ArgumentParser
import Foundation
import NormAblate
import NormCore
import NormPython

/// `normlab ablate`: run a study from a YAML spec or a preset into a result store, and its
/// `status`, `report`, `merge` and `presets` subcommands. `normlab ablate SPEC` and
/// `normlab ablate --preset NAME` are `normlab ablate run …`.
struct AblateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ablate",
        abstract: "Run an ablation study (YAML spec or preset) into a crash-safe result store; report, merge, status.",
        discussion: """
            A spec has `base` (the configuration every cell starts from), `grid` (axes as dotted \
            paths, plus `zip` groups), `seeds` (a repeat dimension, or {min, max, until_ci_halfwidth}: \
            more seeds for the claims' cells until their effects are clear), `report` and `claims` \
            (each gets a verdict: supported, contradicted or inconclusive). Each (cell, seed) \
            runs once: rerunning the same command after a crash or kill runs only what is missing. \
            Results go to results/<spec name>.sqlite unless --store says otherwise.
            """,
        subcommands: [AblateRunCommand.self, AblateStatusCommand.self, AblateReportCommand.self,
                      AblateMergeCommand.self, AblateImportCommand.self, AblatePresetsCommand.self],
        defaultSubcommand: AblateRunCommand.self)
}

/// Which study: a spec file or a preset (optionally its quick variant), and the store.
struct StudySelection: ParsableArguments {
    @Argument(help: "The spec file (YAML).") var spec: String?
    @Option(help: "A preset instead of a spec file (see `normlab ablate presets`).") var preset: String?
    @Flag(help: "The spec's quick variant (its `quick` section; stored as <name>-quick); the same as --scale quick.") var quick = false
    @Option(help: ArgumentHelp("quick, full (default) or paper: the spec's `quick` section (smoke test), the spec itself, or its `paper` section (the larger form for a cluster; stored as <name>-paper).", valueName: "scale"))
    var scale: String?
    @Option(help: "The result store (SQLite; default results/<spec name>.sqlite).") var store: String?

    /// The spec, or nil when neither a file nor a preset was given.
    func loadSpec() throws -> AblationSpec? {
        if spec != nil && preset != nil { throw CLIError("give a spec file or --preset, not both") }
        var loaded: AblationSpec
        if let preset {
            loaded = try AblationPresets.load(preset)
        } else if let spec {
            loaded = try AblationSpec.load(path: spec)
        } else {
            if quick || scale != nil { throw CLIError("--\(quick ? "quick" : "scale") needs a spec file or --preset") }
            return nil
        }
        return try loaded.variant(try chosenScale())
    }

    /// `--scale`, or `quick` for `--quick`; the two must agree.
    func chosenScale() throws -> StudyScale {
        guard let scale else { return quick ? .quick : .full }
        guard let chosen = StudyScale(rawValue: scale) else {
            throw CLIError("--scale must be one of \(StudyScale.allCases.map(\.rawValue).joined(separator: ", ")), got '\(scale)'")
        }
        if quick && chosen != .quick { throw CLIError("--quick and --scale \(scale) contradict each other") }
        return chosen
    }

    /// The store path: --store, else the spec's default (nil when neither is known).
    func storePath(for spec: AblationSpec?, shard: Shard? = nil) -> String? {
        if let store { return store }
        return spec.map { StudyPaths.defaultStore(for: $0, shard: shard) }
    }
}

/// Runs `body`, printing every problem of a rejected spec as its own line.
func reportingSpecErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SpecError {
        for line in error.lines {
            FileHandle.standardError.write("normlab: error: \(line)\n".data(using: .utf8)!)
        }
        throw ExitCode(1)
    } catch let error as AblationError {
        throw CLIError(error.description)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
}

struct AblateRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every (cell, seed) of a study that has no stored result yet, then report.")

    @OptionGroup var selection: StudySelection
    @Option(help: "Runs in parallel (worker threads).") var jobs: Int = 1
    @Option(help: "Compute threads per run (default: cores / jobs); results depend only on it, not on --jobs.") var threads: Int?
    @Option(help: "Run only the i-th of n deterministic parts of the runs, e.g. 2/4 (each shard defaults to its own store).") var shard: String?
    @Flag(name: .customLong("add-study"), help: "Keep this spec as another study in a store that holds a different one.") var addStudy = false
    @Flag(name: .customLong("keep-going"), help: "Keep running the other runs after one fails.") var keepGoing = false
    @Flag(name: .customLong("claims-only"), help: "Run only the cells the spec's claims compare (and their seed rounds): the verdicts at a fraction of the cost, e.g. after a change of arithmetic.") var claimsOnly = false
    @Flag(name: .customLong("dry-run"), help: "Validate the spec and print the plan; run nothing.") var dryRun = false
    @Flag(name: .customLong("no-report"), help: "Do not write the report after a complete study.") var noReport = false
    @Option(help: "Report folder (default: <store>-report next to the store).") var out: String?
    @Option(help: ArgumentHelp("The cell runner (train, or fake for tests).", visibility: .hidden)) var runner: String = "train"
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        guard jobs >= 1 else { throw CLIError("--jobs must be at least 1, got \(jobs)") }
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1, got \(threads)") }
        try reportingSpecErrors {
            guard let spec = try selection.loadSpec() else {
                throw CLIError("give a spec file or --preset NAME (see `normlab ablate presets`)")
            }
            let shard = try shard.map { try Shard(parsing: $0) }
            let cellRunner = try makeRunner()
            let storePath = selection.storePath(for: spec, shard: shard)!
            if dryRun { return try printPlan(spec: spec, runner: cellRunner, storePath: storePath, shard: shard) }

            // Validate every cell before the store file exists: a bad spec leaves nothing behind.
            let cells = try spec.cells(validatingWith: cellRunner)
            try spec.validateClaims(cells: cells, runner: cellRunner)
            if claimsOnly { _ = try RunPlan(spec: spec, cells: cells).claimsCells() }
            let store = try ResultStore(path: storePath)
            let options = DriverOptions(jobs: jobs, threads: threads, shard: shard, keepGoing: keepGoing, addStudy: addStudy, claimsOnly: claimsOnly)
            let driver = AblationDriver(spec: spec, runner: cellRunner, store: store, options: options)
            Interrupt.setMessage("normlab: interrupted (Ctrl-C); every finished run is stored in \(storePath) — rerun the same command to continue")
            let summary = try driver.run(observer: StudyProgressDisplay())
            if !summary.failures.isEmpty {
                for f in summary.failures.prefix(5) {
                    printError("normlab: error: \(f.key) (\(f.label)): \(f.error)")
                }
                throw CLIError("\(summary.failures.count) run\(summary.failures.count == 1 ? "" : "s") failed; \(summary.alreadyDone + summary.ran + summary.storedElsewhere)/\(summary.planned) are stored in \(storePath) — rerun the same command to retry the missing ones")
            }
            if let shard {
                print("shard \(shard): \(summary.alreadyDone + summary.ran + summary.storedElsewhere)/\(summary.planned) runs stored in \(storePath)")
                print("combine the shards with `normlab ablate merge <shard stores> --into \(StudyPaths.defaultStore(for: spec))`, then `normlab ablate report --store \(StudyPaths.defaultStore(for: spec))`")
                return
            }
            if noReport { return }
            let report = try AblationReport.load(store: store, study: spec.name)
            try writeReport(report, out: try out ?? StudyPaths.defaultReportDirectory(forStore: storePath, study: store.studies().count > 1 ? report.study.name : nil), notebook: nil,
                            figures: true, tableFormat: .markdown, pathsToStdout: true)
        }
    }

    func makeRunner() throws -> any CellRunner {
        guard CellRunners.names.contains(runner) else {
            if runner == "train" {
                throw CLIError("the training runner is not wired into normlab ablate yet (known runners: \(CellRunners.names.joined(separator: ", ")))")
            }
            throw CLIError("no runner named '\(runner)' (known: \(CellRunners.names.joined(separator: ", ")))")
        }
        return try CellRunners.make(runner, context: RunnerContext(registry: try plugins.registry()))
    }

    func printPlan(spec: AblationSpec, runner: any CellRunner, storePath: String, shard: Shard?) throws {
        let cells = try spec.cells(validatingWith: runner)
        try spec.validateClaims(cells: cells, runner: runner)
        let plan = RunPlan(spec: spec, cells: cells)
        let claimCells = try claimsOnly ? plan.claimsCells() : nil
        let mine = plan.runs(in: shard, cellHashes: claimCells)
        var done = Set<RunKey>()
        if FileManager.default.fileExists(atPath: storePath) { done = try ResultStore(path: storePath, create: false).completedKeys() }
        print("study \(spec.name) (spec \(spec.hash.prefix(12))): \(plan.cells.count) cells × \(spec.seeds.count) seeds = \(plan.runs.count) runs"
              + (shard.map { "; shard \($0): \(mine.count) runs" } ?? "")
              + (claimCells.map { "; the claims' \($0.count) cells: \(mine.count) runs (before seed rounds)" } ?? ""))
        print("store \(storePath): \(mine.filter { done.contains($0.key) }.count) of them stored, \(mine.filter { !done.contains($0.key) }.count) to run")
        for cell in plan.cells where claimCells?.contains(cell.hash) ?? true {
            let stored = spec.seeds.filter { done.contains(RunKey(cellHash: cell.hash, seed: $0)) }.count
            print("  cell \(cell.index) \(cell.config.shortHash) [\(stored)/\(spec.seeds.count)] \(cell.label)")
        }
    }
}

/// Writes the report folder (and a notebook) and prints the table.
func writeReport(_ report: AblationReport, out: String, notebook: String?, figures: Bool,
                 tableFormat: AblationReport.Format, pathsToStdout: Bool) throws {
    var files = try report.write(to: out, figures: false)
    var figureError: String? = nil
    if figures {
        do { files.figures = try report.renderFigures(to: out + "/figures") } catch {
            figureError = "\(error)"
        }
    }
    let notebookPath = notebook ?? out + "/" + report.study.name + ".ipynb"
    var notebookError: String? = nil
    do { try report.writeNotebook(to: notebookPath, figures: files.figures) } catch {
        notebookError = "\(error)"
    }
    print(report.render(tableFormat), terminator: "")
    let say: (String) -> Void = pathsToStdout ? { print($0) } : printError
    if tableFormat == .markdown && pathsToStdout { print() }
    say("report: \(out)/ (table.md, table.csv, table.json, runs.csv)")
    if !files.figures.isEmpty {
        say("figures: " + files.figures.map { $0.hasPrefix(out + "/") ? String($0.dropFirst(out.count + 1)) : $0 }.joined(separator: ", "))
    }
    if notebookError == nil { say("notebook: \(notebookPath)") }
    if let figureError { printError("normlab: warning: figures not drawn: \(figureError)") }
    if let notebookError { printError("normlab: warning: notebook not written: \(notebookError)") }
    if notebook != nil, let notebookError { throw CLIError("notebook not written: \(notebookError)") }
}

struct AblateStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how far a study is: runs stored, missing, diverged, failed.")

    @OptionGroup var selection: StudySelection
    @Option(help: "The study in a store holding several.") var study: String?

    func run() throws {
        try reportingSpecErrors {
            let spec = try selection.loadSpec()
            guard let path = selection.storePath(for: spec) else { throw CLIError("give a spec file, --preset NAME or --store PATH") }
            guard FileManager.default.fileExists(atPath: path) else {
                if let spec {
                    print("study \(spec.name): no store yet at \(path) (0/\(spec.cellCount * spec.seeds.count) runs)")
                    return
                }
                throw CLIError("no result store at \(path)")
            }
            let store = try ResultStore(path: path, create: false)
            let report = try AblationReport.load(store: store, study: study ?? spec?.name)
            if let spec, spec.hash != report.spec.hash {
                printError("normlab: warning: the store's study '\(report.study.name)' comes from a different spec than \(spec.source)")
            }
            let complete = report.cells.filter { $0.runs.count >= report.spec.seeds.count }.count
            let empty = report.cells.filter(\.runs.isEmpty).count
            let failures = try store.openFailures().filter { $0.study == report.study.name }
            print("study \(report.study.name) (spec \(report.spec.hash.prefix(12)), runner \(try store.runnerName() ?? "—")) in \(path)")
            let pct = report.expectedRuns == 0 ? 100 : 100 * report.storedRuns / report.expectedRuns
            print("  runs: \(report.storedRuns)/\(report.expectedRuns) stored (\(pct)%), \(report.expectedRuns - report.storedRuns) missing, \(report.divergedRuns) diverged, \(failures.count) failed attempt\(failures.count == 1 ? "" : "s") without a result")
            print("  cells: \(complete) complete, \(report.cells.count - complete - empty) partial, \(empty) not started (of \(report.cells.count); \(report.spec.seeds.count) seeds each)")
            let p = report.provenance
            if p.runs > 0 {
                print("  hosts: \(p.hosts.joined(separator: ", ")); threads per run: \(p.threads.map(String.init).joined(separator: ", ")); compute \(AblationReport.duration(p.computeSeconds))")
                if let last = p.lastEnd { print("  last run finished: \(ISO8601DateFormatter().string(from: last))") }
            }
            for f in failures.suffix(3) { print("  failed: \(f.key) on \(f.host) at \(f.at): \(f.error)") }
            let missing = report.cells.filter { $0.runs.count < report.spec.seeds.count }
            for c in missing.prefix(10) {
                print("  missing: cell \(c.cell.index) \(c.cell.config.shortHash) [\(c.runs.count)/\(report.spec.seeds.count)] \(report.label(of: c.cell))")
            }
            if missing.count > 10 { print("  … and \(missing.count - 10) more cells with missing runs") }
            let others = try store.studies().map(\.name).filter { $0 != report.study.name }
            if !others.isEmpty { print("  other studies in this store: \(others.joined(separator: ", "))") }
        }
    }
}

extension AblationReport.Format: ExpressibleByArgument {}

struct AblateReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Aggregate a study (mean, std, 95 % CI over seeds; claims' verdicts; paired differences): table as md/csv/json, figures (PNG, SVG), notebook.")

    @OptionGroup var selection: StudySelection
    @Option(help: "The study in a store holding several.") var study: String?
    @Option(help: "Table format on stdout: md, csv or json.") var format: AblationReport.Format = .markdown
    @Option(help: "Also write a Jupyter notebook (nbformat 4) to this file, with <name>.csv and <name>-runs.csv beside it.") var notebook: String?
    @Option(help: "Report folder (default: <store>-report next to the store).") var out: String?
    @Flag(name: .customLong("no-plots"), help: "Skip the figures (no Python needed).") var noPlots = false

    func run() throws {
        try reportingSpecErrors {
            let spec = try selection.loadSpec()
            guard let path = selection.storePath(for: spec) else { throw CLIError("give a spec file, --preset NAME or --store PATH") }
            let store = try ResultStore(path: path, create: false)
            let report = try AblationReport.load(store: store, study: study ?? spec?.name)
            let dir = try out ?? StudyPaths.defaultReportDirectory(forStore: path, study: store.studies().count > 1 ? report.study.name : nil)
            if noPlots && notebook == nil {
                let files = try report.write(to: dir, figures: false)
                print(report.render(format), terminator: "")
                printError("report: \(files.directory)/ (table.md, table.csv, table.json, runs.csv)")
                return
            }
            if noPlots {
                _ = try report.write(to: dir, figures: false)
                try report.writeNotebook(to: notebook!, figures: [])
                print(report.render(format), terminator: "")
                printError("report: \(dir)/ (table.md, table.csv, table.json, runs.csv)")
                printError("notebook: \(notebook!)")
                return
            }
            try writeReport(report, out: dir, notebook: notebook, figures: true, tableFormat: format, pathsToStdout: false)
        }
    }
}

struct AblateMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine result stores (e.g. shards) into one, refusing conflicting results for the same (cell, seed).")

    @Argument(help: "The stores to merge.") var stores: [String]
    @Option(help: "The target store (created when missing).") var into: String

    func run() throws {
        guard !stores.isEmpty else { throw CLIError("name the stores to merge") }
        try reportingSpecErrors {
            let s = try ResultStore.merge(stores, into: into)
            print("merged \(stores.count) store\(stores.count == 1 ? "" : "s") into \(into): \(s.added) runs added, \(s.identical) identical duplicates kept once"
                  + (s.studiesAdded.isEmpty ? "" : "; studies added: \(s.studiesAdded.joined(separator: ", "))"))
        }
    }
}

struct AblateImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Rebuild a store from a report's runs.csv (final metrics and provenance; no curves), checked against the study's spec.",
        discussion: """
            The per-run table a report exports (runs.csv, or <stem>-runs.csv beside a notebook) \
            holds each run's final metrics bit for bit and its provenance. Importing it into a \
            store (e.g. a new machine's) registers the study and stores those runs, so that \
            `normlab ablate` runs only the missing ones and `report` covers them all. Every row \
            must be a cell of the spec as it is now (same cell hash); a run the store already \
            holds with other metrics is a conflict and nothing is imported.
            """)

    @Argument(help: "The runs table (runs.csv from `normlab ablate report`).") var runs: String
    @OptionGroup var selection: StudySelection
    @Flag(name: .customLong("add-study"), help: "Keep this spec as another study in a store that holds a different one.") var addStudy = false

    func run() throws {
        try reportingSpecErrors {
            guard let spec = try selection.loadSpec() else {
                throw CLIError("give the study's spec file or --preset NAME: import checks every row against its cells")
            }
            guard let text = try? String(contentsOfFile: runs, encoding: .utf8) else { throw CLIError("cannot read \(runs)") }
            let cells = try spec.cells()
            let exported = try ExportedRuns(csv: text, source: runs, spec: spec, cells: cells)
            let storePath = selection.storePath(for: spec)!
            let summary = try ResultStore(path: storePath).importRuns(exported, spec: spec, cells: cells, addStudy: addStudy)
            print("imported \(summary.added) run\(summary.added == 1 ? "" : "s") of study \(spec.name) from \(runs) into \(storePath)"
                  + (summary.identical == 0 ? "" : "; \(summary.identical) already stored with the same metrics"))
        }
    }
}

struct AblatePresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presets",
        abstract: "List the ablation presets (run one with `normlab ablate --preset NAME [--quick | --scale paper]`).")

    func run() throws {
        try reportingSpecErrors {
            let list = try AblationPresets.list()
            let width = list.map(\.name.count).max() ?? 0
            for p in list {
                let larger = p.scales.contains(.paper) ? " [also --scale paper]" : ""
                print(p.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + p.summary + larger)
            }
        }
    }
}
