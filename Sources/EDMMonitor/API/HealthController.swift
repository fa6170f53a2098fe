import EDMMonitorCore
import FluentKit
import FluentSQLiteDriver
import Foundation
import SQLKit
import Synchronization
import Vapor

/// The health report of `GET /api/monitoring/health`.
///
/// `status` is the worst of the checks: `healthy` (200), `degraded` (200: working, but slow or
/// partly impaired), `unhealthy` (503: the database does not answer, or its probe is stale; see
/// ``HealthChecker``). Later components add their
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

/// Probes the database in the background and builds ``HealthReport``s from the last result, so
/// that `GET /api/monitoring/health` costs no database round trip and never queues behind the
/// requests it is meant to judge (issue #15).
///
/// `serve` calls ``probeOnce(database:)`` every ``probeIntervalSeconds`` (a `PeriodicService`);
/// the endpoint reads ``report(database:)``. The database check is, from the last probe:
/// - `healthy`: it answered within ``slowThresholdSeconds`` (0.5 s); `latency_ms` is its round trip;
/// - `degraded` (still 200): it answered, but slower than that, or the probe now in flight has
///   been waiting longer than that (`latency_ms` is then the wait so far);
/// - `unhealthy` (503): it failed (connection refused or closed, SQLite file locked or
///   read-only), gave no answer within ``timeoutSeconds`` (10 s), or no probe has finished for
///   ``staleAfterSeconds`` (15 s: the probe loop is not running).
///
/// Before the first probe (no loop yet, e.g. a command or a test) the first request probes
/// once itself; requests while that first probe is still waiting see `degraded`. Ages are measured on the injected clock (so tests drive staleness with a
/// ``ManualClock``), the round trip on the monotonic clock.
public final class HealthChecker: Sendable {
    /// One database round trip: returns how long it took, seconds; throws when the database
    /// refused or failed it. ``standardProbe`` is the real one; tests inject others.
    public typealias DatabaseProbe = @Sendable (any Database) async throws -> TimeInterval

    /// How often `serve` probes the database, seconds.
    public static let probeIntervalSeconds: Double = 1
    /// A probe slower than this (answered or still waiting) is `degraded`, seconds.
    public let slowThresholdSeconds: Double
    /// A probe with no answer after this long is abandoned and `unhealthy`, seconds.
    public let timeoutSeconds: Double
    /// With no probe finished for this long the check is `unhealthy` (stale), seconds.
    public let staleAfterSeconds: Double
    let clock: any WallClock
    let startedAt: Date
    let alerting: AlertManagerService?
    let probe: DatabaseProbe

    /// The last result (its check and when it was recorded), the start of the probe the
    /// endpoint is waiting for, and the start of the probe still running (possibly one abandoned
    /// by its timeout), on the injected clock.
    private struct ProbeState {
        var last: (check: HealthReport.Check, at: Date)?
        var inFlightSince: Date?
        var runningSince: Date?
    }
    private let state = Mutex(ProbeState())

    /// A checker whose uptime counts from `startedAt`, reading the evaluator's state from
    /// `alerting` when given, probing with `probe` (default ``standardProbe``).
    public init(clock: any WallClock, startedAt: Date, alerting: AlertManagerService? = nil,
                slowThresholdSeconds: Double = 0.5, timeoutSeconds: Double = 10, staleAfterSeconds: Double = 15,
                probe: DatabaseProbe? = nil) {
        self.clock = clock
        self.startedAt = startedAt
        self.alerting = alerting
        self.slowThresholdSeconds = slowThresholdSeconds
        self.timeoutSeconds = timeoutSeconds
        self.staleAfterSeconds = staleAfterSeconds
        self.probe = probe ?? Self.standardProbe
    }

    /// Runs one probe of `database` and keeps its result for the reports. Never throws: a
    /// failure is an `unhealthy` check with the reason. A probe with no answer after
    /// ``timeoutSeconds`` is recorded `unhealthy` and left to finish on its own; until it does,
    /// later calls record "still no answer" instead of starting another, so a hung database
    /// holds at most one probe. A call while another caller's probe runs within its time starts
    /// none and returns the current check.
    /// - Returns: the check recorded (the last one when the calling task was cancelled).
    @discardableResult
    public func probeOnce(database: any Database) async -> HealthReport.Check {
        let started = clock.now()
        let previousRunning = state.withLock { s -> Date? in
            if let running = s.runningSince { return running }
            s.runningSince = started
            s.inFlightSince = started
            return nil
        }
        if let previousRunning {
            let waited = max(0, started.timeIntervalSince(previousRunning))
            // Another caller's probe within its time (two first requests at once): its result will do.
            if waited < timeoutSeconds { return databaseCheck(at: started) }
            return record(.init(status: .unhealthy, latencyMs: nil, error: "no answer: the probe started \(Int(waited)) s ago is still waiting"))
        }
        // The probe and its timer race; the first to report wins. The probe runs in its own task
        // so that a driver ignoring cancellation cannot hold this call past the timeout.
        let (outcomes, report) = AsyncStream.makeStream(of: ProbeOutcome.self, bufferingPolicy: .bufferingOldest(1))
        let probe = self.probe, timeout = timeoutSeconds
        Task {
            let outcome: ProbeOutcome
            do { outcome = .answered(try await probe(database)) } catch { outcome = .failed(error) }
            self.state.withLock { $0.runningSince = nil }
            report.yield(outcome)
        }
        let timer = Task {
            do { try await Task.sleep(for: .seconds(timeout)) } catch { return }
            report.yield(.timedOut)
        }
        var iterator = outcomes.makeAsyncIterator()
        let first = await iterator.next()
        timer.cancel()
        report.finish()
        switch first {
        case .answered(let seconds):
            let status: HealthReport.Status = seconds > slowThresholdSeconds ? .degraded : .healthy
            return record(.init(status: status, latencyMs: Self.milliseconds(seconds),
                                error: status == .degraded ? "slow database: the probe took \(Self.milliseconds(seconds)) ms" : nil))
        case .failed(let error):
            return record(.init(status: .unhealthy, latencyMs: nil, error: Self.describe(error)))
        case .timedOut:
            return record(.init(status: .unhealthy, latencyMs: nil, error: "no answer within \(Int(timeout * 1000)) ms"))
        case nil:
            // Cancelled (shutdown): nothing learnt.
            return state.withLock { $0.last?.check } ?? .init(status: .unhealthy, latencyMs: nil, error: "the probe was cancelled")
        }
    }

