/// Helpers for shapes written as `[Int]`.
extension Array where Element == Int {
    /// Product of the extents (1 for the empty shape).
    public var product: Int { reduce(1, *) }
    /// The shape without its size-1 axes.
    public var squeezed: [Int] { filter { $0 != 1 } }
    /// PyTorch-style text, e.g. `(2, 3, 4)`.
    public var shapeText: String {
        count == 1 ? "(\(self[0]),)" : "(" + map(String.init).joined(separator: ", ") + ")"
    }
}
