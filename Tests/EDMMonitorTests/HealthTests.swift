@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor
import VaporTesting

/// `GET /api/monitoring/health`.
@Suite("Health")
struct HealthTests {
    struct Body: Decodable {
        struct Check: Decodable { var status: String; var latency_ms: Double?; var error: String? }
        var status: String
        var version: String
        var uptime_seconds: Int
        var checks: [String: Check]
    }

    @Test("healthy with version, uptime from the injected clock and the database latency", arguments: TestDatabase.enabled)
    func healthy(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            clock.advance(by: 90)
            try await app.testing().test(.GET, "/api/monitoring/health") { res in
                #expect(res.status == .ok)
                #expect(res.headers.contentType == .json)
                let body = try res.content.decode(Body.self)
                // `degraded` only means the probe took over 0.5 s: possible on a loaded 2-core CI machine.
                #expect(["healthy", "degraded"].contains(body.status))
                #expect(body.version == EDMMonitorVersion.current)
                #expect(body.uptime_seconds == 90)
                #expect(["healthy", "degraded"].contains(body.checks["database"]?.status ?? ""))
                let latency = try #require(body.checks["database"]?.latency_ms)
                #expect(latency >= 0)
                // A `degraded` check says why (slow); a healthy one has no error.
                #expect((body.checks["database"]?.error == nil) == (body.checks["database"]?.status == "healthy"))
            }
        }
    }

    @Test("an unknown route answers 404 with the JSON error shape")
    func unknownRoute() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/api/nope") { res in
                #expect(res.status == .notFound)
                let body = try res.content.decode(ErrorBody.self)
                #expect(body.error.code == "not_found")
                #expect(!body.error.message.isEmpty)
                #expect(body.error.details.isEmpty)
            }
        }
    }

    @Test("PostgreSQL going away turns health 503 and back to 200 when it returns",
          .enabled(if: PostgresTestServer.isEnabled, "PostgreSQL binaries not found"))
    func postgresOutage() async throws {
        // A cluster of its own: stopping the shared one would break the tests running beside this one.
        let server = try PostgresTestServer.start()
        defer { server.stop() }
        try server.psql("CREATE DATABASE outage")
        let settings = testSettings(.postgres(url: server.url(database: "outage")))
        let app = try await Application.make(.testing)
        do {
            try await configure(app, settings: settings)
            try await prepareDatabase(app, settings: settings)
            try await expectHealth(app, status: .ok, database: "healthy")

            try server.stopProcess()
            try await expectHealth(app, status: .serviceUnavailable, database: "unhealthy")
            // A write during the outage is refused as 503 `unavailable`, not a 500.
            let ingest = try await app.testing().sendRequest(.POST, "/api/monitoring/performance-metrics", headers: ["content-type": "application/json"],
                                                             body: ByteBuffer(string: #"{"points":[{"name":"edm_outage_probe","value":1}]}"#))
            #expect(ingest.status == .serviceUnavailable)
            #expect(ingest.body.string.contains(#""code":"unavailable""#), "\(ingest.body.string)")

            try server.startProcess()
            // The pool reconnects on the next request; allow a few attempts (bounded).
            var recovered = false
            for _ in 0..<40 where !recovered {
                // What `serve`'s probe loop does every second.
                await app.edm.health.probeOnce(database: app.db)
                recovered = try await app.testing().sendRequest(.GET, "/api/monitoring/health").status == .ok
                if !recovered { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(recovered, "health did not return to 200 after PostgreSQL came back")
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    @Test("an SQLite file write-locked by another process turns health 503, and 200 once released")
    func sqliteLocked() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-lock-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("locked.sqlite").path
        let settings = testSettings(.sqliteFile(path: path))
        let app = try await Application.make(.testing)
        do {
            try await configure(app, settings: settings)
            try await prepareDatabase(app, settings: settings)
            try await expectHealth(app, status: .ok, database: "healthy")

            // Another process holds the write lock, as a stuck maintenance script would.
            let locker = try SQLiteLocker(path: path)
            try await expectHealth(app, status: .serviceUnavailable, database: "unhealthy")
            try locker.release()

            var recovered = false
            for _ in 0..<40 where !recovered {
                // What `serve`'s probe loop does every second.
                await app.edm.health.probeOnce(database: app.db)
                recovered = try await app.testing().sendRequest(.GET, "/api/monitoring/health").status == .ok
                if !recovered { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(recovered, "health did not return to 200 after the lock was released")
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    /// Probes once (as `serve`'s loop does every second), then reads the endpoint.
    private func expectHealth(_ app: Application, status: HTTPStatus, database: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        await app.edm.health.probeOnce(database: app.db)
        let res = try await app.testing().sendRequest(.GET, "/api/monitoring/health")
        #expect(res.status == status, sourceLocation: sourceLocation)
        let body = try res.content.decode(Body.self)
        // A slow probe on a loaded machine reports `degraded` (still 200): both mean "working".
        let accepted = database == "healthy" ? ["healthy", "degraded"] : [database]
        #expect(accepted.contains(body.checks["database"]?.status ?? ""), sourceLocation: sourceLocation)
        #expect(accepted.contains(body.status), sourceLocation: sourceLocation)
        if database == "unhealthy" {
            #expect(body.checks["database"]?.error?.isEmpty == false, sourceLocation: sourceLocation)
        }
    }
}

/// The JSON error body.
struct ErrorBody: Decodable {
    struct Inner: Decodable {
        struct Detail: Decodable { var field: String; var reason: String }
        var code: String
        var message: String
        var details: [Detail]
    }
    var error: Inner
}

/// A separate process (Python's sqlite3) holding the write lock of an SQLite file until released.
final class SQLiteLocker {
    private let child: ChildProcess
    private let releaseFile: URL

    init(path: String) throws {
        releaseFile = URL(fileURLWithPath: path + ".release")
        let script = """
        import os, sqlite3, sys, time
        c = sqlite3.connect(sys.argv[1], isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        c.execute("CREATE TABLE lock_probe(x)")
        print("locked", flush=True)
        deadline = time.time() + 60
        while not os.path.exists(sys.argv[2]) and time.time() < deadline:
            time.sleep(0.05)
        c.execute("ROLLBACK")
        c.close()
        """
        child = try ChildProcess("/usr/bin/env", ["python3", "-c", script, path, releaseFile.path])
        // Bounded wait until the lock is held.
        for _ in 0..<400 where !child.stdout.contains("locked") && child.isRunning { usleep(25_000) }
        guard child.stdout.contains("locked") else {
            throw TestSupportError("the python3 locker did not take the lock: \(child.stderr)")
        }
    }

    func release() throws {
        FileManager.default.createFile(atPath: releaseFile.path, contents: Data())
        child.wait(timeout: 30)
        try? FileManager.default.removeItem(at: releaseFile)
    }
}

@Suite("Method not allowed")
struct MethodNotAllowedTests {
    @Test("a known path with the wrong method is 405 with Allow, in the JSON error shape")
    func wrongMethod() async throws {
        try await withApp(.sqlite) { app, _ in
            for method in [HTTPMethod.POST, .DELETE, .PATCH] {
                try await app.testing().test(method, "/api/monitoring/health") { res in
                    #expect(res.status == .methodNotAllowed)
                    #expect(res.headers.first(name: .allow) == "GET, HEAD")
                    let error = try res.content.decode(ErrorBody.self)
                    #expect(error.error.code == "method_not_allowed")
                }
            }
            try await app.testing().test(.DELETE, "/api/tasks") { res in
                #expect(res.status == .methodNotAllowed)
                #expect(res.headers.first(name: .allow) == "GET, HEAD, POST")
            }
        }
    }
}