    private enum ProbeOutcome: Sendable {
        case answered(TimeInterval)
        case failed(any Error)
        case timedOut
    }

    /// Keeps `check` as the last result, finished now.
    private func record(_ check: HealthReport.Check) -> HealthReport.Check {
        let now = clock.now()
        state.withLock { s in
            s.last = (check, now)
            s.inFlightSince = nil
        }
        return check
    }

    /// The report from the last probe (probing once first when none ever ran). Costs no
    /// database round trip once the background probe runs.
    public func report(database: @autoclosure () -> any Database) async -> HealthReport {
        let never = state.withLock { $0.last == nil && $0.inFlightSince == nil }
        if never { await probeOnce(database: database()) }
        var checks = ["database": databaseCheck(at: clock.now())]
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

    /// The database check at `now` from the recorded probes (the rules in the type's comment).
    func databaseCheck(at now: Date) -> HealthReport.Check {
        let (last, inFlightSince) = state.withLock { ($0.last, $0.inFlightSince) }
        guard let last else {
            // Only while the very first probe is still waiting.
            let waited = inFlightSince.map { max(0, now.timeIntervalSince($0)) } ?? 0
            return .init(status: .degraded, latencyMs: Self.milliseconds(waited), error: "the first database probe has not answered yet")
        }
        let age = now.timeIntervalSince(last.at)
        if age > staleAfterSeconds {
            return .init(status: .unhealthy, latencyMs: nil,
                         error: "stale: no database probe has finished for \(Int(age)) s (the probe runs every \(Int(Self.probeIntervalSeconds)) s)")
        }
        if last.check.status != .unhealthy, let since = inFlightSince {
            let waited = max(0, now.timeIntervalSince(since))
            if waited > slowThresholdSeconds {
                return .init(status: .degraded, latencyMs: Self.milliseconds(waited), error: "the database probe has been waiting \(Self.milliseconds(waited)) ms")
            }
        }
        return last.check
    }

    /// Seconds as milliseconds rounded to the microsecond.
    private static func milliseconds(_ seconds: Double) -> Double {
        (max(0, seconds) * 1_000_000).rounded() / 1000
    }

    /// The real probe: a trivial query, timed with the monotonic clock.
    ///
    /// On PostgreSQL: `SELECT count(*) FROM _fluent_migrations` (a server that answers is up).
    /// On SQLite there is no server to lose, so "reachable" means "writable": the probe takes the
    /// write lock (`BEGIN IMMEDIATE`, then `ROLLBACK`: nothing is written), so a file locked by
    /// another process, a read-only mount or a broken file all turn the check unhealthy, which
    /// is what stops metrics and sending from being recorded.
    /// - Returns: the round trip, seconds. - Throws: the database's error.
    public static let standardProbe: DatabaseProbe = { database in
        let start = ContinuousClock.now
        if let sqlite = database as? any SQLiteDatabase {
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
        } else {
            _ = try await database.sql.raw("SELECT count(*) AS n FROM _fluent_migrations").first()
        }
        return (ContinuousClock.now - start).inSeconds
    }

    /// A short reason safe to show (no connection strings).
    private static func describe(_ error: any Error) -> String {
        if let error = error as? any DatabaseError, error.isConnectionClosed { return "connection closed" }
        return DatabaseErrorText.describe(error)
    }

}

/// `GET /api/monitoring/health`: 200 when healthy or degraded, 503 when unhealthy.
struct HealthController: RouteCollection {
    let checker: HealthChecker

    func boot(routes: any RoutesBuilder) throws {
        routes.get("api", "monitoring", "health", use: health)
    }

    @Sendable
    func health(_ request: Request) async throws -> Response {
        // From the background probe's last result: no database round trip here.
        let report = await checker.report(database: request.db)
        let response = Response(status: report.status == .unhealthy ? .serviceUnavailable : .ok)
        try response.content.encode(report, as: .json)
        response.headers.cacheControl = .init(noStore: true)
        return response
    }
}
