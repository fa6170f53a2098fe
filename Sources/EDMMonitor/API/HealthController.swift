import EDMMonitorCore
import FluentKit
import FluentSQLiteDriver
import Foundation
import SQLKit
import Vapor

/// The health report of `GET /api/monitoring/health`.
///
/// `status` is the worst of the checks: `healthy` (200), `degraded` (200: working, but slow or
/// partly impaired), `unhealthy` (503: the database is unreachable). Later components add their
/// checks (`scheduler`, `collectors`, `evaluator`) to `checks` with the same shape.
public struct HealthReport: Content, Equatable, Sendable {
    /// Overall or per-check state.
    public enum Status: String, Codable, Sendable, Comparable {
        case healthy, degraded, unhealthy

        private var rank: Int { self == .healthy ? 0 : self == .degraded ? 1 : 2 }
        public static func < (a: Status, b: Status) -> Bool { a.rank < b.rank }
    }

    /// One component's state.
    public struct Check: Codable, Equatable, Sendable {
        public var status: Status
        /// Round-trip time of the probe in milliseconds (absent when it failed).
        public var latencyMs: Double?
        /// Why the check is not healthy (absent when healthy).
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case status
            case latencyMs = "latency_ms"
            case error
        }
    }

    public var status: Status
    /// The edm-monitor version, e.g. `0.1.0`.
    public var version: String
    /// Whole seconds since this process started serving.
    public var uptimeSeconds: Int
    /// Checks by component name.
    public var checks: [String: Check]

    enum CodingKeys: String, CodingKey {
        case status, version, checks
        case uptimeSeconds = "uptime_seconds"
    }
}

/// Probes the components and builds ``HealthReport``s.
public struct HealthChecker: Sendable {
    /// A database probe slower than this is reported `degraded`.
    public var slowDatabaseThreshold: TimeInterval = 0.5
    /// A database probe that takes longer than this is abandoned and reported `unhealthy`, so the
    /// health endpoint answers promptly even when the database hangs.
    public var databaseTimeout: TimeInterval = 2
    let clock: any WallClock
    let startedAt: Date
    let alerting: AlertManagerService?

    public init(clock: any WallClock, startedAt: Date, alerting: AlertManagerService? = nil) {
        self.clock = clock
        self.startedAt = startedAt
        self.alerting = alerting
    }

    /// Runs every check and returns the report.
    public func report(database: any Database) async -> HealthReport {
        let databaseCheck = await probeDatabase(database)
        var checks = ["database": databaseCheck]
        if let alerting {
            // The evaluator's own alarm: its last cycle failed (no alert state changed meanwhile).
            let error = alerting.lastEvaluationError
            checks["evaluator"] = .init(status: error == nil ? .healthy : .degraded, latencyMs: nil, error: error.map { "the last alert evaluation failed: \($0)" })
        }
        let uptime = max(0, clock.now().timeIntervalSince(startedAt))
        return HealthReport(
            status: checks.values.map(\.status).max() ?? .healthy,
            version: EDMMonitorVersion.current,
            uptimeSeconds: Int(uptime),
            checks: checks
        )
    }

    /// Runs a trivial query against the database, timed with a monotonic clock.
    ///
    /// On PostgreSQL: `SELECT count(*) FROM _fluent_migrations` (a server that answers is up).
    /// On SQLite there is no server to lose, so "reachable" means "writable": the probe takes the
    /// write lock (`BEGIN IMMEDIATE`, then `ROLLBACK`: nothing is written), so a file locked by
    /// another process, a read-only mount or a broken file all turn the check unhealthy, which
    /// is what stops metrics and sending from being recorded.
    func probeDatabase(_ database: any Database) async -> HealthReport.Check {
        let start = ContinuousClock.now
        let timeout = databaseTimeout
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await Self.runProbe(database) }
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    throw ProbeTimeout()
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch is ProbeTimeout {
            return .init(status: .unhealthy, latencyMs: nil, error: "no answer within \(Int(timeout * 1000)) ms")
        } catch {
            return .init(status: .unhealthy, latencyMs: nil, error: Self.describe(error))
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let status: HealthReport.Status = ms > slowDatabaseThreshold * 1000 ? .degraded : .healthy
        return .init(status: status, latencyMs: (ms * 1000).rounded() / 1000, error: nil)
    }

    private static func runProbe(_ database: any Database) async throws {
        guard let sqlite = database as? any SQLiteDatabase else {
            _ = try await database.sql.raw("SELECT count(*) AS n FROM _fluent_migrations").first()
            return
        }
        // One leased connection, so no other request's statement can run inside this transaction.
        try await sqlite.withConnection { connection in
            _ = try await connection.query("BEGIN IMMEDIATE")
            do {
                _ = try await connection.query("SELECT count(*) FROM _fluent_migrations")
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
            _ = try await connection.query("ROLLBACK")
        }
    }

    /// A short reason safe to show (no connection strings).
    private static func describe(_ error: any Error) -> String {
        if let error = error as? any DatabaseError, error.isConnectionClosed { return "connection closed" }
        return DatabaseErrorText.describe(error)
    }

    private struct ProbeTimeout: Error {}
}

/// `GET /api/monitoring/health`: 200 when healthy or degraded, 503 when unhealthy.
struct HealthController: RouteCollection {
    let checker: HealthChecker

    func boot(routes: any RoutesBuilder) throws {
        routes.get("api", "monitoring", "health", use: health)
    }

    @Sendable
    func health(_ request: Request) async throws -> Response {
        let report = await checker.report(database: request.db)
        let response = Response(status: report.status == .unhealthy ? .serviceUnavailable : .ok)
        try response.content.encode(report, as: .json)
        response.headers.cacheControl = .init(noStore: true)
        return response
    }
}
