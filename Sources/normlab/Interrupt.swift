import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What Ctrl-C (SIGINT) does: normlab stops at once, whatever runs — a training step, an
/// ablation worker, a benchmark, or plugin code inside the embedded Python interpreter
/// (which installs no signal handler of its own) — prints one line on stderr and exits
/// with status 130 (128 + SIGINT, the shell convention).
///
/// The handler only calls `write(2)` and `_exit(2)`, which are async-signal-safe, so it
/// works even while another thread holds a lock or the GIL. Nothing is left half-written
/// under a final name: every output file is written to a hidden temporary and renamed into
/// place, and the ablation store is SQLite with transactions, so every run that finished
/// before Ctrl-C stays stored (the next `ablate run` continues with the rest).
///
/// An inherited `SIG_IGN` (a job started in the background by a non-interactive shell, or
/// under `nohup`) is respected, as shells and Python do.
enum Interrupt {
    /// Installs the handler with the default message. Call once, at start.
    static func install() {
        setMessage("normlab: interrupted (Ctrl-C)")
        let previous = signal(SIGINT, interruptHandler)
        if isIgnore(previous) { signal(SIGINT, SIG_IGN) }
    }

    /// Replaces the line printed on Ctrl-C (e.g. to say where finished runs are stored).
    static func setMessage(_ line: String) {
        let text = line.replacingOccurrences(of: "\n", with: " ") + "\n"
        interruptMessage = strdup(text)   // the previous one is kept: the handler may be reading it
        interruptMessageLength = strlen(interruptMessage!)
    }

    private static func isIgnore(_ handler: sighandler_t?) -> Bool {
        guard let handler else { return false }
        return unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }
}

/// The line the handler writes; set before the handler is installed.
nonisolated(unsafe) private var interruptMessage: UnsafeMutablePointer<CChar>?
nonisolated(unsafe) private var interruptMessageLength = 0

/// Writes the message and ends the process with 130; async-signal-safe.
private func interruptHandler(_ signal: Int32) {
    if let message = interruptMessage {
        _ = write(STDERR_FILENO, message, interruptMessageLength)
    }
    _exit(128 + signal)
}
