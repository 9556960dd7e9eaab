import Foundation
import Testing
import NormCore
import NormPlugins
@testable import NormNet

/// PreciseBN, FrozenBN folding and the norm telemetry.
@Suite struct StatisticsToolsTests {
    let registry = Builtins.registry
    let data = subset(syntheticData, train: 256, test: 64)

    /// Per-channel mean and biased variance of `(N, C, S)` over (N, S), in float64.
    func channelMoments(_ t: Tensor) -> (mean: [Double], variance: [Double]) {
        let n = t.shape[0], c = t.shape[1], s = t.spatialCount
        var mean = [Double](repeating: 0, count: c), variance = mean
        for ch in 0..<c {
            var vals: [Double] = []
            for i in 0..<n { for j in 0..<s { vals.append(Double(t[flat: (i * c + ch) * s + j])) } }
            let m = vals.reduce(0, +) / Double(vals.count)
            mean[ch] = m
            variance[ch] = vals.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(vals.count)
        }
        return (mean, variance)
    }

    func batches(_ x: Tensor, size: Int) -> [Tensor] {
        let per = x.count / x.shape[0]
        return stride(from: 0, to: x.shape[0], by: size).map { start in
            let k = min(size, x.shape[0] - start)
            return Tensor(shape: [k] + x.shape.dropFirst(), scalars: Array(x.scalars[(start * per)..<((start + k) * per)]))
        }
    }

