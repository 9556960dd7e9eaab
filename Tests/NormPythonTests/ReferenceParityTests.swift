import Testing
import NormCore
import NormPlugins
import NormPython

/// The Swift BatchNorm plugin agrees with the numpy reference `normref.run("bn", ...)`,
/// called through the embedded interpreter with zero-copy inputs.
@Suite struct ReferenceParityTests {
    private static func normref() throws -> PyObjectRef {
        try Python.addToSysPath(TestSupport.pythonDirectory)
        return try Python.import("normref")
    }

    private func maxAbs(_ a: Tensor, _ b: Tensor) -> Float {
        #expect(a.shape == b.shape)
        return a.maxAbsDifference(b)
    }

    @Test func batchNormTrainMatchesReference() throws {
        let normref = try Self.normref()
        let x = TestSupport.tensor([4, 3, 5, 5], seed: 11, scale: 2, offset: 0.5)
        let gy = TestSupport.tensor([4, 3, 5, 5], seed: 12)

        let options = try NormOptions(method: "batch_norm", schema: BatchNorm.descriptor.options, given: [:])
        let bn = try BatchNorm(shape: FeatureShape(of: x), options: options)
        let y = try bn.forward(x, mode: .train)
        let gx = try bn.backward(gy)

        let result = try normref.callMethod("run", "bn", x, kwargs: ["mode": "train", "grad_output": gy])
            .decode([String: PyObjectRef].self)
        let tolerance: Float = 1e-4  // float32 Swift vs float64 reference, values O(1)
        #expect(try maxAbs(y, #require(result["output"]).decode(Tensor.self)) < tolerance)
        #expect(try maxAbs(gx, #require(result["grad_input"]).decode(Tensor.self)) < tolerance)
        for name in ["weight", "bias"] {
            let gradient = try #require(bn.parameter(named: name)?.gradient)
            #expect(try maxAbs(gradient, #require(result["grad_\(name)"]).decode(Tensor.self)) < 1e-3, "grad_\(name)")
        }
        for name in ["running_mean", "running_var"] {
            let buffer = try #require(bn.buffer(named: name)?.value)
            #expect(try maxAbs(buffer, #require(result[name]).decode(Tensor.self)) < tolerance, "\(name)")
        }
        #expect(try #require(result["num_batches_tracked"]).decode(Int.self) == 1)
    }

    @Test func batchNormEvalWithStateAndOptionsMatchesReference() throws {
        let normref = try Self.normref()
        let x = TestSupport.tensor([3, 4, 6], seed: 21, scale: 3)
        let given: [String: OptionValue] = ["eps": .real(1e-3), "momentum": .real(0.3)]
        let bn = try BatchNorm(shape: FeatureShape(of: x),
                               options: NormOptions(method: "batch_norm", schema: BatchNorm.descriptor.options, given: given))
        // a train step moves the running statistics, then eval uses them
        _ = try bn.forward(TestSupport.tensor([3, 4, 6], seed: 22, scale: 2, offset: 1), mode: .train)
        let y = try bn.forward(x, mode: .eval)
        let runningMean = try #require(bn.buffer(named: "running_mean")?.value)
        let runningVar = try #require(bn.buffer(named: "running_var")?.value)
        let weight = try #require(bn.parameter(named: "weight")?.value)

        let result = try normref.callMethod("run", "batch_norm", x, kwargs: [
            "mode": "eval",
            "buffers": PyObjectRef.dict(["running_mean": runningMean, "running_var": runningVar, "num_batches_tracked": 1]),
            "params": PyObjectRef.dict(["weight": weight]),
            "options": PyObjectRef.dict(["eps": 1e-3, "momentum": 0.3]),
        ]).decode([String: PyObjectRef].self)
        #expect(try maxAbs(y, #require(result["output"]).decode(Tensor.self)) < 1e-4)
        #expect(result["running_mean"] == nil)  // eval never updates buffers
    }

    @Test func referenceErrorsComeBackAsPythonErrors() throws {
        let normref = try Self.normref()
        let x = TestSupport.tensor([2, 6, 3], seed: 5)
        #expect { try normref.callMethod("run", "gn", x, kwargs: ["options": PyObjectRef.dict(["num_groups": 4])]) } throws: { error in
            guard let e = error as? PythonError else { return false }
            return e.typeName == "ValueError" && !e.description.contains("\n")
        }
        #expect { try normref.callMethod("run", "no_such_norm", x) } throws: { error in
            (error as? PythonError)?.description.hasPrefix("ValueError: unknown method 'no_such_norm'") == true
        }
    }
}
