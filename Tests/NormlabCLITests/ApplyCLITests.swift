import Foundation
import Testing
import NormCore
import NormPlugins
import NormTestSupport

/// One successful `normlab apply` call and what the contract says it writes.
struct ApplyCase: Sendable, CustomTestStringConvertible {
    let label: String
    /// METHOD as typed on the command line (any case / alias).
    let method: String
    let shape: [Int]
    var mode: Mode = .train
    var withGradient = true
    /// `--set` texts and the same options as values for the in-process layer.
    var settings: [String] = []
    var options: [String: OptionValue] = [:]
    /// Parameter files to pass (`weight`/`bias` through their flags, the rest with `--param`),
    /// with their shapes on disk (may carry extra size-1 axes).
    var parameterShapes: [String: [Int]] = [:]
    /// Buffers to pass in (`running_mean`, `running_var`).
    var passRunningStats = false
    /// The exact file set the contract prescribes.
    let expectedFiles: Set<String>

    var testDescription: String { label }
}

private let allGrads: Set<String> = ["output.npy", "grad_input.npy", "grad_weight.npy", "grad_bias.npy"]
private let running: Set<String> = ["running_mean.npy", "running_var.npy"]

private let applyCases: [ApplyCase] = [
    ApplyCase(label: "BN train, all inputs, uppercase alias", method: "BN", shape: [4, 3, 2, 2],
              settings: ["momentum=0.2", "eps=1e-3"], options: ["momentum": .real(0.2), "eps": .real(1e-3)],
              parameterShapes: ["weight": [3], "bias": [3]], passRunningStats: true, expectedFiles: allGrads.union(running)),
    ApplyCase(label: "Batch_Norm eval, forward only", method: "Batch_Norm", shape: [3, 3, 4], mode: .eval, withGradient: false,
              parameterShapes: ["weight": [3], "bias": [3]], passRunningStats: true, expectedFiles: ["output.npy"]),
    ApplyCase(label: "BN eval with gradient: no running stats written", method: "bn", shape: [3, 3, 4], mode: .eval,
              parameterShapes: ["weight": [3]], passRunningStats: true, expectedFiles: allGrads),
    ApplyCase(label: "BN train forward only", method: "batch_norm", shape: [5, 2], withGradient: false,
              expectedFiles: Set(["output.npy"]).union(running)),
    ApplyCase(label: "BN without tracking", method: "bn", shape: [4, 3, 3], settings: ["track_running_stats=false"],
              options: ["track_running_stats": .bool(false)], expectedFiles: allGrads),
    ApplyCase(label: "BN without affine", method: "bn", shape: [4, 3, 3], settings: ["affine=false"], options: ["affine": .bool(false)],
              expectedFiles: Set(["output.npy", "grad_input.npy"]).union(running)),
    ApplyCase(label: "BN weight given as (1, C, 1, 1)", method: "bn", shape: [2, 3, 2, 2],
              parameterShapes: ["weight": [1, 3, 1, 1], "bias": [3, 1, 1]], expectedFiles: allGrads.union(running)),
    ApplyCase(label: "BRN train with limits", method: "brn", shape: [4, 3, 5], settings: ["r_max=1.5", "d_max=0.5"],
              options: ["r_max": .real(1.5), "d_max": .real(0.5)], parameterShapes: ["weight": [3], "bias": [3]],
              passRunningStats: true, expectedFiles: allGrads.union(running)),
    ApplyCase(label: "GN", method: "gn", shape: [2, 4, 3], settings: ["num_groups=2"], options: ["num_groups": .integer(2)],
              parameterShapes: ["weight": [4], "bias": [4]], expectedFiles: allGrads),
    ApplyCase(label: "LN elementwise affine", method: "Layer_Norm", shape: [2, 3, 4],
              parameterShapes: ["weight": [3, 4], "bias": [3, 4]], expectedFiles: allGrads),
    ApplyCase(label: "IN defaults: no affine, no tracking", method: "in", shape: [2, 3, 5],
              expectedFiles: ["output.npy", "grad_input.npy"]),
    ApplyCase(label: "IN with affine and tracking", method: "instance_norm", shape: [2, 3, 5],
              settings: ["affine=true", "track_running_stats=true"], options: ["affine": .bool(true), "track_running_stats": .bool(true)],
              parameterShapes: ["weight": [3], "bias": [3]], passRunningStats: true, expectedFiles: allGrads.union(running)),
    ApplyCase(label: "FRN with tau", method: "FRN", shape: [2, 3, 2, 2], parameterShapes: ["weight": [3], "bias": [3], "tau": [3]],
              expectedFiles: allGrads.union(["grad_tau.npy"])),
    ApplyCase(label: "FRN learnable eps (scalar file)", method: "frn", shape: [2, 3, 4], settings: ["learnable_eps=true"],
              options: ["learnable_eps": .bool(true)], parameterShapes: ["tau": [3], "eps": []],
              expectedFiles: allGrads.union(["grad_tau.npy", "grad_eps.npy"])),
    ApplyCase(label: "FRN without TLU, eps of shape (1,)", method: "frn", shape: [2, 3, 4], settings: ["tlu=false", "learnable_eps=1"],
              options: ["tlu": .bool(false), "learnable_eps": .bool(true)], parameterShapes: ["eps": [1]],
              expectedFiles: allGrads.union(["grad_eps.npy"])),
]

