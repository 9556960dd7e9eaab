import Testing
import NormCore
import NormPython

/// Tensors and numpy arrays exchange float32 data without copies (Swift → numpy) or with
/// one bulk copy (numpy → Swift).
@Suite struct NumpyBridgeTests {
    /// Stand-in for a numpy-using Python module.
    private static func helpers() throws -> PyObjectRef {
        try Python.run("""
            import numpy as np
            def address(a):
                return a.__array_interface__['data'][0]
            def fill_row(a, row, value):
                a[row] = value
            kept = []
            """)
    }

    @Test func swiftToNumpyIsAZeroCopyReadOnlyView() throws {
        let x = TestSupport.tensor([2, 3, 4], seed: 1)
        let py = try Self.helpers()
        let array = try x.numpyView()
        #expect(try array.attribute("dtype").description == "float32")
        #expect(try array.attribute("shape").decode([Int].self) == [2, 3, 4])
        #expect(try py.item("address").call(array).decode(Int.self) == TestSupport.address(of: x))
        #expect(try !array.attribute("flags").attribute("writeable").decode(Bool.self))
        #expect(try array.callMethod("sum").decode(Double.self) == Double(x.scalars.reduce(0, +)) ||
                abs(try array.callMethod("sum").decode(Double.self) - Double(x.scalars.reduce(0, +))) < 1e-4)
        #expect(try array.item(PyObjectRef.tuple([1, 2, 3])).decode(Float.self) == x[flat: 1 * 12 + 2 * 4 + 3])
        #expect { try py.item("fill_row").call(array, 0, 1.0) } throws: { error in
            (error as? PythonError)?.typeName == "ValueError"
        }
    }

    @Test func writableViewShowsPythonWritesInSwift() throws {
        var x = Tensor.zeros([3, 4])
        let before = x
        let py = try Self.helpers()
        let array = try x.writableNumpyView()
        #expect(try py.item("address").call(array).decode(Int.self) == TestSupport.address(of: x))
        try py.item("fill_row").call(array, 1, 7.5)
        try array.callMethod("__imul__", 2)        // a *= 2, in place
        let namespace = try Python.makeNamespace()
        try namespace.setItem("a", to: array)
        try Python.run("import numpy as np\na[2, :] += np.arange(4, dtype=np.float32)", in: namespace)
        #expect(x.scalars == [0, 0, 0, 0, 15, 15, 15, 15, 0, 1, 2, 3])
        // the copy taken before the view was made is unaffected (value semantics)
        #expect(before.scalars == Array(repeating: 0, count: 12))
    }

    @Test func viewKeepsStorageAliveAndReleasesIt() throws {
        let py = try Self.helpers()
        weak var weakStorage: TensorStorage?
        do {
            let x = TestSupport.tensor([4, 5], seed: 2)
            weakStorage = x.storage
            try py.item("kept").callMethod("append", x.numpyView().callMethod("reshape", 4, 5))  // a derived view
        }
        // the Swift tensor is gone; the numpy array in Python still holds the storage
        #expect(weakStorage != nil)
        let kept = try py.item("kept").item(0)
        let expected = TestSupport.values(20, seed: 2)
        #expect(try Tensor(numpy: kept).scalars == expected)
        #expect(try Tensor(numpy: kept.item(1)).scalars == Array(expected[5..<10]))
        // once Python drops every view, the storage is released
        try py.item("kept").callMethod("clear")
        _ = consume kept
        #expect(weakStorage == nil)
    }

    @Test func numpyToSwiftCopiesFloat32Once() throws {
        let np = try Numpy.module()
        let array = try np.callMethod("arange", 24, kwargs: ["dtype": np.attribute("float32")]).callMethod("reshape", 2, 3, 4)
        let x = try Tensor(numpy: array)
        #expect(x.shape == [2, 3, 4])
        #expect(x.scalars == (0..<24).map(Float.init))
        // a copy: later Python writes do not reach the Swift tensor
        try array.callMethod("fill", 0)
        #expect(x.scalars == (0..<24).map(Float.init))
    }

    @Test func numpyToSwiftConvertsFloat64AndNonContiguous() throws {
        let namespace = try Python.run("""
            import numpy as np
            f64 = np.linspace(-1, 1, 6).reshape(2, 3)
            transposed = np.arange(6, dtype=np.float32).reshape(2, 3).T
            strided = np.arange(10, dtype=np.float32)[::3]
            big_endian = np.arange(3, dtype='>f4')
            half = np.array([0.5, -2], dtype=np.float16)
            scalar = np.float64(2.25)
            zero_d = np.array(3.5, dtype=np.float32)
            empty = np.zeros((0, 3), dtype=np.float32)
            """)
        let f64 = try Tensor(numpy: namespace.item("f64"))
        #expect(f64.shape == [2, 3])
        #expect(f64.scalars == [-1, -0.6, -0.2, 0.2, 0.6, 1].map { Float($0) })
        let t = try Tensor(numpy: namespace.item("transposed"))
        #expect(t.shape == [3, 2])
        #expect(t.scalars == [0, 3, 1, 4, 2, 5])
        #expect(try Tensor(numpy: namespace.item("strided")).scalars == [0, 3, 6, 9])
        #expect(try Tensor(numpy: namespace.item("big_endian")).scalars == [0, 1, 2])
        #expect(try Tensor(numpy: namespace.item("half")).scalars == [0.5, -2])
        let s = try Tensor(numpy: namespace.item("scalar"))
        #expect(s.shape == [] && s.scalars == [2.25])
        let z = try Tensor(numpy: namespace.item("zero_d"))
        #expect(z.shape == [] && z.scalars == [3.5])
        let e = try Tensor(numpy: namespace.item("empty"))
        #expect(e.shape == [0, 3] && e.count == 0)
        #expect(try [[1.0, 2.0], [3.0, 4.0]].pythonObject().decode(Tensor.self).shape == [2, 2])
    }

    @Test func nonFloatArraysAreRefused() throws {
        let np = try Numpy.module()
        #expect { try Tensor(numpy: np.callMethod("arange", 4)) } throws: { error in
            (error as? PythonError)?.description == "TypeError: expected a floating-point array (float32 or float64), got dtype int64"
        }
        #expect { try Tensor(numpy: np.callMethod("array", [true, false])) } throws: { error in
            (error as? PythonError)?.description.hasSuffix("got dtype bool") == true
        }
        #expect { try Tensor(numpy: Python.evaluate("[1j]")) } throws: { error in
            (error as? PythonError)?.description.hasSuffix("got dtype complex128") == true
        }
        #expect { try Tensor(numpy: "text".pythonObject()) } throws: { error in
            (error as? PythonError)?.typeName == "TypeError"
        }
    }

    @Test func roundTripThroughNumpyIsExact() throws {
        let x = TestSupport.tensor([2, 3, 2, 2], seed: 3, scale: 1e3)
        let back = try Tensor(numpy: x.numpyView())
        #expect(back.isBitIdentical(to: x))
        #expect(back.storage !== x.storage)
        let doubled = try Tensor(numpy: x.numpyView().callMethod("__mul__", 2))
        #expect(doubled.scalars == x.scalars.map { $0 * 2 })
        let rank0 = Tensor(shape: [], scalars: [4])
        #expect(try Tensor(numpy: rank0.numpyView()).shape == [])
        let empty = Tensor.zeros([0, 2])
        #expect(try empty.numpyView().attribute("shape").decode([Int].self) == [0, 2])
    }
}
