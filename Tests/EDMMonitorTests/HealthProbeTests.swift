@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import Testing
import Vapor
import VaporTesting

/// A scripted database probe for ``HealthChecker``: answers with the outcome set by ``next(_:)``,
/// counts its calls, and can hang until ``releaseAll()`` (no sleeping, no real time).
final class ScriptedProbe: Sendable {
    enum Step: Sendable {
        /// Answer, having taken this many seconds.
        case answer(TimeInterval)
        /// Throw an error with this text.
        case fail(String)
        /// Wait until released, then answer in 4 ms.
        case hang
    }

    private struct State {
        var step: Step = .answer(0.003)
        var calls = 0
        var finished = 0
        var released = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Probes started so far.
    var calls: Int { state.withLock { $0.calls } }
    /// Probes that returned or threw so far.
    var finished: Int { state.withLock { $0.finished } }

    /// The outcome of the following probes.
    func next(_ step: Step) { state.withLock { $0.step = step } }

    /// Lets every hanging probe (and any later one) answer.
    func releaseAll() {
        let waiters = state.withLock { s in
            s.released = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Yields until `count` probes have started (or finished), bounded by iterations, not time.
    func await(started count: Int = 0, finished done: Int = 0) async {
        for _ in 0..<1_000_000 where calls < count || finished < done { await Task.yield() }
    }

    /// The probe to inject.
    var probe: HealthChecker.DatabaseProbe {
        { [self] _ in
            let step = state.withLock { s -> Step in
                s.calls += 1
                return s.step
            }
            defer { state.withLock { $0.finished += 1 } }
            switch step {
            case .answer(let seconds):
                return seconds
            case .fail(let reason):
                throw TestSupportError(reason)
            case .hang:
                await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.released { return true }
                        s.waiters.append(waiter)
                        return false
                    }
                    if now { waiter.resume() }
                }
                return 0.004
            }
        }
    }
}

/// `GET /api/monitoring/health` answered from the background probe (issue #15): every state,
/// driven by the injected clock and a scripted probe.
@Suite("Health: background probe")
struct HealthProbeTests {
    struct Body: Decodable {
        struct Check: Decodable { var status: String; var latency_ms: Double?; var error: String? }
        var status: String
        var checks: [String: Check]
    }

