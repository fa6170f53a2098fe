@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import Testing
import Vapor

/// A server listening on 127.0.0.1 with something to look at: a task half sent through a real
/// SMTP peer (SMTPTestServer), an hour of host and queue metrics, a system monitor snapshot and
/// a firing critical alert. Used by the dashboard (browser) and CLI tests.
struct DashboardScenario {
    /// `http://127.0.0.1:PORT`.
    var baseURL: String
    var taskID: UUID
    var taskName: String
    /// Messages the SMTP peer accepted for the task, of `total`.
    var sent: Int
    var total: Int
    var ruleID: UUID
    var ruleName: String
    var alertID: UUID
    /// Records the `Authorization` headers that arrive.
    var tokens: TokenProbe

    static let taskName = "spring sale"
    static let ruleName = "Dashboard test value high"

    /// Runs `body` with the scenario's application serving on a free loopback port (real clock,
    /// since the browser asks for "the last hour" by its own clock), then stops it.
    static func with<T>(_ body: (Application, DashboardScenario) async throws -> T) async throws -> T {
        let smtp = try SMTPTestServer()
        // One connection, pipeline depth 1: one message per cycle, so `seed` stops at exactly `wanted`.
        return try await withApp(.sqlite, clock: SystemClock(), scheduler: .oneMessagePerConnection) { app, _ in
            let port = try PostgresTestServer.freeLoopbackPort()
            app.http.server.configuration.hostname = "127.0.0.1"
            app.http.server.configuration.port = port
            let tokens = TokenProbe()
            app.middleware.use(tokens)
            try app.server.start()
            do {
                let scenario = try await seed(app, smtpPort: smtp.port, baseURL: "http://127.0.0.1:\(port)", tokens: tokens)
                let result = try await body(app, scenario)
                await app.server.shutdown()
                return result
            } catch {
                await app.server.shutdown()
                throw error
            }
        }
    }

    private static func seed(_ app: Application, smtpPort: Int, baseURL: String, tokens: TokenProbe) async throws -> DashboardScenario {
        let user = try await Fixtures.user(app)
        // One connection: one message per cycle, so the loop below stops at exactly `wanted`.
        try await Fixtures.service(app, name: "relay", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: smtpPort, security: .none)), quota: 1000, maxConnections: 1)
        let total = 40, wanted = 16
        let taskID = try await Fixtures.task(app, user: user, recipients: total, name: taskName)
        var sent = 0
        for _ in 0..<200 where sent < wanted { sent += try await app.edm.scheduler.runOnce().sent }
        try #require(sent == wanted, "the scheduler sent \(sent) of \(wanted) messages")

        // Most of an hour of history for the charts (12 points, the oldest 56 min ago, so that
        // all stay inside the overview's 1 h window on a machine slow to open the page), then
        // one real collection (the health snapshot).
        let now = Date()
        var points: [MetricPoint] = []
        for i in 1...12 {
            let at = now.addingTimeInterval(Double(-i * 280))
            points += [
                MetricPoint(name: "edm_system_cpu_usage_percent", value: 20 + Double(i), unit: "percent", timestamp: at),
                MetricPoint(name: "edm_system_memory_usage_percent", value: 40 + Double(i % 4), unit: "percent", timestamp: at),
                MetricPoint(name: "edm_system_load1", value: 0.5 + Double(i) / 10, unit: "none", timestamp: at),
                MetricPoint(name: "edm_db_query_latency_seconds", value: 0.002 + Double(i) / 10_000, unit: "seconds", timestamp: at),
                MetricPoint(name: "edm_queue_throughput_per_hour", value: 3600 - Double(i * 100), unit: "emails_per_hour", timestamp: at),
            ]
        }
        try await app.metricStore.insert(points, on: app.db)
        _ = await app.systemMonitor.collectOnce()
        _ = try await app.edm.taskMonitor.runOnce()

        let ruleID = try await AlertingTests.createRule(app, [
            "name": .string(ruleName), "metric_name": "edm_dashboard_test_value", "condition_type": "threshold",
            "comparison_operator": ">", "threshold_value": 1, "time_window_minutes": 5, "severity": "critical",
        ])
        try await AlertingTests.point(app, "edm_dashboard_test_value", 5, at: now)
        _ = try await app.edm.alerting.evaluateOnce()
        let alert = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == ruleID).first(), "the test rule did not fire")
        #expect(alert.status == .active)
        return DashboardScenario(baseURL: baseURL, taskID: taskID, taskName: taskName, sent: sent, total: total,
                                 ruleID: ruleID, ruleName: ruleName, alertID: try alert.requireID(), tokens: tokens)
    }
}

/// Remembers every `Authorization` header that arrives (the API's own token check runs after it).
final class TokenProbe: AsyncMiddleware, Sendable {
    let seen = Mutex<[String]>([])

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let authorization = request.headers.first(name: .authorization) {
            seen.withLock { $0.append(authorization) }
        }
        return try await next.respond(to: request)
    }
}

/// ``runEDMMonitor(_:environment:timeout:)`` without blocking a thread of the Swift concurrency
/// pool, for when this process serves the requests of the child.
func runEDMMonitorAsync(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) async throws -> (status: Int32, stdout: String, stderr: String) {
    let child = try startEDMMonitor(arguments, environment: environment)
    let deadline = Date().addingTimeInterval(timeout)
    while child.isRunning {
        guard Date() < deadline else { throw TestSupportError("edm-monitor \(arguments) did not exit within \(timeout) s") }
        try await Task.sleep(for: .milliseconds(20))
    }
    return (child.wait(timeout: 0) ?? -1, child.stdout, child.stderr)
}

/// Where tests write artifacts (screenshots): `EDM_TEST_ARTIFACTS`, else `test-artifacts/` at the
/// package root (ignored by git).
func testArtifactsDirectory(_ name: String) -> URL {
    if let custom = ProcessInfo.processInfo.environment["EDM_TEST_ARTIFACTS"], !custom.isEmpty {
        return URL(fileURLWithPath: custom).appendingPathComponent(name)
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent("test-artifacts").appendingPathComponent(name)
}
