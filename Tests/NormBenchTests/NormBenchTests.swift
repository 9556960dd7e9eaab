import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormBench

// No timing is asserted anywhere here: the machine is shared and noisy. These tests check
// the bench's arithmetic, its records, and that its correctness check catches wrong kernels.

/// A reference path computed by the built-in Swift plugins themselves (float32), standing in
/// for the Python references so these tests need no interpreter.
struct SwiftReference: BenchReference {
    let registry: NormRegistry
    /// Methods it covers, mapped to the built-in that computes the expected arrays.
    let methods: [String: String]

    func covers(_ method: String) -> Bool { methods[method] != nil }

    func run(method: String, input: Tensor, mode: Mode, gradOutput: Tensor?, parameters: [String: Tensor],
             buffers: [String: Tensor], options: [String: OptionValue]) throws -> [String: Tensor] {
        let saved = Parallel.threadCount
        Parallel.threadCount = 1
        defer { Parallel.threadCount = saved }
        let layer = try registry.make(NormSpec(methods[method]!, options: options), shape: FeatureShape(of: input))
        for p in layer.parameters { if let v = parameters[p.name] { p.value = v } }
        for b in layer.buffers { if let v = buffers[b.name] { b.value = v } }
        var out = ["output": try layer.forward(input, mode: mode)]
        if let gradOutput {
            out["grad_input"] = try layer.backward(gradOutput)
            for p in layer.parameters { if let g = p.gradient { out["grad_\(p.name)"] = g } }
        }
        return out
    }
}

/// BatchNorm whose output is off by 1e-3 at one element: a subtly wrong kernel.
final class SkewedBatchNorm: NormalizationPlugin {
    static let descriptor = NormDescriptor(
        name: "skewed_bn", summary: "BatchNorm with one wrong output element (test fixture)", reference: "test",
        options: BatchNorm.descriptor.options, ranks: 2...5)
    let inner: BatchNorm
    init(shape: FeatureShape, options: NormOptions) throws { inner = try BatchNorm(shape: shape, options: options) }
    var parameters: [Parameter] { inner.parameters }
    var buffers: [Buffer] { inner.buffers }
    var tracksRunningStatistics: Bool { inner.tracksRunningStatistics }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var y = try inner.forward(x, mode: mode)
        y[flat: y.count / 2] += 1e-3
        return y
    }
    func backward(_ g: Tensor) throws -> Tensor { try inner.backward(g) }
}

/// BatchNorm whose gradient depends on the thread count: breaks bit-identity.
final class ThreadDependentBatchNorm: NormalizationPlugin {
    static let descriptor = NormDescriptor(
        name: "thread_dependent_bn", summary: "BatchNorm whose gradient depends on the thread count (test fixture)",
        reference: "test", options: BatchNorm.descriptor.options, ranks: 2...5)
    let inner: BatchNorm
    init(shape: FeatureShape, options: NormOptions) throws { inner = try BatchNorm(shape: shape, options: options) }
    var parameters: [Parameter] { inner.parameters }
    var buffers: [Buffer] { inner.buffers }
    var tracksRunningStatistics: Bool { inner.tracksRunningStatistics }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor { try inner.forward(x, mode: mode) }
    func backward(_ g: Tensor) throws -> Tensor {
        var gx = try inner.backward(g)
        gx[flat: 0] += Float(Parallel.threadCount) * 1e-7
        return gx
    }
}

func testRegistry() throws -> NormRegistry {
    var r = Builtins.registry
    try r.register(SkewedBatchNorm.self)
    try r.register(ThreadDependentBatchNorm.self)
    return r
}

/// A tiny configuration: one small shape, few repetitions, a small STREAM array.
func tinyConfiguration(methods: [String], shapes: [[Int]] = [[4, 8, 4, 4]], threads: [Int] = [1, 2]) -> BenchConfiguration {
    var c = BenchConfiguration.quickRun()
    c.methods = methods
    c.shapes = shapes
    c.threads = threads
    c.warmup = 0
    c.minReps = 2
    c.maxReps = 2
    c.minSeconds = 0
    c.numpy = false
    c.streamElements = 1 << 16
    return c
}

