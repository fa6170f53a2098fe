import EDMMonitor
import EDMMonitorCore
import Fluent
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// The databases every storage test runs on.
enum TestDatabase: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// SQLite always; PostgreSQL when its binaries exist or CI requires it (then a missing
    /// server fails the tests instead of skipping them).
    static var enabled: [TestDatabase] {
        PostgresTestServer.isEnabled ? [.sqlite, .postgres] : [.sqlite]
    }
}

/// Creates databases for tests: a private SQLite file in memory, or a fresh PostgreSQL database
/// copied from a template that is migrated once per test process.
enum TestDatabases {
    /// A new, empty database location for one test; `migrated` copies the migrated template
    /// (PostgreSQL) — SQLite databases are always created empty and migrated by the caller.
    static func make(_ kind: TestDatabase, migrated: Bool, sqliteFile: Bool = false) async throws -> (DatabaseLocation, cleanup: @Sendable () -> Void) {
        switch kind {
        case .sqlite where sqliteFile:
            // A file, so that a second application (a "restart") opens the same database.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-test-\(UUID().uuidString.prefix(8))")
            return (.sqliteFile(path: folder.appendingPathComponent("edm.sqlite").path), { try? FileManager.default.removeItem(at: folder) })
        case .sqlite:
            return (.sqliteMemory, {})
        case .postgres:
            let server = try PostgresTestServer.shared.get()
            let template = migrated ? try await Template.shared.name(on: server) : "template0"
            let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
            // CREATE DATABASE … TEMPLATE fails while the template has a session; retry briefly.
            var attempt = 0
            while true {
                do {
                    try server.psql("CREATE DATABASE \"\(name)\" TEMPLATE \"\(template)\"")
                    break
                } catch where attempt < 20 && "\(error)".contains("is being accessed by other users") {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            return (.postgres(url: server.url(database: String(name))), {
                try? server.psql("DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)")
            })
        }
    }

    /// The migrated template database, made once (concurrent callers share one creation task).
    actor Template {
        static let shared = Template()
        private var creation: Task<String, any Error>?

        func name(on server: PostgresTestServer) async throws -> String {
            if let creation { return try await creation.value }
            let task = Task { try await Self.create(on: server) }
            creation = task
            return try await task.value
        }

        private static func create(on server: PostgresTestServer) async throws -> String {
            let name = "edm_template"
            try server.psql("CREATE DATABASE \(name)")
            let settings = testSettings(.postgres(url: server.url(database: name)))
            let app = try await Application.make(.testing)
            do {
                try await configure(app, settings: settings)
                try await prepareDatabase(app, settings: settings)
            } catch {
                try? await app.asyncShutdown()
                throw error
            }
            try await app.asyncShutdown()
            // A template must have no sessions when copied; the pool's may linger a moment.
            try server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()")
            return name
        }
    }
}

/// Settings for a test application on `database` (the HTTP address is unused by in-memory tests).
func testSettings(_ database: DatabaseLocation) -> Settings {
    Settings(database: database, httpHost: "127.0.0.1", httpPort: 0, logLevel: .warning, logFormat: .text)
}

/// Runs `test` with a fully configured application on a fresh database of `kind`, migrated
/// and schema-checked unless `migrate` is false; shuts everything down afterwards (STYLE.md §10).
@discardableResult
func withApp<T>(
    _ kind: TestDatabase,
    clock: any WallClock = ManualClock(),
    migrate: Bool = true,
    mailers: (any MailerFactory)? = nil,
    hooks: (any TaskMonitorHooks)? = nil,
    scheduler: SchedulerConfiguration = .testInstance,
    sqliteFile: Bool = false,
    adjust: (inout Settings) -> Void = { _ in },
    _ test: (Application, Settings) async throws -> T
) async throws -> T {
    let (location, cleanup) = try await TestDatabases.make(kind, migrated: migrate, sqliteFile: sqliteFile)
    defer { cleanup() }
    // A test that moves time with a ManualClock moves the leases with it (production reads
    // them from PostgreSQL's clock; ServiceReservationStoreTests.databaseClock tests that).
    var scheduler = scheduler
    if clock is ManualClock { scheduler.leaseClock = .scheduler }
    var settings = testSettings(location)
    adjust(&settings)
    let app = try await Application.make(.testing)
    let result: T
    do {
        try await configure(app, settings: settings, dependencies: .init(clock: clock, scheduler: scheduler, taskHooks: hooks, mailers: mailers))
        if migrate { try await prepareDatabase(app, settings: settings) }
        result = try await test(app, settings)
    } catch {
        try? await app.asyncShutdown()
        throw error
    }
    try await app.asyncShutdown()
    return result
}

extension Application {
    /// This application's default database as SQLKit.
    var sql: any SQLDatabase { db as! any SQLDatabase }
}

/// Runs the built `edm-monitor` executable with `arguments` and `environment` (added to a
/// minimal PATH/HOME environment), waiting at most `timeout` seconds.
/// - Returns: exit status, standard output and standard error.
func runEDMMonitor(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
    let child = try startEDMMonitor(arguments, environment: environment)
    guard let status = child.wait(timeout: timeout) else {
        throw TestSupportError("edm-monitor \(arguments) did not exit within \(timeout) s")
    }
    return (status, child.stdout, child.stderr)
}

/// Starts the built `edm-monitor` with `arguments` (minimal PATH/HOME environment plus `environment`).
func startEDMMonitor(_ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { _, new in new }
    return try ChildProcess(try edmMonitorExecutable().path, arguments, environment: env)
}

/// The `edm-monitor` executable built beside the test bundle (`swift test` builds it).
func edmMonitorExecutable() throws -> URL {
    var candidates: [URL] = []
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(testBinary.deletingLastPathComponent().appendingPathComponent("edm-monitor"))
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(packageRoot.appendingPathComponent(".build/debug/edm-monitor"))
    if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) { return found }
    throw TestSupportError("edm-monitor executable not found in \(candidates.map(\.path)); run `swift build` first")
}