@Suite("normlab apply / list / describe (subprocess)")
struct ApplyCLITests {
    @Test("the binary is found")
    func binaryIsFound() throws {
        let url = try normlabBinary.get()
        #expect(FileManager.default.isExecutableFile(atPath: url.path))
    }

    @Test("apply writes exactly the contract's files with the in-process plugin's values", arguments: applyCases)
    func applyWritesContractFiles(_ ac: ApplyCase) throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        var rng = TestRNG(seed: 77)
        let x = rng.normalTensor(ac.shape, mean: 0.4, std: 1.3)
        var args = ["apply", ac.method, "--input", try dir.write("x.npy", x), "--out", dir.path("out"), "--mode", ac.mode.rawValue]
        let gy = rng.normalTensor(ac.shape)
        if ac.withGradient { args += ["--grad-output", try dir.write("gy.npy", gy)] }
        for s in ac.settings { args += ["--set", s] }

        // The in-process layer, built from the same options.
        let layer = try Builtins.registry.make(NormSpec(ac.method, options: ac.options),
                                               shape: FeatureShape(channels: ac.shape[1], spatial: Array(ac.shape.dropFirst(2))))
        for name in ac.parameterShapes.keys.sorted() {
            let p = try #require(layer.parameter(named: name), "layer has no parameter \(name)")
            let value = name == "eps" ? Tensor(shape: p.value.shape, scalars: [0.25])
                : (name == "tau" ? rng.uniformTensor(p.value.shape, -0.6, 0.2) : rng.uniformTensor(p.value.shape, 0.5, 1.5))
            p.value = value
            let file = try dir.write("\(name).npy", value.reshaped(ac.parameterShapes[name]!))
            switch name {
            case "weight": args += ["--weight", file]
            case "bias": args += ["--bias", file]
            default: args += ["--param", "\(name)=\(file)"]
            }
        }
        if ac.passRunningStats {
            let c = ac.shape[1]
            let rm = rng.uniformTensor([c], -0.5, 0.5), rv = rng.uniformTensor([c], 0.5, 2)
            try #require(layer.buffer(named: "running_mean")).value = rm
            try #require(layer.buffer(named: "running_var")).value = rv
            args += ["--running-mean", try dir.write("rm.npy", rm), "--running-var", try dir.write("rv.npy", rv)]
        }
        var expected: [String: Tensor] = ["output.npy": try layer.forward(x, mode: ac.mode).copyTensor]
        if ac.withGradient {
            expected["grad_input.npy"] = try layer.backward(gy).copyTensor
            for p in layer.parameters { if let g = p.gradient { expected["grad_\(p.name).npy"] = g } }
        }
        if ac.mode == .train, let rm = layer.buffer(named: "running_mean"), let rv = layer.buffer(named: "running_var") {
            expected["running_mean.npy"] = rm.value
            expected["running_var.npy"] = rv.value
        }
        // The in-process expectation agrees with the contract's file list (a check of the test).
        #expect(Set(expected.keys) == ac.expectedFiles, "in-process layer produced \(expected.keys.sorted())")

