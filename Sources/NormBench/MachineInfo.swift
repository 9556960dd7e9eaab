import CBLAS
import Foundation
import NormCore

/// What the report says about the machine.
public struct MachineInfo: Sendable, Codable, Equatable {
    public var cpu: String
    public var cores: Int
    public var lastLevelCache: String
    public var memory: String
    public var os: String
    /// OpenBLAS's kernel set in use (its detection, or `OPENBLAS_CORETYPE`; see the CLI's
    /// BLAS kernel choice), e.g. "SkylakeX"; nil in reports written before it was recorded.
    public var blasCore: String?

    enum CodingKeys: String, CodingKey {
        case cpu, cores, memory, os
        case blasCore = "blas_core"
        case lastLevelCache = "last_level_cache"
    }

    public static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let memKB = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        let os = ProcessInfo.processInfo.operatingSystemVersionString
        return MachineInfo(cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                           lastLevelCache: "\(lastLevelCacheBytes >> 20) MiB",
                           memory: String(format: "%.1f GiB", Double(memKB) / 1024 / 1024), os: os,
                           blasCore: openblas_get_corename().map { String(cString: $0) })
    }

    /// The largest cache level's size (sysfs), 32 MiB when unknown.
    public static var lastLevelCacheBytes: Int { CacheHierarchy.lastLevelBytes }
}
