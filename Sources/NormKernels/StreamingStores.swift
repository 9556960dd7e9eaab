import NormKernelsC

/// Non-temporal output stores for normalization passes over tensors larger than the
/// last-level cache: no cache would keep such an output for its reader anyway, and streaming
/// it saves the read of every output line before its write (a quarter of a backward pass's
/// memory traffic, a third of a forward's) and keeps the data being re-read in the caches.
/// The values written are the same bits as with ordinary stores.
public enum StreamingStores {
    /// Replaces the last-level cache size as the threshold (tests force both paths; their
    /// outputs are the same bits either way).
    nonisolated(unsafe) public static var thresholdBytes: Int?

    /// Whether a pass over `arrays` tensors of `count` floats should stream its output.
    static func pay(arrays: Int, count: Int) -> Bool {
        arrays * count * MemoryLayout<Float>.size > (thresholdBytes ?? CacheHierarchy.lastLevelBytes)
    }

    /// Floats before the first 64-byte boundary at `p` (at most `n`): written with ordinary
    /// stores before the aligned non-temporal ones.
    @inline(__always)
    static func unalignedHead(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Int {
        min(n, (16 - ((Int(bitPattern: p) >> 2) & 15)) & 15)
    }

    /// Stores `v` at `p`: non-temporal when `streaming` (then `p` must be 64-byte aligned).
    @inline(__always)
    static func store(_ v: SIMD16<Float>, at p: UnsafeMutablePointer<Float>, streaming: Bool) {
        if streaming {
            nk_stream_store16(p, v)
        } else {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
        }
    }

    /// Orders this thread's streamed stores before what it does next (call once per thread
    /// after a streaming pass, before the pool hands the output to another thread).
    @inline(__always)
    static func fence(_ streaming: Bool) {
        if streaming { nk_store_fence() }
    }
}
