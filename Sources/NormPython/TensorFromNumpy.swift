import CPython
import NormCore

extension Tensor {
    /// A tensor with a copy of a numpy array's elements: one bulk copy through the buffer
    /// protocol, no element-by-element loop.
    ///
    /// `object` is a floating-point numpy array or anything `numpy.asarray` turns into one
    /// (a Python float, a nested list of floats). `float32` C-contiguous arrays are read
    /// directly; other float dtypes (`float64`, `float16`, big-endian) and non-contiguous
    /// arrays (transposes, slices) are first converted by
    /// `numpy.asarray(a, dtype=numpy.float32, order="C")`. Integer, boolean, complex and
    /// object arrays are refused with a `TypeError` naming the dtype. The shape, including
    /// rank 0 and zero extents, is kept.
    public init(numpy object: PyObjectRef) throws {
        self = try Python.withGIL {
            let numpy = try Numpy.handles()
            var array = object
            if try !object.isInstance(of: numpy.ndarray) {
                array = try numpy.asarray.call(object)
            }
            let dtype = try array.attribute("dtype")
            let kind = try dtype.attribute("kind").decode(String.self)
            guard kind == "f" else {
                throw PythonError.typeError(
                    "expected a floating-point array (float32 or float64), got dtype \(dtype.description)")
            }
            let contiguous = try numpy.asarray.call(array, kwargs: ["dtype": numpy.float32, "order": "C"])
            return try Tensor.copyContiguousFloat32(contiguous)
        }
    }

    /// One memcpy out of a C-contiguous float32 buffer; call with the GIL held.
    private static func copyContiguousFloat32(_ object: PyObjectRef) throws -> Tensor {
        var view = Py_buffer()
        guard normlab_py_get_c_contiguous_buffer(object.pointer, &view) == 0 else {
            throw PythonError.fetch(context: "buffer request")
        }
        defer { PyBuffer_Release(&view) }
        let format = view.format.map { String(cString: $0) } ?? "B"
        let native: Set<String> = littleEndian ? ["f", "=f", "@f", "<f"] : ["f", "=f", "@f", ">f"]
        guard view.itemsize == MemoryLayout<Float>.size, native.contains(format) else {
            throw PythonError.typeError("expected a native float32 buffer, got format '\(format)' itemsize \(view.itemsize)")
        }
        let rank = Int(view.ndim)
        var shape: [Int] = []
        if rank > 0 {
            guard let extents = view.shape else {
                throw PythonError.typeError("the buffer has \(rank) dimensions but no shape")
            }
            shape = (0..<rank).map { Int(extents[$0]) }
        }
        let count = shape.reduce(1, *)
        guard Int(view.len) == count * MemoryLayout<Float>.size else {
            throw PythonError.typeError("buffer of \(view.len) bytes does not hold shape \(shape) of float32")
        }
        let storage = TensorStorage(uninitializedCount: count)
        if count > 0 {
            guard let source = view.buf else { throw PythonError.typeError("the buffer has no data pointer") }
            UnsafeMutableRawPointer(storage.base).copyMemory(from: source, byteCount: Int(view.len))
        }
        return Tensor(shape: shape, storage: storage)
    }

    private static var littleEndian: Bool { 1.littleEndian == 1 }
}

extension Tensor: ConvertibleFromPython {
    /// ``Tensor/init(numpy:)``.
    public init(python object: PyObjectRef) throws { try self.init(numpy: object) }
}
