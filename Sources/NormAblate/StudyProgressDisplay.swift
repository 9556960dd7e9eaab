import Foundation

/// Progress of a study on stderr: on a terminal one status line rewritten in place
/// (`[12/40] 2 running · 3.1 s/run · ETA 1 min 05 s`, refreshed every second), otherwise
/// one plain line per finished run.
public final class StudyProgressDisplay: ProgressObserver {
    private let isTerminal: Bool
    private let write: (String) -> Void
    private let lock = NSLock()
    private var total = 0, done = 0, alreadyDone = 0, jobs = 1, finishedNow = 0
    private var running: [Int: Date] = [:]
    private var runSeconds = 0.0
    private var startedAt = Date()
    private var ticker: Thread?
    private var stopped = false
    private var lastLength = 0

    /// `isTerminal` defaults to whether stderr is a terminal; `write` to stderr.
    public init(isTerminal: Bool = isatty(STDERR_FILENO) == 1, write: ((String) -> Void)? = nil) {
        self.isTerminal = isTerminal
        self.write = write ?? { FileHandle.standardError.write($0.data(using: .utf8)!) }
    }

    public func studyStarted(study: String, total: Int, alreadyDone: Int, toRun: Int, jobs: Int) {
        lock.lock()
        self.total = total
        self.alreadyDone = alreadyDone
        self.done = alreadyDone
        self.jobs = jobs
        startedAt = Date()
        lock.unlock()
        write("ablate \(study): \(total) runs, \(alreadyDone) already stored, \(toRun) to run with \(jobs) job\(jobs == 1 ? "" : "s")\n")
        if isTerminal && toRun > 0 {
            let t = Thread { [weak self] in
                while let self, !self.isStopped {
                    Thread.sleep(forTimeInterval: 1)
                    self.redraw()
                }
            }
            ticker = t
            t.start()
        }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    public func runStarted(_ run: PlannedRun) {
        lock.lock()
        running[run.ordinal] = Date()
        lock.unlock()
        if isTerminal { redraw() }
    }

    public func runFinished(_ run: PlannedRun, outcome: RunOutcome, seconds: Double) {
        lock.lock()
        running[run.ordinal] = nil
        done += 1
        finishedNow += 1
        runSeconds += seconds
        let line = "[\(done)/\(total)] " + Self.describe(run, outcome: outcome, seconds: seconds)
        lock.unlock()
        if isTerminal {
            if case .stored = outcome { redraw() } else { clearLine(); write(line + "\n"); redraw() }
        } else {
            write(line + "\n")
        }
    }

    public func studyFinished(_ summary: RunSummary) {
        lock.lock()
        stopped = true
        lock.unlock()
        if isTerminal { clearLine() }
        var text = "ablate \(summary.study): ran \(summary.ran) run\(summary.ran == 1 ? "" : "s") in \(AblationReport.duration(summary.seconds))"
        if summary.diverged > 0 { text += ", \(summary.diverged) diverged" }
        if summary.discardedDuplicates > 0 { text += ", \(summary.discardedDuplicates) already stored by another process" }
        if summary.storedElsewhere > 0 { text += ", \(summary.storedElsewhere) run by another worker on this store" }
        if !summary.failures.isEmpty { text += ", \(summary.failures.count) failed" }
        if summary.notStarted > 0 { text += ", \(summary.notStarted) not started" }
        text += "; \(summary.alreadyDone + summary.ran + summary.discardedDuplicates + summary.storedElsewhere)/\(summary.planned) runs stored in \(summary.storePath)\n"
        write(text)
    }

    static func describe(_ run: PlannedRun, outcome: RunOutcome, seconds: Double) -> String {
        let what = "cell \(run.cell.config.shortHash) seed \(run.seed)" + (run.label.isEmpty ? "" : " (\(run.label))")
        switch outcome {
        case let .stored(result):
            let metrics = result.metrics.keys.sorted().prefix(3).map { "\($0)=\(AblationReport.number(result.metrics[$0]!))" }.joined(separator: " ")
            return "\(what) \(String(format: "%.1f", seconds)) s" + (result.diverged ? " DIVERGED" : "") + (metrics.isEmpty ? "" : " \(metrics)")
        case .alreadyStored:
            return "\(what): already stored by another process, result discarded"
        case let .failed(error):
            return "\(what) FAILED: \(error)"
        }
    }

    private func clearLine() {
        lock.lock()
        let n = lastLength
        lastLength = 0
        lock.unlock()
        if n > 0 { write("\r" + String(repeating: " ", count: n) + "\r") }
    }

    private func redraw() {
        lock.lock()
        guard !stopped else { lock.unlock(); return }
        let now = Date()
        let perRun = finishedNow > 0 ? runSeconds / Double(finishedNow) : nil
        let remaining = total - done
        var text = "[\(done)/\(total)] \(running.count) running"
        if let perRun {
            text += String(format: " · %.1f s/run", perRun)
            let eta = perRun * Double(remaining) / Double(max(1, min(jobs, remaining)))
            let inFlight = running.values.map { now.timeIntervalSince($0) }.reduce(0, +) / Double(max(1, jobs))
            text += " · ETA " + AblationReport.duration(max(0, eta - inFlight))
        }
        text += " · elapsed " + AblationReport.duration(now.timeIntervalSince(startedAt))
        let pad = max(0, lastLength - text.count)
        lastLength = text.count
        lock.unlock()
        write("\r" + text + String(repeating: " ", count: pad))
    }
}
