import Foundation

/// Where a bench command's report goes: `--save-json FILE` (its folder checked before anything
/// runs, the file written whole or not at all) and stdout (JSON or the table).
struct BenchReportOutput {
    let saveURL: URL?
    let json: Bool

    /// Checks `--save-json`'s folder now, so a typo fails before minutes of timing.
    init(saveJSON: String?, json: Bool) throws {
        self.json = json
        saveURL = try saveJSON.map { path -> URL in
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            let parent = url.deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("--save-json: directory '\(parent)' does not exist")
            }
            return url
        }
    }

    /// Saves the JSON (when asked) and prints the JSON or the table.
    func emit(json data: () throws -> Data, table: () -> String) throws {
        if let saveURL {
            do { try data().write(to: saveURL, options: .atomic) } catch {
                throw CLIError("--save-json: cannot write '\(saveURL.path)': \(error.localizedDescription)")
            }
        }
        if json {
            FileHandle.standardOutput.write(try data())
            print()
        } else {
            print(table())
        }
    }
}
