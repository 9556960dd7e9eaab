import Foundation

/// A minimal zip container for `.npz` files: entries stored without compression
/// (method 0, as `numpy.savez` writes them), each with its CRC-32; read back by walking the
/// central directory. Compressed entries (`numpy.savez_compressed`) are reported, not read.
public enum ZipArchive {
    public struct Entry: Equatable {
        public let name: String
        public let data: Data
        public init(name: String, data: Data) { self.name = name; self.data = data }
    }

    /// The bytes of a zip holding `entries` in order (no zip64: each entry and the whole
    /// archive must stay under 4 GiB).
    public static func encode(_ entries: [Entry]) throws -> Data {
        var out = Data()
        var central = Data()
        // 1980-01-01 00:00 in MS-DOS format, so archives are byte-identical across runs.
        let dosTime: UInt16 = 0, dosDate: UInt16 = (0 << 9) | (1 << 5) | 1
        for e in entries {
            let name = Data(e.name.utf8)
            guard e.data.count < Int(UInt32.max), out.count < Int(UInt32.max), name.count < 0xFFFF else {
                throw NetError("zip: entry \(e.name) is too large for a zip without zip64")
            }
            let crc = CRC32.checksum(e.data)
            let offset = UInt32(out.count)
            out.append(le32: 0x0403_4B50)
            out.append(le16: 20); out.append(le16: 0); out.append(le16: 0)       // version, flags, stored
            out.append(le16: dosTime); out.append(le16: dosDate)
            out.append(le32: crc); out.append(le32: UInt32(e.data.count)); out.append(le32: UInt32(e.data.count))
            out.append(le16: UInt16(name.count)); out.append(le16: 0)
            out.append(name)
            out.append(e.data)

            central.append(le32: 0x0201_4B50)
            central.append(le16: 20); central.append(le16: 20); central.append(le16: 0); central.append(le16: 0)
            central.append(le16: dosTime); central.append(le16: dosDate)
            central.append(le32: crc); central.append(le32: UInt32(e.data.count)); central.append(le32: UInt32(e.data.count))
            central.append(le16: UInt16(name.count)); central.append(le16: 0); central.append(le16: 0)
            central.append(le16: 0); central.append(le16: 0); central.append(le32: 0)
            central.append(le32: offset)
            central.append(name)
        }
        guard entries.count < 0xFFFF, out.count < Int(UInt32.max) else { throw NetError("zip: too many entries or too large") }
        let centralOffset = UInt32(out.count)
        out.append(central)
        out.append(le32: 0x0605_4B50)
        out.append(le16: 0); out.append(le16: 0)
        out.append(le16: UInt16(entries.count)); out.append(le16: UInt16(entries.count))
        out.append(le32: UInt32(central.count)); out.append(le32: centralOffset)
        out.append(le16: 0)
        return out
    }

    /// The entries of a zip whose entries are stored (uncompressed); checks every CRC.
    public static func decode(_ data: Data) throws -> [Entry] {
        let bytes = [UInt8](data)
        func u16(_ o: Int) throws -> Int {
            guard o >= 0, o + 2 <= bytes.count else { throw NetError("zip: truncated archive") }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8
        }
        func u32(_ o: Int) throws -> Int {
            guard o >= 0, o + 4 <= bytes.count else { throw NetError("zip: truncated archive") }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24
        }
        // End of central directory: the last signature within the final 64 KiB + 22 bytes.
        var eocd = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 0xFFFF) {
            if try u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw NetError("zip: not a zip archive (no end-of-central-directory record)") }
        let count = try u16(eocd + 10)
        var p = try u32(eocd + 16)
        var entries: [Entry] = []
        for _ in 0..<count {
            guard try u32(p) == 0x0201_4B50 else { throw NetError("zip: corrupt central directory") }
            let method = try u16(p + 10)
            let crc = UInt32(try u32(p + 16))
            let compressed = try u32(p + 20), size = try u32(p + 24)
            let nameLength = try u16(p + 28), extraLength = try u16(p + 30), commentLength = try u16(p + 32)
            let local = try u32(p + 42)
            guard p + 46 + nameLength <= bytes.count else { throw NetError("zip: truncated archive") }
            let name = String(decoding: bytes[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            guard method == 0 else {
                throw NetError("zip: entry \(name) is compressed (method \(method)); only stored entries are read (use numpy.savez, not savez_compressed)")
            }
            guard compressed == size, size != 0xFFFF_FFFF else { throw NetError("zip: entry \(name) uses zip64 or an unsupported size") }
            guard try u32(local) == 0x0403_4B50 else { throw NetError("zip: corrupt local header for \(name)") }
            let start = local + 30 + (try u16(local + 26)) + (try u16(local + 28))
            guard start + size <= bytes.count else { throw NetError("zip: entry \(name) is truncated") }
            let payload = Data(bytes[start..<(start + size)])
            guard CRC32.checksum(payload) == crc else { throw NetError("zip: CRC mismatch in entry \(name)") }
            entries.append(Entry(name: name, data: payload))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }
}

extension Data {
    mutating func append(le16 v: UInt16) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func append(le32 v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
}
