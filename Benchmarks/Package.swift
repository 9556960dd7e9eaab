// swift-tools-version: 6.1
// Regression benchmarks for normlab's kernels (ordo-one/benchmark). A package of its own so
// that neither `swift build` nor `swift test` of the main package ever builds it.
//
//   cd Benchmarks && swift package benchmark                      # run everything
//   cd Benchmarks && swift package benchmark --filter "bn.*"      # a subset
//   cd Benchmarks && swift package benchmark baseline update main # record a baseline
//   cd Benchmarks && swift package benchmark baseline check main  # compare with it
//
// See README.md in this folder.
import Foundation
import PackageDescription

// The main package is this folder's parent; SwiftPM names a path dependency after its
// folder (`normlab`, `main`, whatever the clone is called).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "NormlabBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        // MallocInterposer only: the default traits add a runtime interposer package on Linux
        // with Swift 6.3 that is not needed here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "NormKernels",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NormCore", package: root),
                .product(name: "NormPlugins", package: root),
            ],
            path: "Benchmarks/NormKernels",
            swiftSettings: [.unsafeFlags(["-Ounchecked"])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
