import Foundation

/// The CPU's cache sizes, read once from sysfs (Linux).
public enum CacheHierarchy {
    /// The largest cache level's size in bytes (32 MiB when sysfs does not say).
    public static let lastLevelBytes: Int = {
        var best = 0
        for index in 0..<8 {
            let path = "/sys/devices/system/cpu/cpu0/cache/index\(index)/size"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            var bytes = Int(t.filter(\.isNumber)) ?? 0
            if t.hasSuffix("K") { bytes <<= 10 } else if t.hasSuffix("M") { bytes <<= 20 }
            best = max(best, bytes)
        }
        return best > 0 ? best : 32 << 20
    }()
}
