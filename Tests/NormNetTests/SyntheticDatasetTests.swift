import NormCore
import NormNet
import Testing

@Suite struct SyntheticDatasetTests {
    @Test func shapesLabelsAndDeterminism() throws {
        let a = try Datasets.load(.synthetic, seed: 3), b = try Datasets.load(.synthetic, seed: 3)
        let c = try Datasets.load(.synthetic, seed: 4)
        #expect(a.trainInputs.shape == [512, 1, 32] && a.testInputs.shape == [256, 1, 32])
        #expect(a.trainLabels.count == 512 && a.trainLabels.allSatisfy { (0..<a.classes).contains($0) })
        #expect(a.trainInputs.isBitIdentical(to: b.trainInputs) && a.trainLabels == b.trainLabels)
        #expect(!a.trainInputs.isBitIdentical(to: c.trainInputs))
        #expect(a.sampleShape == [1, 32])
    }
}
