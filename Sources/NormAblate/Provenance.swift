import Foundation
import NormCore

/// Where and how one run was produced (stored with its result).
public struct Provenance: Sendable, Equatable {
    public var runner: String
    public var study: String
    public var specHash: String
    public var normlabVersion: String
    /// The commit of the normlab checkout the binary was built from (nil outside a checkout
    /// or without `git`).
    public var gitCommit: String?
    /// Uncommitted changes to tracked files in that checkout.
    public var gitDirty: Bool?
    public var datasetHash: String?
    public var seed: UInt64
    public var threads: Int
    public var host: String
    public var startedAt: Date
    public var finishedAt: Date

    public init(runner: String, study: String, specHash: String, normlabVersion: String = NormlabVersion.string,
                gitCommit: String?, gitDirty: Bool?, datasetHash: String?, seed: UInt64, threads: Int,
                host: String, startedAt: Date, finishedAt: Date) {
        self.runner = runner
        self.study = study
        self.specHash = specHash
        self.normlabVersion = normlabVersion
        self.gitCommit = gitCommit
        self.gitDirty = gitDirty
        self.datasetHash = datasetHash
        self.seed = seed
        self.threads = threads
        self.host = host
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    public var duration: Double { finishedAt.timeIntervalSince(startedAt) }
}

/// The git state of the normlab checkout, found by running `git` as a subprocess.
public struct GitInfo: Sendable, Equatable {
    public var commit: String
    public var dirty: Bool

    /// The checkout holding the running executable (`<checkout>/.build/.../normlab` or a
    /// test binary), else the working directory's; nil when neither is a git checkout or
    /// `git` is missing. Computed once per process.
    public static var current: GitInfo? { cached }

    private static let cached: GitInfo? = {
        var candidates: [String] = []
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) {
                candidates.append(dir.path)
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath)
        for c in candidates {
            if let info = read(directory: c) { return info }
        }
        return nil
    }()

    /// The state of the checkout containing `directory`.
    public static func read(directory: String) -> GitInfo? {
        guard let commit = git(["rev-parse", "HEAD"], in: directory)?.trimmingCharacters(in: .whitespacesAndNewlines),
              commit.count >= 40 else { return nil }
        guard let status = git(["status", "--porcelain", "--untracked-files=no"], in: directory) else { return nil }
        return GitInfo(commit: commit, dirty: !status.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    private static func git(_ args: [String], in directory: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", directory] + args
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Timestamps as stored: ISO 8601 UTC with milliseconds.
enum Timestamp {
    static func string(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    static func date(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }
}

/// The host name recorded with each run.
enum Host {
    static let name: String = ProcessInfo.processInfo.hostName
}