        let run = try normlab(args)
        try #require(run.succeeded, "\(run)")
        #expect(run.stderr.isEmpty, "stderr: \(run.stderr)")
        #expect(directoryEntries(dir.path("out")) == ac.expectedFiles)
        for file in ac.expectedFiles {
            let got = try NPY.read(contentsOf: URL(fileURLWithPath: dir.path("out/\(file)")))
            let want = try #require(expected[file])
            #expect(got.shape == want.shape, "\(file): shape \(got.shape) vs \(want.shape)")
            // Same code on the same float32 inputs: equal up to rounding-order differences a
            // differently optimised binary (NORMLAB_BIN=release) might make, far below 1e-6.
            let scale = max(1, want.scalars.map { abs(Double($0)) }.max() ?? 0)
            let err = zip(got.scalars, want.scalars).map { abs(Double($0) - Double($1)) }.max() ?? 0
            #expect(err <= 1e-6 * scale, "\(file): max abs error \(err) (scale \(scale))")
        }
    }

    @Test("float64 input is accepted (rounded to float32)")
    func float64Input() throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        var rng = TestRNG(seed: 78)
        let values = (0..<24).map { _ in rng.normal() * 2 + 1 }
        let path = try dir.write("x64.npy", bytes: npyBytes(descr: "<f8", shape: [2, 3, 4], payload: littleEndianBytes(values)))
        let run = try normlab(["apply", "gn", "--set", "num_groups=3", "--input", path, "--out", dir.path("out")])
        try #require(run.succeeded, "\(run)")
        let layer = try Builtins.registry.make(NormSpec("gn", options: ["num_groups": .integer(3)]), shape: FeatureShape(channels: 3, spatial: [4]))
        let want = try layer.forward(Tensor(shape: [2, 3, 4], doubles: values), mode: .train)
        let got = try NPY.read(contentsOf: URL(fileURLWithPath: dir.path("out/output.npy")))
        #expect(got.shape == [2, 3, 4])
        #expect(got.maxAbsDifference(want) <= 1e-6)
        #expect(directoryEntries(dir.path("out")) == ["output.npy"])
    }

    @Test("a big-endian float32 .npy gives the same result as the little-endian one")
    func bigEndianInput() throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        var rng = TestRNG(seed: 80)
        let x = rng.normalTensor([3, 2, 4])
        var payload = Data()
        for v in x.scalars { withUnsafeBytes(of: v.bitPattern.bigEndian) { payload.append(contentsOf: $0) } }
        let big = try dir.write("big.npy", bytes: npyBytes(descr: ">f4", shape: [3, 2, 4], payload: payload))
        let little = try dir.write("little.npy", x)
        let a = try normlab(["apply", "bn", "--input", big, "--out", dir.path("a")])
        let b = try normlab(["apply", "bn", "--input", little, "--out", dir.path("b")])
        try #require(a.succeeded && b.succeeded, "\(a)\n\(b)")
        for file in ["output.npy", "running_mean.npy", "running_var.npy"] {
            let ta = try NPY.read(contentsOf: URL(fileURLWithPath: dir.path("a/\(file)")))
            let tb = try NPY.read(contentsOf: URL(fileURLWithPath: dir.path("b/\(file)")))
            #expect(ta.isBitIdentical(to: tb), "\(file)")
        }
    }

    @Test("NaN in the input propagates to the output or is rejected cleanly")
    func nanInput() throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        var rng = TestRNG(seed: 81)
        var x = rng.normalTensor([4, 2, 3])
        x[flat: 3] = .nan   // sample 0, channel 1
        let run = try normlab(["apply", "bn", "--input", try dir.write("x.npy", x), "--out", dir.path("out")])
        if run.succeeded {
            let y = try NPY.read(contentsOf: URL(fileURLWithPath: dir.path("out/output.npy"))).scalars
            #expect(y[3].isNaN)
            #expect(y.indices.filter { ($0 / 3) % 2 == 0 }.allSatisfy { y[$0].isFinite }, "channel 0 stays finite")
        } else {
            #expect(run.reason == .exit && run.stderrLines.count == 1, "\(run)")
            #expect((directoryEntries(dir.path("out")) ?? []).isEmpty)
        }
    }

    @Test("a missing DIR is created (nested); an existing one is used as is")
    func outputDirectoryHandling() throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        var rng = TestRNG(seed: 79)
        let x = try dir.write("x.npy", rng.normalTensor([3, 2, 4]))
        let nested = dir.path("a/b/c")
        let first = try normlab(["apply", "ln", "--input", x, "--out", nested])
        try #require(first.succeeded, "\(first)")
        #expect(directoryEntries(nested) == ["output.npy"])

        let existing = dir.path("existing")
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: existing + "/notes.txt"))
        let second = try normlab(["apply", "in", "--input", x, "--out", existing])
        try #require(second.succeeded, "\(second)")
        #expect(directoryEntries(existing) == ["notes.txt", "output.npy"])
    }

    @Test("list names every built-in with its aliases")
    func list() throws {
        let run = try normlab(["list"])
        try #require(run.succeeded, "\(run)")
        #expect(run.stderr.isEmpty)
        let pairs = [("batch_norm", "bn"), ("batch_renorm", "brn"), ("group_norm", "gn"), ("layer_norm", "ln"),
                     ("instance_norm", "in"), ("filter_response_norm", "frn")]
        let lines = run.stdout.split(separator: "\n").map(String.init)
        for (name, alias) in pairs {
            let row = lines.first { $0.hasPrefix(name + " ") }
            #expect(row != nil, "no row for \(name) in:\n\(run.stdout)")
            if let row { #expect(row.split(separator: " ").contains { $0.split(separator: ",").contains(Substring(alias)) }, "\(row)") }
        }
    }

    @Test("describe shows options, defaults and conventions", arguments: [
        ("GN", ["group_norm", "num_groups", "(required)", "eps", "1e-05", "affine"]),
        ("Batch_Renorm", ["batch_renorm", "r_max", "d_max", "momentum", "keras_decay", "running_var", "unbiased", "stop-gradient"]),
        ("frn", ["filter_response_norm", "tlu", "learnable_eps", "1e-06", "tau"]),
        ("in", ["instance_norm", "track_running_stats", "false"]),
    ])
    func describe(method: String, mustContain: [String]) throws {
        let run = try normlab(["describe", method])
        try #require(run.succeeded, "\(run)")
        for text in mustContain { #expect(run.stdout.contains(text), "describe \(method) lacks '\(text)'") }
    }

    @Test("describe of an unknown method fails with one line")
    func describeUnknown() throws {
        let run = try normlab(["describe", "weight_norm"])
        #expect(run.reason == .exit && run.status != 0, "\(run)")
        #expect(run.stderrLines.count == 1, "\(run)")
        #expect(run.stderr.contains("weight_norm"))
    }
}

/// Bad inputs: each must exit non-zero (not by a signal), print exactly one line on stderr
/// naming the problem, and leave no file in DIR.
enum BadInput: String, CaseIterable, Sendable {
    case unknownMethod, unknownSetKey, unparsableValue, setWithoutEquals, wrongWeightLength, wrongRunningVarLength
    case groupsNotDividing, missingNumGroups, zeroNumGroups, singleValuePerChannel, singleValuePerGroup, emptyBatch
    case unsupportedRankIN, unsupportedRankScalar, missingFile, truncatedNPY, notNPY, integerDType, unknownFlag
    case paramWithoutEquals, unknownParamName, badMode, gradOutputShape, runningStatsWithoutTracking, contradictoryMomentum
    case missingInputFlag

    /// Arguments after `apply` (or the whole line), and a word the message must contain.
    func arguments(_ dir: Scratch, out: String) throws -> (args: [String], mentions: String) {
        var rng = TestRNG(seed: 90)
        let x = try dir.write("x.npy", rng.normalTensor([4, 3, 5]))
        let common = ["--input", x, "--out", out]
        switch self {
        case .unknownMethod: return (["apply", "foo_norm"] + common, "foo_norm")
        case .unknownSetKey: return (["apply", "bn", "--set", "bogus_key=1"] + common, "bogus_key")
        case .unparsableValue: return (["apply", "bn", "--set", "eps=abc"] + common, "eps")
        case .setWithoutEquals: return (["apply", "bn", "--set", "eps"] + common, "eps")
        case .wrongWeightLength:
            return (["apply", "bn", "--weight", try dir.write("w.npy", .ones([4]))] + common, "weight")
        case .wrongRunningVarLength:
            return (["apply", "bn", "--running-var", try dir.write("rv.npy", .ones([2]))] + common, "running_var")
        case .groupsNotDividing:
            return (["apply", "gn", "--set", "num_groups=2"] + common, "num_groups")
        case .missingNumGroups: return (["apply", "gn"] + common, "num_groups")
        case .zeroNumGroups: return (["apply", "gn", "--set", "num_groups=0"] + common, "num_groups")
        case .singleValuePerChannel:
            return (["apply", "bn", "--input", try dir.write("one.npy", rng.normalTensor([1, 3])), "--out", out], "batch_norm")
        case .singleValuePerGroup:
            return (["apply", "gn", "--set", "num_groups=3", "--input", try dir.write("g.npy", rng.normalTensor([2, 3])), "--out", out], "group_norm")
        case .emptyBatch:
            return (["apply", "bn", "--input", try dir.write("empty.npy", .zeros([0, 3, 4])), "--out", out], "empty")
        case .unsupportedRankIN:
            return (["apply", "in", "--input", try dir.write("nc.npy", rng.normalTensor([4, 3])), "--out", out], "rank")
        case .unsupportedRankScalar:
            return (["apply", "bn", "--input", try dir.write("vec.npy", rng.normalTensor([6])), "--out", out], "batch_norm")
        case .missingFile: return (["apply", "bn", "--input", dir.path("nope.npy"), "--out", out], "nope.npy")
        case .truncatedNPY:
            let full = NPY.encode(rng.normalTensor([4, 3, 5]))
            return (["apply", "bn", "--input", try dir.write("cut.npy", bytes: full.prefix(full.count - 7)), "--out", out], "truncated")
        case .notNPY:
            return (["apply", "bn", "--input", try dir.write("text.npy", bytes: Data("hello, world\n".utf8)), "--out", out], "text.npy")
        case .integerDType:
            let bytes = npyBytes(descr: "<i4", shape: [2, 3, 2], payload: littleEndianBytes((0..<12).map { Int32($0) }))
            return (["apply", "bn", "--input", try dir.write("int.npy", bytes: bytes), "--out", out], "dtype")
        case .unknownFlag: return (["apply", "bn", "--bogus-flag", "1"] + common, "bogus-flag")
        case .paramWithoutEquals: return (["apply", "frn", "--param", "tau"] + common, "param")
        case .unknownParamName:
            return (["apply", "bn", "--param", "gamma=\(try dir.write("g.npy", .ones([3])))"] + common, "gamma")
        case .badMode: return (["apply", "bn", "--mode", "training"] + common, "mode")
        case .gradOutputShape:
            return (["apply", "bn", "--grad-output", try dir.write("gy.npy", .ones([4, 3, 4]))] + common, "grad")
        case .runningStatsWithoutTracking:
            return (["apply", "gn", "--set", "num_groups=3", "--running-mean", try dir.write("rm.npy", .zeros([3]))] + common, "running_mean")
        case .contradictoryMomentum:
            return (["apply", "bn", "--set", "momentum=0.1", "--set", "keras_decay=0.9"] + common, "keras_decay")
        case .missingInputFlag: return (["apply", "bn", "--out", out], "input")
        }
    }
}

@Suite("normlab apply: bad input fails cleanly (subprocess)")
struct ApplyCLIErrorTests {
    @Test("non-zero exit, one line on stderr naming the problem, no file in DIR", arguments: BadInput.allCases)
    func badInputFailsCleanly(_ bad: BadInput) throws {
        let dir = try Scratch()
        defer { dir.cleanUp() }
        // Half the cases with an existing (empty) DIR, half with a DIR that does not exist yet.
        let out = dir.path("out")
        let preCreate = BadInput.allCases.firstIndex(of: bad)! % 2 == 0
        if preCreate { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false) }
        let (args, mentions) = try bad.arguments(dir, out: out)
        let run = try normlab(args)
        #expect(run.reason == .exit, "\(bad): ended by a signal: \(run)")
        #expect(run.status != 0, "\(bad): exit status 0: \(run)")
        #expect(run.stderrLines.count == 1, "\(bad): stderr must be exactly one line: \(run)")
        #expect(run.stderr.hasSuffix("\n"), "\(bad): stderr line must end with a newline")
        #expect(!run.stderr.lowercased().contains("usage:"), "\(bad): no usage dump: \(run)")
        #expect(run.stderr.lowercased().contains(mentions.lowercased()), "\(bad): message should mention '\(mentions)': \(run.stderr)")
        #expect(run.stdout.isEmpty, "\(bad): stdout: \(run.stdout)")
        let entries = directoryEntries(out)
        if preCreate { #expect(entries == [], "\(bad): files left in DIR: \(entries ?? [])") }
        else { #expect(entries == nil || entries == [], "\(bad): files left in DIR: \(entries ?? [])") }
    }
}

extension Tensor {
    /// A deep copy (own storage), immune to a layer reusing its output block.
    var copyTensor: Tensor { Tensor(shape: shape, scalars: scalars) }
}