@Suite("NormBench: arithmetic and records")
struct BenchArithmeticTests {
    @Test("Minimal traffic: train 3 passes, eval 2 with running statistics (3 without), backward 5; 4 B per element")
    func traffic() {
        #expect(Traffic.passes(.trainForward, evalUsesRunningStatistics: true) == 3)
        #expect(Traffic.passes(.evalForward, evalUsesRunningStatistics: true) == 2)
        #expect(Traffic.passes(.evalForward, evalUsesRunningStatistics: false) == 3)
        #expect(Traffic.passes(.backward, evalUsesRunningStatistics: false) == 5)
        #expect(Traffic.bytes(elements: 1000, passes: 3) == 12_000)
        #expect(Traffic.gigabytesPerSecond(bytes: 2e9, milliseconds: 1000) == 2)
        #expect(Traffic.gigabytesPerSecond(bytes: 1, milliseconds: 0) == 0)
        #expect(Traffic.percentOfCopy(7, copyGBps: 10) == 70)
        #expect(Traffic.speedup(ms: 2, numpyMs: 11) == 5.5)
        #expect(Traffic.speedup(ms: 2, numpyMs: nil) == nil)
    }

    @Test("A record derives GB/s, % of copy, ns/element and speed-up from its median")
    func recordArithmetic() {
        // 32x64x56x56 = 6,422,528 elements; train forward moves 3 · 4 B each = 77,070,336 B.
        let t = TimingSummary(seconds: [0.004, 0.003, 0.005])   // median 4 ms
        let np = TimingSummary(seconds: [0.030])
        let r = BenchRecord(method: "batch_norm", op: .trainForward, shape: [32, 64, 56, 56], threads: 2, timing: t,
                            passes: 3, copyGbps: 25, numpyTiming: np, check: "ok")
        #expect(r.bytes == 77_070_336)
        #expect(abs(r.gbps - 77_070_336 / 0.004 / 1e9) < 1e-9)
        #expect(abs(r.pctOfCopy - r.gbps / 25 * 100) < 1e-9)
        #expect(abs(r.nsPerElement - 4e6 / 6_422_528) < 1e-12)
        #expect(abs(r.speedupVsNumpy! - 7.5) < 1e-12)
    }

    @Test("Timing summary: median, percentiles (linear interpolation), min, max, spread")
    func timingSummary() {
        let t = TimingSummary(seconds: [0.005, 0.001, 0.003, 0.002, 0.004])
        #expect(t.reps == 5)
        #expect(abs(t.median - 3) < 1e-12 && abs(t.min - 1) < 1e-12 && abs(t.max - 5) < 1e-12)
        #expect(abs(t.p10 - 1.4) < 1e-12 && abs(t.p90 - 4.6) < 1e-12)
        #expect(abs(t.spreadPercent - 3.2 / 3 * 100) < 1e-9)
        let one = TimingSummary(seconds: [0.002])
        #expect(one.median == 2 && one.p10 == 2 && one.p90 == 2 && one.spreadPercent == 0)
    }

    @Test("JSON records carry the fields the issue names, speed-up null without numpy")
    func recordJSON() throws {
        let r = BenchRecord(method: "group_norm", op: .backward, shape: [8, 256, 14, 14], threads: 1,
                            timing: TimingSummary(seconds: [0.001, 0.002]), passes: 5, copyGbps: 40, numpyTiming: nil, check: "ok")
        let data = try JSONEncoder().encode(r)
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["method", "op", "shape", "threads", "ms_median", "gbps", "pct_of_copy", "speedup_vs_numpy",
                    "ms_p10", "ms_p90", "spread_pct", "reps", "passes", "bytes", "copy_gbps", "ns_per_element", "check"] {
            #expect(obj.keys.contains(key), "missing \(key)")
        }
        #expect(obj["method"] as? String == "group_norm")
        #expect(obj["op"] as? String == "backward")
        #expect(obj["shape"] as? [Int] == [8, 256, 14, 14])
        #expect(obj["threads"] as? Int == 1)
        #expect(obj["speedup_vs_numpy"] is NSNull)
        let back = try JSONDecoder().decode(BenchRecord.self, from: data)
        #expect(back.method == r.method && back.op == r.op && back.shape == r.shape && back.passes == 5)
        #expect(abs(back.timing.median - r.timing.median) < 1e-12 && abs(back.gbps - r.gbps) < 1e-9)
    }

