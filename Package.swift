// swift-tools-version:6.0
import PackageDescription

/// Release flags of the kernel targets (NormKernels, NormCore, NormPlugins): no overflow or bounds checks
/// and, on x86-64, code for Haswell-class CPUs (AVX2, FMA, BMI2 — every x86-64 server of the
/// last decade, the AMD EPYC CI machine included): 256-bit vectors make the cache-resident
/// kernels 20–40 % faster (issue #7). Results are bit-identical to a generic x86-64 build (Swift
/// forms no fused multiply-adds); for a CPU without AVX2, drop the two `-target-cpu` arguments.
/// `-fno-math-errno` (for the C shims the importer inlines, `Double.squareRoot()` among them):
/// without it every square root tests its argument and keeps a call to libm's `sqrt` for errno,
/// which also stops four of them from becoming one `vsqrtpd`; the values are the same (IEEE
/// square roots are correctly rounded either way).
#if arch(x86_64)
let kernelFlags = ["-Ounchecked", "-target-cpu", "haswell", "-Xcc", "-fno-math-errno"]
#else
let kernelFlags = ["-Ounchecked", "-Xcc", "-fno-math-errno"]
#endif

let package = Package(
    name: "normlab",
    products: [
        .library(name: "NormKernels", targets: ["NormKernels"]),
        .library(name: "NormCore", targets: ["NormCore"]),
        .library(name: "NormPlugins", targets: ["NormPlugins"]),
        .library(name: "NormPython", targets: ["NormPython"]),
        .library(name: "NormNet", targets: ["NormNet"]),
        .library(name: "NormAblate", targets: ["NormAblate"]),
        .executable(name: "normlab", targets: ["normlab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CPython",
            pkgConfig: "python3-embed",
            providers: [.apt(["python3-dev"])]
        ),
        // The SIMD reductions, normalize and backward kernels, the thread pool and scratch
        // memory, on raw buffers (no Tensor); NormCore re-exports them.
        // Software prefetch hints (static inline C) for NormKernels.
        .target(name: "NormKernelsC"),
        .target(
            name: "NormKernels",
            dependencies: ["CBLAS", "NormKernelsC"],
            swiftSettings: [.unsafeFlags(kernelFlags, .when(configuration: .release))]
        ),
        .target(
            name: "NormCore",
            dependencies: ["NormKernels", "CBLAS"],
            swiftSettings: [.unsafeFlags(kernelFlags, .when(configuration: .release))]
        ),
        .target(
            name: "NormPlugins",
            dependencies: ["NormCore"],
            swiftSettings: [.unsafeFlags(kernelFlags, .when(configuration: .release))]
        ),
        .target(
            name: "NormParity",
            dependencies: ["NormCore"]
        ),
        .target(
            name: "NormPython",
            dependencies: ["CPython", "NormCore"]
        ),
        // The parity harness's numpy reference backend (the training engine does not link it).
        .target(
            name: "NormParityPython",
            dependencies: ["NormParity", "NormPython"]
        ),
        // The `normlab apply` job: read arrays, run one layer, write arrays (nothing partial).
        .target(
            name: "NormApply",
            dependencies: ["NormCore"]
        ),
        .target(
            name: "NormNet",
            dependencies: ["NormCore", "NormPython", "CBLAS", "NormKernelsC"],
            swiftSettings: [.unsafeFlags(kernelFlags, .when(configuration: .release))]
        ),
        .target(
            name: "NormBench",
            dependencies: ["CBLAS", "NormCore", "NormPlugins", "NormPython", "NormNet"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "NormAblate",
            dependencies: [
                "NormCore", "NormPlugins", "NormPython", "NormNet",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "SwiftCSV", package: "SwiftCSV"),
            ]
        ),
        .executableTarget(
            name: "normlab",
            dependencies: [
                "NormCore", "NormPlugins", "NormPython", "NormParity", "NormParityPython", "NormApply", "NormNet", "NormBench", "NormAblate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Helpers shared by the test targets (the seeded test generator); not a product.
        .target(name: "NormTestSupport", dependencies: ["NormCore"], path: "Tests/NormTestSupport"),
        .testTarget(name: "NormKernelsTests", dependencies: ["NormKernels", "NormTestSupport"]),
        .testTarget(name: "NormCoreTests", dependencies: ["NormCore", "NormTestSupport"]),
        .testTarget(name: "NormPluginsTests", dependencies: ["NormCore", "NormPlugins", "NormTestSupport"]),
        .testTarget(name: "NormPythonTests", dependencies: ["NormCore", "NormPlugins", "NormPython"]),
        .testTarget(name: "NormParityTests", dependencies: ["NormCore", "NormPlugins", "NormParity", "NormParityPython", "NormPython"]),
        .testTarget(name: "NormNetTests", dependencies: ["NormCore", "NormPlugins", "NormNet", "NormPython", "NormTestSupport"]),
        .testTarget(name: "NormBenchTests", dependencies: ["NormCore", "NormPlugins", "NormBench"]),
        .testTarget(name: "NormAblateTests", dependencies: ["NormCore", "NormPlugins", "NormNet", "NormAblate",
                                                    .product(name: "SwiftCSV", package: "SwiftCSV")]),
        .testTarget(name: "NormlabCLITests", dependencies: ["NormCore", "NormPlugins", "normlab", "NormTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
