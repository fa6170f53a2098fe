// swift-tools-version:6.0
import Foundation
import PackageDescription

// Versions are the lowest of those mirrored on the project's build machines (offline): `from:`
// accepts newer compatible releases elsewhere.
let package = Package(
    name: "edm-monitor",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "edm-monitor", targets: ["edm-monitor"]),
        .library(name: "EDMMonitor", targets: ["EDMMonitor"]),
        .library(name: "EDMMonitorCore", targets: ["EDMMonitorCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-kit.git", from: "1.57.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver.git", from: "4.9.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Already in the graph through postgres-nio; named because `serve` runs one ServiceGroup.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Tests only: parses openapi.yaml to compare it with the registered routes.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // Entry point only: parses the command line and hands over to EDMMonitor.
        .executableTarget(
            name: "edm-monitor",
            dependencies: ["EDMMonitor"]
        ),
        // The application: Vapor + Fluent, storage, HTTP API, services.
        .target(
            name: "EDMMonitor",
            dependencies: [
                "EDMMonitorCore",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The dashboard's files and the API contract (Resources/openapi.yaml links to the
            // repository's openapi.yaml) are compiled into the binary as byte arrays
            // (`PackageResources`), so a lone copied binary serves them from any directory and no
            // generated source is committed. Cost: ~30 s of a cold debug build (ARCHITECTURE.md).
            resources: [.embedInCode("Web/Static"), .embedInCode("Resources/openapi.yaml")]
        ),
        // Pure logic with no server or database: parsers, window maths, protocol pieces.
        .target(name: "EDMMonitorCore"),
        .testTarget(
            name: "EDMMonitorTests",
            dependencies: [
                "EDMMonitor",
                "EDMMonitorCore",
                .product(name: "VaporTesting", package: "vapor"),
                // The browser tests drive chromedriver's WebDriver HTTP API with it.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                // The lifecycle tests run PeriodicService in a ServiceGroup.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "EDMMonitorCoreTests",
            dependencies: ["EDMMonitorCore"],
            // Fixtures are read from the checkout by path (Support/Fixture.swift), byte-exact.
            exclude: ["Fixtures"]
        ),
    ]
)

// `edm-bench`, the in-process benchmarks of BENCHMARKS.md, exists only when EDM_BENCHMARKS is
// set, so the normal build and CI never compile it; being in this package it reuses the
// release build's compiled dependencies:
//   EDM_BENCHMARKS=1 swift build -c release --product edm-bench
if ProcessInfo.processInfo.environment["EDM_BENCHMARKS"] != nil {
    package.targets.append(.executableTarget(
        name: "edm-bench",
        dependencies: [
            "EDMMonitor", "EDMMonitorCore",
            .product(name: "Vapor", package: "vapor"),
            .product(name: "FluentKit", package: "fluent-kit"),
            .product(name: "SQLKit", package: "sql-kit"),
        ],
        path: "Benchmarks/edm-bench"
    ))
}
