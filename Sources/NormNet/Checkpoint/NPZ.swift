import Foundation
import NormCore

/// `.npz` archives of named float32 arrays: a stored zip of `<name>.npy` files, exactly what
/// `numpy.savez` writes, readable by `numpy.load`.
public enum NPZ {
    /// The archive bytes for `arrays` (in the given order).
    public static func encode(_ arrays: [(name: String, tensor: Tensor)]) throws -> Data {
        var seen = Set<String>()
        for (name, _) in arrays where !seen.insert(name).inserted { throw NetError("npz: array name \(name) appears twice") }
        return try ZipArchive.encode(arrays.map { ZipArchive.Entry(name: $0.name + ".npy", data: NPY.encode($0.tensor)) })
    }

    /// The arrays of an `.npz` (float32 or float64 entries; names without `.npy`).
    public static func decode(_ data: Data) throws -> [(name: String, tensor: Tensor)] {
        try ZipArchive.decode(data).map { entry in
            let name = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
            do { return (name, try NPY.decode(entry.data)) } catch {
                throw NetError("npz: array \(name): \(error)")
            }
        }
    }

    /// Writes atomically (temporary file in the same directory, then rename).
    public static func write(_ arrays: [(name: String, tensor: Tensor)], to url: URL) throws {
        let data = try encode(arrays)
        do { try data.write(to: url, options: .atomic) } catch {
            throw NetError("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    public static func read(contentsOf url: URL) throws -> [(name: String, tensor: Tensor)] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw NetError("cannot read \(url.path): \(error.localizedDescription)") }
        do { return try decode(data) } catch let e as NetError { throw NetError("\(url.path): \(e.description)") }
    }
}
