@testable import EDMMonitor
import Fluent
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Start-up that cannot fail silently: the schema check, the route check and the command line.
@Suite("Start-up")
struct StartupTests {
    @Test("a missing column stops start-up, naming the table and column", arguments: TestDatabase.enabled)
    func missingColumn(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.sql.raw("ALTER TABLE alert_rules DROP COLUMN description").run()
            let error = await #expect(throws: SchemaCheck.Mismatch.self) { try await SchemaCheck.verify(app.db) }
            #expect(error?.description.contains("table alert_rules has no column description") == true)
        }
    }

    @Test("a missing table stops start-up, naming the table", arguments: TestDatabase.enabled)
    func missingTable(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.sql.raw("DROP TABLE service_reservations").run()
            let error = await #expect(throws: SchemaCheck.Mismatch.self) { try await SchemaCheck.verify(app.db) }
            #expect(error?.description.contains("table service_reservations does not exist") == true)
        }
    }

    @Test("a migration from a newer version stops start-up", arguments: TestDatabase.enabled)
    func unknownMigration(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.sql.raw("""
                INSERT INTO _fluent_migrations (id, name, batch, created_at, updated_at)
                VALUES (\(bind: UUID()), 'AddSomethingFromTheFuture', 99, \(bind: Date()), \(bind: Date()))
                """).run()
            let error = await #expect(throws: SchemaCheck.Mismatch.self) { try await SchemaCheck.verify(app.db) }
            #expect(error?.description.contains("AddSomethingFromTheFuture") == true)
        }
    }

    @Test("every required route is registered, and a missing one is named")
    func routes() async throws {
        try await withApp(.sqlite) { app, _ in
            #expect(throws: Never.self) { try verifyRoutes(app) }
            let registered = RouteCatalog.registered(app)
            for route in RouteCatalog.required { #expect(registered.contains(route)) }
        }
        let app = try await Application.make(.testing)
        let error = #expect(throws: StartupError.self) { try verifyRoutes(app) }
        #expect(error?.description.contains("GET /api/monitoring/health") == true)
        try await app.asyncShutdown()
    }

    @Test("`edm-monitor routes` lists the health route")
    func routesCommand() throws {
        let result = try runEDMMonitor(["routes", "--database-url", "sqlite::memory:"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.split(separator: "\n").contains("GET /api/monitoring/health"))
    }

    struct BadRun: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var environment: [String: String]
        var names: String
        var testDescription: String { "\(arguments) \(environment)" }
    }

    static let badRuns: [BadRun] = [
        BadRun(arguments: ["serve"], environment: ["EDM_HTTP_PORT": "99999"], names: #"EDM_HTTP_PORT="99999""#),
        BadRun(arguments: ["serve", "--port", "abc"], environment: [:], names: #"--port="abc""#),
        BadRun(arguments: ["serve"], environment: ["EDM_DATABASE_URL": "mysql://root:hunter2@db/edm"], names: #"EDM_DATABASE_URL="mysql://root:***@db/edm""#),
        BadRun(arguments: ["migrate"], environment: ["EDM_LOG_LEVEL": "loud"], names: #"EDM_LOG_LEVEL="loud""#),
        BadRun(arguments: ["routes"], environment: ["EDM_LOG_FORMAT": "yaml"], names: #"EDM_LOG_FORMAT="yaml""#),
        BadRun(arguments: ["serve", "--no-such-flag"], environment: [:], names: "--no-such-flag"),
        BadRun(arguments: ["migrate", "--revert"], environment: [:], names: "--yes"),
    ]

    @Test("a malformed setting or command line prints one line and exits 2", arguments: badRuns)
    func badSettingExits2(_ run: BadRun) throws {
        let result = try runEDMMonitor(run.arguments, environment: run.environment)
        #expect(result.status == 2)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.hasPrefix("edm-monitor: "))
        #expect(result.stderr.contains(run.names), "stderr: \(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
        #expect(result.stdout.isEmpty)
    }

    @Test("`migrate`, `migrate --revert --yes` and `migrate` again on an SQLite file")
    func migrateCommand() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-migrate-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The folder does not exist yet: it is created.
        let url = "sqlite://\(folder.path)/nested/edm.sqlite"
        let first = try runEDMMonitor(["migrate", "--database-url", url])
        #expect(first.status == 0, "stderr: \(first.stderr)")
        #expect(first.stdout.contains("up to date"))
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("nested/edm.sqlite").path))
        let revert = try runEDMMonitor(["migrate", "--revert", "--yes", "--database-url", url])
        #expect(revert.status == 0, "stderr: \(revert.stderr)")
        #expect(revert.stdout.contains("reverted"))
        let again = try runEDMMonitor(["migrate", "--database-url", url])
        #expect(again.status == 0, "stderr: \(again.stderr)")
    }

    @Test("`serve` answers health on its port and stops cleanly on SIGTERM")
    func serveAndSigterm() async throws {
        let port = try PostgresTestServer.freeLoopbackPort()
        let process = try ChildProcess(try edmMonitorExecutable().path, ["serve", "--database-url", "sqlite::memory:", "--port", "\(port)", "--log-format", "json"])
        defer { if process.isRunning { process.signal(SIGKILL) } }

        var body: String?
        for _ in 0..<120 where body == nil {
            if let (data, _) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/api/monitoring/health")!) {
                body = String(decoding: data, as: UTF8.self)
            }
            if body == nil { try await Task.sleep(for: .milliseconds(250)) }
        }
        let health = try #require(body, "serve did not answer within 30 s")
        #expect(health.contains(#""status":"healthy""#) || health.contains(#""status":"degraded""#))

        process.signal(SIGTERM)
        let status = process.wait(timeout: 30)
        #expect(status == 0, "serve did not stop cleanly within 30 s of SIGTERM")
        let log = process.stderr
        let lines = log.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not a JSON log line: \(line)")
        }
        #expect(log.contains("routes registered"))
    }
}

@Suite("Start-up failures")
struct StartupFailureTests {
    @Test("an unreachable PostgreSQL gives one line naming the database (password hidden) and the cause")
    func unreachablePostgres() throws {
        let port = try PostgresTestServer.freeLoopbackPort()
        let result = try runEDMMonitor(["migrate", "--database-url", "postgres://edm:hunter2@127.0.0.1:\(port)/edm?sslmode=disable"])
        #expect(result.status == 1)
        // The driver's pool may log its own error line first; the program's message is the last line.
        let last = String(result.stderr.split(separator: "\n").last ?? "")
        #expect(last.hasPrefix("edm-monitor: cannot migrate the database postgres://edm:***@127.0.0.1:\(port)/edm"), "\(result.stderr)")
        #expect(last.lowercased().contains("refused"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
        #expect(!last.contains("Generic description"))
    }

    @Test("`routes` needs no database")
    func routesWithoutDatabase() throws {
        let result = try runEDMMonitor(["routes", "--database-url", "sqlite:///proc/cannot/edm.sqlite"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("GET /api/monitoring/health"))
    }
}
