// swift-tools-version:6.1
import PackageDescription

// package-benchmark (ordo-one/benchmark) suites for EDMMonitorCore's hot paths. A package of its
// own so that the main build and CI never compile the benchmark library; it depends on the root
// package by path and builds only EDMMonitorCore from it (no Vapor).
//
//   cd Benchmarks/core && swift package --disable-sandbox benchmark
let package = Package(
    name: "edm-monitor-core-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "edm-monitor", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EDMMonitorCore", package: "edm-monitor"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
