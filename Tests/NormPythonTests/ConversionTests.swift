import Testing
import NormPython

/// Swift values round-trip through Python objects; wrong types are errors, not coercions.
@Suite struct ConversionTests {
    @Test func scalarsRoundTrip() throws {
        for value in [0, 1, -1, Int.max, Int.min, 123_456_789] {
            #expect(try value.pythonObject().decode(Int.self) == value)
        }
        for value in [0.0, -2.5, 1e-300, Double.greatestFiniteMagnitude, .infinity] {
            #expect(try value.pythonObject().decode(Double.self) == value)
        }
        #expect(try Double.nan.pythonObject().decode(Double.self).isNaN)
        #expect(try Float(0.1).pythonObject().decode(Float.self) == Float(0.1))
        #expect(try true.pythonObject().decode(Bool.self) == true)
        #expect(try false.pythonObject().decode(Bool.self) == false)
        #expect(try true.pythonObject().typeName == "bool")
        #expect(try 3.pythonObject().typeName == "int")
        #expect(try 3.0.pythonObject().typeName == "float")
    }

    @Test func stringsRoundTrip() throws {
        for text in ["", "batch_norm", "ünïcödé ∑ 🚀", "with\0nul", "line\nbreak"] {
            let object = try text.pythonObject()
            #expect(object.typeName == "str")
            #expect(try object.decode(String.self) == text)
        }
        #expect(try Python.evaluate("'é' * 3").decode(String.self) == "ééé")
    }

    @Test func noneAndOptionals() throws {
        let none = try Python.none()
        #expect(none.isNone)
        #expect(try none.decode(Int?.self) == nil)
        #expect(try Optional<Int>.none.pythonObject().isNone)
        #expect(try Optional(4).pythonObject().decode(Int?.self) == 4)
    }

    @Test func listsAndTuples() throws {
        let list = try [1, 2, 3].pythonObject()
        #expect(list.typeName == "list")
        #expect(try list.count() == 3)
        #expect(try list.decode([Int].self) == [1, 2, 3])
        #expect(try Python.evaluate("(1.5, 2.5)").decode([Double].self) == [1.5, 2.5])
        #expect(try Python.evaluate("(i * i for i in range(4))").decode([Int].self) == [0, 1, 4, 9])
        let mixed = try PyObjectRef.list([1, "two", 3.0, false])
        #expect(mixed.description == "[1, 'two', 3.0, False]")
        let objects = try mixed.decode([PyObjectRef].self)
        #expect(try objects[1].decode(String.self) == "two")
        #expect(try PyObjectRef.tuple([1, "a"]).debugDescription == "(1, 'a')")
        #expect(try [[1, 2], [3]].pythonObject().decode([[Int]].self) == [[1, 2], [3]])
    }

    @Test func dictionariesRoundTrip() throws {
        let scores = ["a": 1.5, "b": -2.0]
        let object = try scores.pythonObject()
        #expect(object.typeName == "dict")
        #expect(try object.decode([String: Double].self) == scores)
        let options = try PyObjectRef.dict(["eps": 1e-3, "momentum": Optional<Double>.none, "affine": false, "num_groups": 4])
        #expect(options.description == "{'eps': 0.001, 'momentum': None, 'affine': False, 'num_groups': 4}")
        let back = try options.decode([String: PyObjectRef].self)
        #expect(back["momentum"]?.isNone == true)
        #expect(try back["num_groups"]?.decode(Int.self) == 4)
        #expect(try Python.evaluate("{1: 'x', 2: 'y'}").decode([Int: String].self) == [1: "x", 2: "y"])
    }

    @Test func attributesCallsAndKeywords() throws {
        let namespace = try Python.run("""
            class Box:
                def __init__(self, value):
                    self.value = value
                @property
                def broken(self):
                    raise ValueError("not an AttributeError")
                def scaled(self, factor=1, *, offset=0):
                    return self.value * factor + offset
            def describe(*args, **kwargs):
                return repr(args) + ' ' + repr(sorted(kwargs.items()))
            """)
        let box = try namespace.item("Box").call(10)
        #expect(try box.attribute("value").decode(Int.self) == 10)
        #expect(try box.hasAttribute("value"))
        #expect(try !box.hasAttribute("missing"))
        #expect { try box.hasAttribute("broken") } throws: { ($0 as? PythonError)?.typeName == "ValueError" }
        try box.setAttribute("value", to: 4)
        #expect(try box.callMethod("scaled", 3, kwargs: ["offset": 1]).decode(Int.self) == 13)
        let describe = try namespace.item("describe")
        #expect(try describe.call(1, "x", kwargs: ["k": true]).decode(String.self) == "(1, 'x') [('k', True)]")
        let built = try describe.call(arguments: [2.5], keywords: [(name: "a", value: 1), (name: "b", value: "s")])
        #expect(try built.decode(String.self) == "(2.5,) [('a', 1), ('b', 's')]")
        #expect(try Python.builtins().callMethod("len", [1, 2]).decode(Int.self) == 2)
        #expect(try Python.builtins().attribute("int").call("42").decode(Int.self) == 42)
        #expect(try box.isInstance(of: namespace.item("Box")))
    }

    @Test func numpyScalarsConvert() throws {
        let np = try Numpy.module()
        #expect(try np.callMethod("int64", 7).decode(Int.self) == 7)
        #expect(try np.callMethod("float32", 0.5).decode(Double.self) == 0.5)
        #expect(try np.callMethod("bool_", true).decode(Bool.self) == true)
        #expect(try np.callMethod("array", [1.0, 2.0]).callMethod("sum").decode(Double.self) == 3)
    }

    @Test func wrongTypesAreErrors() throws {
        #expect { try "12".pythonObject().decode(Int.self) } throws: { error in
            (error as? PythonError)?.typeName == "TypeError"
        }
        #expect { try 2.5.pythonObject().decode(Int.self) } throws: { ($0 as? PythonError)?.typeName == "TypeError" }
        #expect { try "1.5".pythonObject().decode(Double.self) } throws: { ($0 as? PythonError)?.typeName == "TypeError" }
        #expect { try 1.pythonObject().decode(Bool.self) } throws: { ($0 as? PythonError)?.description == "TypeError: expected bool, got int" }
        #expect { try 5.pythonObject().decode(String.self) } throws: { ($0 as? PythonError)?.description == "TypeError: expected str, got int" }
        #expect { try "abc".pythonObject().decode([String].self) } throws: { ($0 as? PythonError)?.typeName == "TypeError" }
        #expect { try Python.evaluate("2 ** 80").decode(Int.self) } throws: { ($0 as? PythonError)?.typeName == "OverflowError" }
        #expect { try Python.evaluate("[1, 'x']").decode([Int].self) } throws: { ($0 as? PythonError)?.typeName == "TypeError" }
    }
}
