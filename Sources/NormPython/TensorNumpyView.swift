import CPython
import NormCore

extension Tensor {
    /// A numpy `float32` array of this tensor's shape that *views* its storage: no copy.
    ///
    /// The array is read-only (`a.flags.writeable` is false; writing raises `ValueError`),
    /// which keeps `Tensor`'s value semantics intact. It keeps the storage alive for as
    /// long as it (or any view derived from it) lives in Python, however long that is: the
    /// array's base is a buffer object holding a retained reference to the storage, given
    /// back when Python frees it. This is also how a `Tensor` is passed as an argument
    /// (`PythonConvertible`).
    public func numpyView() throws -> PyObjectRef {
        try Tensor.numpyArray(viewing: storage, shape: shape, writable: false)
    }

    /// A *writable* numpy `float32` array viewing this tensor's storage: writes made in
    /// Python are visible in this tensor, without any copy.
    ///
    /// The storage is first made unique (copy-on-write), so no other `Tensor` value sees
    /// the writes. The view keeps the storage alive like ``numpyView()``. Because the view
    /// holds a reference, mutating this tensor from Swift afterwards copies the storage
    /// first and detaches it from the view: treat the tensor as owned by Python while the
    /// view is in use, and read the results after Python is done with it.
    public mutating func writableNumpyView() throws -> PyObjectRef {
        makeUnique()
        return try Tensor.numpyArray(viewing: storage, shape: shape, writable: true)
    }

    /// A numpy array over `storage` (whose element count matches `shape`).
    static func numpyArray(viewing storage: TensorStorage, shape: [Int], writable: Bool) throws -> PyObjectRef {
        try Python.withGIL {
            let numpy = try Numpy.handles()
            let extents = shape.map { Py_ssize_t($0) }
            // +1 on the storage, owned by the exporter from here on; released by its
            // deallocator (under the GIL) when the last numpy view of it is gone.
            let owner = Unmanaged.passRetained(storage)
            let exporter = extents.withUnsafeBufferPointer { dims in
                normlab_float32_buffer_new(
                    storage.base, Int32(dims.count), dims.baseAddress, writable ? 0 : 1, owner.toOpaque(),
                    { retained in
                        guard let retained else { return }
                        Unmanaged<TensorStorage>.fromOpaque(retained).release()
                    })
            }
            guard let exporter else {
                owner.release()
                throw PythonError.fetch(context: "tensor buffer")
            }
            let buffer = PyObjectRef(owning: exporter)
            return try numpy.asarray.call(buffer)
        }
    }
}

extension Tensor: PythonConvertible {
    /// A read-only, zero-copy numpy view (``Tensor/numpyView()``).
    public func pythonObject() throws -> PyObjectRef { try numpyView() }
}
