import Foundation

/// The ablation presets: YAML specs shipped in the repository's `presets/` folder.
public enum AblationPresets {
    /// Environment variable naming the presets folder explicitly.
    public static let directoryVariable = "NORMLAB_PRESETS_DIR"

    /// The first existing folder of: `$NORMLAB_PRESETS_DIR`; `presets/` next to the package
    /// root the executable was built in (`<root>/.build/<config>/normlab`, checked up to five
    /// levels up); `./presets`; the source checkout this library was compiled from.
    public static func locateDirectory() throws -> String {
        var candidates: [String] = []
        let env = ProcessInfo.processInfo.environment[directoryVariable]
        if let env, !env.isEmpty { candidates.append(env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir.appendingPathComponent("presets").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/presets")
        // <root>/Sources/NormAblate/AblationPresets.swift → <root>/presets
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("presets").path)
        for c in candidates where hasPresets(c) {
            return URL(fileURLWithPath: c).standardizedFileURL.path
        }
        if let env, !env.isEmpty { throw AblationError("\(directoryVariable)=\(env) holds no preset (*.yaml)") }
        throw AblationError("normlab's presets/ folder was not found; set \(directoryVariable)")
    }

    private static func hasPresets(_ dir: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.contains { $0.hasSuffix(".yaml") }
    }

    /// Preset names (file stems), sorted.
    public static func names() throws -> [String] {
        let dir = try locateDirectory()
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Each preset with the first line of its description and the scales it defines besides
    /// its full form (`quick`, `paper`).
    public static func list() throws -> [(name: String, summary: String, scales: [StudyScale])] {
        try names().map { name in
            let spec = try? load(name)
            let summary = spec?.description?.split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) }
            return (name, summary ?? (spec == nil ? "(does not parse)" : ""), spec?.variantScales ?? [])
        }
    }

    /// The file of a preset.
    public static func path(of name: String) throws -> String {
        let dir = try locateDirectory()
        let file = dir + "/" + name + ".yaml"
        guard FileManager.default.fileExists(atPath: file) else {
            throw AblationError("no preset '\(name)' (presets: \(try names().joined(separator: ", ")))")
        }
        return file
    }

    /// Parses a preset.
    public static func load(_ name: String) throws -> AblationSpec {
        let file = try path(of: name)
        guard let data = FileManager.default.contents(atPath: file) else { throw AblationError("cannot read \(file)") }
        return try AblationSpec.parse(yaml: String(decoding: data, as: UTF8.self), source: file)
    }
}

/// Default file locations derived from a spec.
public enum StudyPaths {
    /// `results/<name>.sqlite`, or `results/<name>.shard-<i>-of-<n>.sqlite` for a shard (each
    /// shard writes its own store; `merge` combines them).
    public static func defaultStore(for spec: AblationSpec, shard: Shard? = nil, root: String = "results") -> String {
        if let shard { return "\(root)/\(spec.name).shard-\(shard.index)-of-\(shard.count).sqlite" }
        return "\(root)/\(spec.name).sqlite"
    }

    /// The report folder of a study in a store: `<store without .sqlite>-report` next to it,
    /// or `<store stem>-<study>-report` when the study is not named like the store (a store
    /// holding several studies), so reports never overwrite each other.
    public static func defaultReportDirectory(forStore store: String, study: String? = nil) -> String {
        let name = store.split(separator: "/").last.map(String.init) ?? store
        var stem = name.hasSuffix(".sqlite") ? String(name.dropLast(7)) : name
        if let study, study != stem { stem += "-" + study }
        if let slash = store.lastIndex(of: "/") { return String(store[...slash]) + stem + "-report" }
        return stem + "-report"
    }
}
