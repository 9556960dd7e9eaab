import NormCore

/// A reusable scratch array of floats (im2col columns, permuted gradients).
final class Scratch {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init() { pointer = .allocate(capacity: 1); capacity = 1 }
    deinit { pointer.deallocate() }

    /// At least `count` floats (contents unspecified).
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            capacity = count
        }
        return pointer
    }
}