    @Test func pooledMomentsAreExact() {
        // Two batches with different means: pooling is exact, averaging variances is not.
        let a: [Double] = [1, 2, 3, 4], b: [Double] = [10, 12, 14]
        func mv(_ v: [Double]) -> (Double, Double) {
            let m = v.reduce(0, +) / Double(v.count)
            return (m, v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count))
        }
        var p = PooledMoments()
        let (ma, va) = mv(a), (mb, vb) = mv(b), (m, v) = mv(a + b)
        p.add(count: 4, mean: ma, biasedVariance: va)
        p.add(count: 3, mean: mb, biasedVariance: vb)
        #expect(abs(p.mean - m) < 1e-12 && abs(p.biasedVariance - v) < 1e-12)
        #expect(abs(p.unbiasedVariance - v * 7 / 6) < 1e-12)
        #expect(abs((va + vb) / 2 - v) > 1)
    }

    @Test(arguments: [NormSpec("bn"), NormSpec("brn"), NormSpec("bn", options: ["running_var": .text("biased")])])
    func preciseBNEqualsPopulationStatistics(_ norm: NormSpec) throws {
        let model = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 3)
        let config = TrainingConfig(batchSize: 32, duration: .steps(5), schedule: LRSchedule(.constant))
        _ = try Trainer(model: model, dataset: data, config: config).run()
        let countBefore = model.namedBuffers.first { $0.name == "blocks.0.norm.num_batches_tracked" }!.buffer.value
        // Batches of unequal size (100, 100, 56) that cover the training set.
        let report = try PreciseBN.recompute(model, batches: batches(data.trainInputs, size: 100))
        #expect(report.updated == ["blocks.0.norm", "blocks.1.norm"] && report.batches == 3)
        // The first norm's input is conv0(x): its statistics over the whole set.
        let h = try model.blocks[0].conv.forward(data.trainInputs, mode: .eval)
        let (mean, variance) = channelMoments(h)
        let total = Double(h.shape[0] * h.spatialCount)
        let unbiased = norm.options["running_var"] != .text("biased")
        let rm = model.namedBuffers.first { $0.name == "blocks.0.norm.running_mean" }!.buffer.value
        let rv = model.namedBuffers.first { $0.name == "blocks.0.norm.running_var" }!.buffer.value
        for c in 0..<mean.count {
            let v = unbiased ? variance[c] * total / (total - 1) : variance[c]
            #expect(abs(Double(rm[flat: c]) - mean[c]) <= 1e-5 * max(1, abs(mean[c])))
            #expect(abs(Double(rv[flat: c]) - v) <= 1e-5 * max(1, v))
        }
        #expect(model.namedBuffers.first { $0.name == "blocks.0.norm.num_batches_tracked" }!.buffer.value.isBitIdentical(to: countBefore))
        #expect(model.mode == .train)
    }

    @Test func preciseBNForTrackedInstanceNorm() throws {
        let norm = NormSpec("in", options: ["track_running_stats": .bool(true)])
        let model = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 3)
        try PreciseBN.recompute(model, batches: batches(data.trainInputs, size: 64))
        let h = try model.blocks[0].conv.forward(data.trainInputs, mode: .eval)
        let n = h.shape[0], c = h.shape[1], s = h.spatialCount
        let rm = model.namedBuffers.first { $0.name == "blocks.0.norm.running_mean" }!.buffer.value
        let rv = model.namedBuffers.first { $0.name == "blocks.0.norm.running_var" }!.buffer.value
        for ch in 0..<c {
            var mSum = 0.0, vSum = 0.0
            for i in 0..<n {
                let vals = (0..<s).map { Double(h[flat: (i * c + ch) * s + $0]) }
                let m = vals.reduce(0, +) / Double(s)
                mSum += m
                vSum += vals.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(s - 1)
            }
            #expect(abs(Double(rm[flat: ch]) - mSum / Double(n)) < 1e-5)
            #expect(abs(Double(rv[flat: ch]) - vSum / Double(n)) < 1e-5 * max(1, vSum / Double(n)))
        }
    }

    @Test func preciseBNSkipsWhatItCannotRecompute() throws {
        let gn = try Model(spec: smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)])), registry: registry, seed: 1)
        let r = try PreciseBN.recompute(gn, batches: batches(data.trainInputs, size: 64))
        #expect(r.updated.isEmpty && r.skipped.count == 2)
        var spec = smallSpec(norm: NormSpec("bn"))
        spec.freeze.perLayer = [0: .all]
        let frozen = try Model(spec: spec, registry: registry, seed: 1)
        let before = snapshot(frozen)
        let r2 = try PreciseBN.recompute(frozen, batches: batches(data.trainInputs, size: 64))
        #expect(r2.updated == ["blocks.1.norm"] && r2.skipped["blocks.0.norm"] != nil)
        #expect(before["blocks.0.norm.running_var"]!.isBitIdentical(to: snapshot(frozen)["blocks.0.norm.running_var"]!))
    }

    @Test(arguments: [1e-5, 1e-3, 0.1])
    func freshFrozenBatchNormIsExactIdentity(_ eps: Double) throws {
        let f = try FrozenBatchNorm(channels: 5, eps: eps)
        var rng = SeededGenerator(seed: 11)
        for shape in [[3, 5], [2, 5, 7], [2, 5, 3, 4]] {
            let x = Tensor.randomNormal(shape, std: 3, using: &rng)
            #expect(try f.forward(x, mode: .train).isBitIdentical(to: x))
            #expect(try f.backward(x).isBitIdentical(to: x))
        }
        #expect(f.affine.scale.allSatisfy { $0 == 1 } && f.affine.shift.allSatisfy { $0 == 0 })
    }

    @Test(arguments: [NormSpec("bn"), NormSpec("brn", options: ["eps": .real(1e-3)]),
                      NormSpec("in", options: ["track_running_stats": .bool(true), "affine": .bool(true)]),
                      NormSpec("bn", options: ["affine": .bool(false)])])
    func foldingEqualsEvalMode(_ norm: NormSpec) throws {
        var spec = smallSpec(norm: norm)
        spec.convBias = true
        let model = try Model(spec: spec, registry: registry, seed: 6)
        let config = TrainingConfig(batchSize: 32, duration: .steps(12), optimizer: SGDConfig(learningRate: 0.05),
                                    schedule: LRSchedule(.constant))
        _ = try Trainer(model: model, dataset: data, config: config).run()
        model.setMode(.eval)
        let x = data.testInputs
        let reference = try model.forward(x)
        // Per-layer: the folded layer equals the original in eval mode on that layer's input.
        let slot = model.normSlots[0]
        let h = try model.blocks[0].conv.forward(x, mode: .eval)
        let yEval = try slot.layer.forward(h, mode: .eval)
        let report = try model.foldFrozenBatchNorm()
        #expect(report.folded == ["blocks.0.norm", "blocks.1.norm"] && report.skipped.isEmpty)
        #expect(model.normSlots.allSatisfy { $0.layer.plugin is FrozenBatchNorm })
        let yFolded = try model.normSlots[0].layer.forward(h, mode: .train)
        #expect(yFolded.maxAbsDifference(yEval) <= 2e-6 * max(1, yEval.scalars.map { abs($0) }.max()!))
        let folded = try model.forward(x)
        #expect(folded.maxAbsDifference(reference) < 1e-4)
        // Train mode is the same fixed affine (nothing is learned or updated).
        model.setMode(.train)
        #expect(try model.forward(x).isBitIdentical(to: folded))
        #expect(model.normSlots.allSatisfy { $0.parameters.isEmpty })
        #expect(model.namedBuffers.map(\.name).contains("blocks.0.norm.running_var"))
    }

    @Test func foldingLeavesPerSampleNormsAlone() throws {
        for norm in [NormSpec("gn", options: ["num_groups": .integer(2)]), NormSpec("ln"), NormSpec("frn"), NormSpec("in")] {
            let model = try Model(spec: smallSpec(norm: norm), registry: registry, seed: 1)
            let report = try model.foldFrozenBatchNorm()
            #expect(report.folded.isEmpty && report.skipped.count == 2, "\(norm.name)")
            #expect(report.skipped.allSatisfy { $0.reason.contains("running statistics") })
            #expect(model.normSlots.allSatisfy { !($0.layer.plugin is FrozenBatchNorm) })
        }
    }

    @Test func telemetryRecordsGapsAndClipRates() throws {
        let model = try Model(spec: smallSpec(norm: NormSpec("brn", options: ["r_max": .real(1.5), "d_max": .real(0.5)])),
                              registry: registry, seed: 2)
        let config = TrainingConfig(batchSize: 32, duration: .steps(10), schedule: LRSchedule(.constant))
        let r = try Trainer(model: model, dataset: data, config: config).run()
        #expect(r.normTelemetry.count == 2)
        for t in r.normTelemetry {
            #expect(t.recordedSteps == 10 && t.meanGap! > 0 && t.stdLogRatio! > 0 && t.note == nil)
            #expect((0...1).contains(t.rClipRate!) && (0...1).contains(t.dClipRate!))
        }
        // The first steps see running stats (0, 1) far from the batch: r clips at r_max=1.5.
        #expect(r.normTelemetry.contains { $0.rClipRate! > 0 })
        #expect(r.testAccuracyTrainMode != nil && r.trainEvalAccuracyGap != nil)

        let gn = try Model(spec: smallSpec(norm: NormSpec("gn", options: ["num_groups": .integer(2)])), registry: registry, seed: 2)
        let g = try Trainer(model: gn, dataset: data, config: config).run()
        #expect(g.normTelemetry.allSatisfy { $0.recordedSteps == 0 && $0.note!.contains("no running statistics") && $0.rClipRate == nil })
    }
}