    @Test("Targets: % of copy at the large shape, speed-up everywhere, small-shape time per element")
    func targets() {
        func rec(_ method: String, _ shape: [Int], _ ms: Double, copy: Double, numpy: Double?) -> BenchRecord {
            BenchRecord(method: method, op: .trainForward, shape: shape, threads: 2, timing: TimingSummary(seconds: [ms * 1e-3]),
                        passes: 3, copyGbps: copy, numpyTiming: numpy.map { TimingSummary(seconds: [$0 * 1e-3]) }, check: "ok")
        }
        let large = [32, 64, 56, 56], small = [64, 32, 8, 8]
        // 77 MB in 4 ms = 19.3 GB/s: 77% of 25 GB/s copy; 10x numpy.
        var records = [rec("bn", large, 4, copy: 25, numpy: 40), rec("bn", small, 4 * 131_072 / 6_422_528 * 1.2, copy: 50, numpy: 1)]
        var t = BenchReport.evaluateTargets(records, threads: [1, 2])
        #expect(t.map(\.name) == ["copy_bandwidth", "numpy_speedup", "small_shape_overhead"])
        #expect(t.allSatisfy { $0.evaluated && $0.met }, "\(t)")
        // Slower large shape: 60% of copy; small shape 2x per element; numpy only 2x at the large shape.
        records = [rec("bn", large, 5.14, copy: 25, numpy: 10), rec("bn", small, 5.14 * 131_072 / 6_422_528 * 2, copy: 50, numpy: 10)]
        t = BenchReport.evaluateTargets(records, threads: [1, 2])
        #expect(t.allSatisfy { $0.evaluated && !$0.met })
        #expect(t[0].misses.count == 1 && t[1].misses.count == 1 && t[2].misses.count == 1)
        // Without the large shape nothing but the speed-up can be evaluated.
        t = BenchReport.evaluateTargets([rec("bn", small, 0.1, copy: 50, numpy: 1)], threads: [2])
        #expect(!t[0].evaluated && t[1].evaluated && !t[2].evaluated)
    }

    @Test("Shapes and thread lists parse; bad ones are one-line errors")
    func parsing() throws {
        #expect(try BenchConfiguration.parseShapes("32x64x56x56, 256x1024") == [[32, 64, 56, 56], [256, 1024]])
        #expect(try BenchConfiguration.parseThreads("1,2,2") == [1, 2])
        for bad in ["", "32", "32x", "0x4", "axb", "4x-1"] {
            #expect(throws: BenchError.self) { try BenchConfiguration.parseShapes(bad) }
        }
        for bad in ["", "0", "x", "1,-2"] {
            #expect(throws: BenchError.self) { try BenchConfiguration.parseThreads(bad) }
        }
        #expect(shapeLabel([8, 256, 14, 14]) == "8x256x14x14")
    }

    @Test("GroupNorm gets num_groups (largest divisor of C up to 32); other required options skip the method")
    func options() {
        #expect(BenchSubject.options(for: GroupNorm.descriptor, shape: [32, 64, 56, 56]) == ["num_groups": .integer(32)])
        #expect(BenchSubject.options(for: GroupNorm.descriptor, shape: [8, 24, 4, 4]) == ["num_groups": .integer(24)])
        #expect(BenchSubject.options(for: GroupNorm.descriptor, shape: [256, 20]) == ["num_groups": .integer(10)])
        #expect(BenchSubject.options(for: BatchNorm.descriptor, shape: [4, 3]) == [:])
        let odd = NormDescriptor(name: "odd", summary: "", reference: "",
                                 options: [OptionSpec("size", .integer(1...9), default: nil, "required")])
        #expect(BenchSubject.options(for: odd, shape: [4, 3]) == nil)
    }

