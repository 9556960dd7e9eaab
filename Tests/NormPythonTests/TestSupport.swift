import Foundation
import NormCore
@testable import NormPython

/// Paths and small helpers shared by the NormPython tests.
enum TestSupport {
    /// The repository root: this file is `<root>/Tests/NormPythonTests/TestSupport.swift`.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `<root>/python`, which holds the `normref` package.
    static var pythonDirectory: String { repositoryRoot.appendingPathComponent("python").path }

    /// A fresh temporary directory for test files.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("normpython-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Deterministic pseudo-random floats in [-scale, scale) + offset (a 64-bit LCG).
    static func values(_ count: Int, seed: UInt64, scale: Float = 1, offset: Float = 0) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let unit = Float(state >> 40) / Float(1 << 24)
            return (unit * 2 - 1) * scale + offset
        }
    }

    /// A tensor of `shape` with deterministic values.
    static func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        Tensor(shape: shape, scalars: values(shape.reduce(1, *), seed: seed, scale: scale, offset: offset))
    }

    /// The integer address of `storage`'s first element.
    static func address(of tensor: Tensor) -> Int {
        Int(bitPattern: UnsafeRawPointer(tensor.storage.base))
    }
}