    /// A configured, migrated application on `db` whose health check uses `probe`.
    func withProbedApp(_ db: TestDatabase, clock: ManualClock, probe: ScriptedProbe, _ body: (Application) async throws -> Void) async throws {
        let (location, cleanup) = try await TestDatabases.make(db, migrated: true)
        defer { cleanup() }
        let settings = testSettings(location)
        let app = try await Application.make(.testing)
        do {
            try await configure(app, settings: settings, dependencies: .init(clock: clock, healthProbe: probe.probe))
            try await prepareDatabase(app, settings: settings)
            try await body(app)
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    func health(_ app: Application, _ status: HTTPStatus, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Body {
        let res = try await app.testing().sendRequest(.GET, "/api/monitoring/health")
        #expect(res.status == status, "\(res.body.string)", sourceLocation: sourceLocation)
        return try res.content.decode(Body.self)
    }

    @Test("healthy, degraded (slow, with the latency), unhealthy (the database fails, or the probe is stale), each from the last probe with no query per request",
          arguments: TestDatabase.enabled)
    func states(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let probe = ScriptedProbe()
        try await withProbedApp(db, clock: clock, probe: probe) { app in
            let checker = app.edm.health
            // No probe ran yet (no `serve` loop): the first request probes once itself.
            var body = try await health(app, .ok)
            #expect(body.status == "healthy")
            #expect(body.checks["database"]?.status == "healthy")
            #expect(body.checks["database"]?.latency_ms == 3)
            #expect(body.checks["database"]?.error == nil)
            #expect(probe.calls == 1)
            // Later requests answer from that result: no database round trip each.
            for _ in 0..<5 { _ = try await health(app, .ok) }
            #expect(probe.calls == 1)

            // A slow answer: degraded, still 200, with the latency.
            probe.next(.answer(0.8))
            await checker.probeOnce(database: app.db)
            body = try await health(app, .ok)
            #expect(body.status == "degraded")
            #expect(body.checks["database"]?.status == "degraded")
            #expect(body.checks["database"]?.latency_ms == 800)
            #expect(body.checks["database"]?.error?.contains("slow") == true)

            // The database refuses: unhealthy, 503, with the reason.
            probe.next(.fail("connection refused (errno 111)"))
            await checker.probeOnce(database: app.db)
            body = try await health(app, .serviceUnavailable)
            #expect(body.status == "unhealthy")
            #expect(body.checks["database"]?.status == "unhealthy")
            #expect(body.checks["database"]?.latency_ms == nil)
            #expect(body.checks["database"]?.error?.contains("connection refused") == true)

            // Back.
            probe.next(.answer(0.002))
            await checker.probeOnce(database: app.db)
            body = try await health(app, .ok)
            #expect(body.status == "healthy")
            #expect(body.checks["database"]?.latency_ms == 2)

            // The probe loop stops: fresh for 15 s, stale after.
            clock.advance(by: 15)
            _ = try await health(app, .ok)
            clock.advance(by: 1)
            body = try await health(app, .serviceUnavailable)
            #expect(body.checks["database"]?.status == "unhealthy")
            #expect(body.checks["database"]?.error?.contains("stale") == true)
            await checker.probeOnce(database: app.db)
            _ = try await health(app, .ok)
            #expect(probe.calls == 5)
        }
    }

    @Test("a probe still waiting is degraded with the wait so far, then healthy once it answers")
    func waiting() async throws {
        let clock = ManualClock()
        let probe = ScriptedProbe()
        try await withApp(.sqlite, clock: clock) { app, _ in
            // A timeout far beyond the test, so that only the injected clock matters.
            let checker = HealthChecker(clock: clock, startedAt: clock.now(), timeoutSeconds: 86_400, probe: probe.probe)
            #expect(await checker.report(database: app.db).status == .healthy)
            probe.next(.hang)
            let running = Task { await checker.probeOnce(database: app.db) }
            await probe.await(started: 2)
            // Within the slow threshold the last answer stands.
            clock.advance(by: 0.4)
            #expect(await checker.report(database: app.db).status == .healthy)
            clock.advance(by: 1.1)
            let report = await checker.report(database: app.db)
            #expect(report.status == .degraded)
            #expect(report.checks["database"]?.latencyMs == 1500)
            #expect(report.checks["database"]?.error?.contains("waiting") == true)
            #expect(probe.calls == 2, "a report never starts a probe while one runs")
            probe.releaseAll()
            let check = await running.value
            #expect(check.status == .healthy)
            #expect(await checker.report(database: app.db).checks["database"]?.latencyMs == 4)
        }
    }

    @Test("no answer within the timeout is unhealthy, and a hung probe is never joined by a second one")
    func timeout() async throws {
        let clock = ManualClock()
        let probe = ScriptedProbe()
        probe.next(.hang)
        try await withApp(.sqlite, clock: clock) { app, _ in
            // A zero timeout: the timer wins at once against a probe that never answers.
            let checker = HealthChecker(clock: clock, startedAt: clock.now(), timeoutSeconds: 0, probe: probe.probe)
            let first = await checker.probeOnce(database: app.db)
            #expect(first.status == .unhealthy)
            #expect(first.error == "no answer within 0 ms")
            #expect(checker.databaseCheck(at: clock.now()).status == .unhealthy)
            clock.advance(by: 1)
            let second = await checker.probeOnce(database: app.db)
            #expect(second.status == .unhealthy)
            #expect(second.error?.contains("still waiting") == true)
            #expect(probe.calls == 1, "the hung probe is not joined by another")
            // It answers at last; the next cycle probes again.
            probe.next(.answer(0.001))
            probe.releaseAll()
            await probe.await(finished: 1)
            var third = await checker.probeOnce(database: app.db)
            // The hung probe's task clears its mark just after it returns.
            for _ in 0..<10_000 where third.status != .healthy {
                await Task.yield()
                third = await checker.probeOnce(database: app.db)
            }
            #expect(third.status == .healthy)
            #expect(third.latencyMs == 1)
        }
    }

    @Test("the real probe answers on SQLite and PostgreSQL", arguments: TestDatabase.enabled)
    func realProbe(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let check = await app.edm.health.probeOnce(database: app.db)
            // `degraded` only means the probe took over 0.5 s: possible on a loaded 2-core CI machine.
            #expect([.healthy, .degraded].contains(check.status), "\(check)")
            #expect((check.latencyMs ?? -1) >= 0)
        }
    }
}