    @Test("STREAM copy and triad compute b = a and a = b + s·c, serial and split")
    func streamKernels() {
        for (n, threads) in [(37, 1), (100_003, 2)] {
            let saved = Parallel.threadCount
            Parallel.threadCount = threads
            defer { Parallel.threadCount = saved }
            let a = (0..<n).map { Float($0 % 97) }, c = (0..<n).map { Float($0 % 13) * 0.5 }
            var b = [Float](repeating: -1, count: n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeMutableBufferPointer { bp in StreamKernels.copy(ap.baseAddress!, bp.baseAddress!, count: n) } }
            #expect(b == a)
            var out = [Float](repeating: -1, count: n)
            out.withUnsafeMutableBufferPointer { op in b.withUnsafeBufferPointer { bp in c.withUnsafeBufferPointer { cp in
                StreamKernels.triad(op.baseAddress!, bp.baseAddress!, cp.baseAddress!, scalar: 3, count: n)
            }}}
            #expect((0..<n).allSatisfy { out[$0] == a[$0] + 3 * c[$0] })
        }
    }
}

@Suite("NormBench: correctness check before timing", .serialized)
struct BenchCheckTests {
    @Test("Comparison: tolerance relative to max(1, max|ref|), shape and NaN placement")
    func comparison() {
        let ref = Tensor(shape: [2, 2], scalars: [1, -2, 3, 100])
        #expect(Correctness.compare("y", Tensor(shape: [2, 2], scalars: [1, -2, 3, 100.005]), ref, tolerance: 1e-4).passed)
        let off = Correctness.compare("y", Tensor(shape: [2, 2], scalars: [1, -2, 3.02, 100]), ref, tolerance: 1e-4)
        #expect(!off.passed && abs(off.relError - 0.02 / 100) < 1e-6)
        #expect(!Correctness.compare("y", Tensor(shape: [3], scalars: [1, 2, 3]), ref, tolerance: 1).passed)
        #expect(!Correctness.compare("y", Tensor(shape: [2, 2], scalars: [1, .nan, 3, 100]), ref, tolerance: 1).passed)
        let missing = Correctness.compareAll(["output": ref], ["output": ref, "grad_input": ref], tolerance: 1e-4)
        #expect(missing.filter { !$0.passed }.map(\.name) == ["grad_input"])
    }

    @Test("A correct kernel passes against the reference and across thread counts", arguments: ["bn", "gn", "ln", "in", "frn", "brn"])
    func correctKernelPasses(method: String) throws {
        let registry = try testRegistry()
        let entry = try registry.entry(named: method)
        let name = entry.descriptor.name
        let reference = SwiftReference(registry: registry, methods: [name: name])
        for shape in [[4, 8, 4, 4], [6, 16, 20]] where entry.descriptor.ranks.contains(shape.count) {
            let subject = try BenchSubject(entry: entry, shape: shape, given: BenchSubject.options(for: entry.descriptor, shape: shape)!, seed: 3)
            let (outcome, _) = subject.check(threads: [1, 2, 3], reference: reference, tolerance: 1e-4)
            #expect(outcome.passed, "\(method) \(shape): \(outcome.failures)")
            #expect(outcome.against == "reference" && outcome.bitIdenticalAcrossThreads)
        }
    }

    @Test("A kernel with one wrong output element is caught before timing")
    func wrongKernelIsCaught() throws {
        let registry = try testRegistry()
        let reference = SwiftReference(registry: registry, methods: ["skewed_bn": "batch_norm"])
        let subject = try BenchSubject(entry: try registry.entry(named: "skewed_bn"), shape: [4, 8, 4, 4], given: [:], seed: 1)
        let (outcome, _) = subject.check(threads: [1, 2], reference: reference, tolerance: 1e-4)
        #expect(!outcome.passed)
        #expect(outcome.failures.contains { $0.hasPrefix("output") })
        #expect(outcome.failures.contains { $0.hasPrefix("eval_output") })
        #expect(outcome.label == "FAIL")

        // The runner times nothing for it and reports the failure.
        let runner = BenchRunner(registry: registry, configuration: tinyConfiguration(methods: ["skewed_bn", "bn"]), reference: reference)
        let report = try runner.run()
        #expect(!report.passed)
        #expect(report.records.allSatisfy { $0.method == "batch_norm" })
        #expect(report.skipped.contains { $0.method == "skewed_bn" && $0.failed && $0.reason.contains("correctness check failed") })
    }

    @Test("A kernel whose result depends on the thread count is caught (no reference needed)")
    func threadDependenceIsCaught() throws {
        let registry = try testRegistry()
        let subject = try BenchSubject(entry: try registry.entry(named: "thread_dependent_bn"), shape: [4, 8, 4, 4], given: [:], seed: 1)
        let (outcome, _) = subject.check(threads: [1, 2], reference: nil, tolerance: 1e-4)
        #expect(!outcome.passed && !outcome.bitIdenticalAcrossThreads && outcome.against == "threads")
        #expect(outcome.failures.contains { $0.contains("grad_input differs between 1 and 2 threads") })
    }
}

@Suite("NormBench: a whole run", .serialized)
struct BenchRunTests {
    @Test("Rounds: every record pools one share of the calls per round; a size-matched copy per subject and round")
    func rounds() throws {
        let registry = try testRegistry()
        var cfg = tinyConfiguration(methods: ["bn", "ln"], shapes: [[4, 8, 4, 4]], threads: [1])
        cfg.minReps = 6
        cfg.maxReps = 6
        cfg.rounds = 3
        let report = try BenchRunner(registry: registry, configuration: cfg).run()
        #expect(report.passed)
        #expect(report.records.map(\.method) == Array(repeating: "batch_norm", count: 3) + Array(repeating: "layer_norm", count: 3))
        #expect(report.records.map(\.op) == BenchOp.allCases + BenchOp.allCases)
        // 6 calls split into 3 rounds of 2.
        #expect(report.records.allSatisfy { $0.timing.reps == 6 })
        #expect(report.sizeMatchedCopy.count == 1 && report.sizeMatchedCopy[0].elements == 512)
    }

    @Test("One record per method x op x shape x threads; rank-2 shapes skipped for IN/FRN; JSON round trip")
    func tinyRun() throws {
        let registry = try testRegistry()
        let builtins = ["batch_norm", "group_norm", "instance_norm"]
        let reference = SwiftReference(registry: registry, methods: Dictionary(uniqueKeysWithValues: builtins.map { ($0, $0) }))
        var cfg = tinyConfiguration(methods: ["bn", "gn", "in"], shapes: [[4, 8, 4, 4], [16, 8]])
        cfg.minReps = 1
        cfg.maxReps = 1
        let report = try BenchRunner(registry: registry, configuration: cfg, reference: reference).run()
        #expect(report.passed)
        // bn: 2 shapes, gn: 2 shapes, in: 1 shape (rank 2 refused) — x 3 ops x 2 thread counts.
        #expect(report.records.count == (2 + 2 + 1) * 3 * 2)
        #expect(report.skipped.map(\.method) == ["instance_norm"] && report.skipped.allSatisfy { !$0.failed })
        #expect(report.stream.count == 4 && Set(report.stream.map(\.kernel)) == ["copy", "triad"])
        #expect(Set(report.sizeMatchedCopy.map(\.elements)) == [512, 128])
        for r in report.records {
            #expect(r.timing.reps == 1 && r.numpyTiming == nil && r.speedupVsNumpy == nil)
            #expect(r.copyGbps == report.sizeMatchedCopy.first { $0.elements == r.elements && $0.threads == r.threads }!.gbps)
            #expect(r.passes == (r.op == .backward ? 5 : r.op == .evalForward && r.method == "batch_norm" ? 2 : 3))
        }
        #expect(report.checks.count == 5 && report.checks.values.allSatisfy { $0.passed && $0.against == "reference" })
        let json = try JSONSerialization.jsonObject(with: try report.json()) as? [String: Any]
        let records = try #require(json?["records"] as? [[String: Any]])
        #expect(records.count == report.records.count)
        #expect(report.table.contains("batch_norm") && report.table.contains("Targets:"))
    }
}
