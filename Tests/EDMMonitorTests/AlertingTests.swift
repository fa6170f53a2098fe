@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Synchronization
import Testing
import Vapor
import VaporTesting

/// Alert rules, evaluation against stored metrics, history, the outbox and its delivery.
@Suite("Alerting")
struct AlertingTests {
    /// A webhook receiver on 127.0.0.1 that can be switched down (503) and records what arrives.
    final class WebhookReceiver: Sendable {
        final class State: Sendable {
            let bodies = Mutex<[String]>([])
            let paths = Mutex<[String]>([])
            let down = Mutex(false)
        }
        let app: Application
        let port: Int
        let state = State()

        init() async throws {
            app = try await Application.make(.testing)
            port = try PostgresTestServer.freeLoopbackPort()
            app.http.server.configuration.hostname = "127.0.0.1"
            app.http.server.configuration.port = port
            app.logger.logLevel = .warning
            for path in [["hook"], ["slack"], ["api", "v2", "alerts"]] {
                app.post(path.map { PathComponent(stringLiteral: $0) }) { [state] req async -> HTTPStatus in
                    if state.down.withLock({ $0 }) { return .serviceUnavailable }
                    state.bodies.withLock { $0.append(req.body.string ?? "") }
                    state.paths.withLock { $0.append(req.url.path) }
                    return .ok
                }
            }
            try await app.server.start()
        }

        var url: String { "http://127.0.0.1:\(port)/hook" }
        var payloads: [[String: Any]] { state.bodies.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } }

        func stop() async throws {
            await app.server.shutdown()
            try await app.asyncShutdown()
        }
    }

    static func createRule(_ app: Application, _ body: [String: JSONValue]) async throws -> UUID {
        var id: UUID?
        try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
            #expect(res.status == .created, "\(res.body.string)")
            struct R: Decodable { var id: UUID }
            id = try res.content.decode(R.self).id
        }
        return try #require(id)
    }

    static func point(_ app: Application, _ name: String, _ value: Double, at date: Date, tags: [String: String] = [:]) async throws {
        try await SystemPerformanceMetric(metricName: name, metricValue: value, metricUnit: "seconds", tags: tags, timestamp: date).create(on: app.db)
    }

    @Test("reference case C13: pending, flapping, firing at 210, resolved at 240, exactly two webhook notifications", arguments: TestDatabase.enabled)
    func c13(_ db: TestDatabase) async throws {
        let receiver = try await WebhookReceiver()
        let t0 = try #require(APIJSON.parse("2026-03-09T10:00:00Z"))
        let clock = ManualClock(start: t0)
        do {
            try await withApp(db, clock: clock) { app, _ in
                let ruleID = try await Self.createRule(app, [
                    "name": "EdmQueueWaitHigh", "metric_name": "edm_queue_oldest_wait_seconds", "condition_type": "threshold",
                    "comparison_operator": ">", "threshold_value": 300, "time_window_minutes": 1, "for_minutes": 2, "severity": "warning",
                    "notification_channels": [["type": "webhook", "url": .string(receiver.url), "name": "ops-webhook"]],
                ])
                let values: [(Double, Double)] = [(0, 310), (30, 320), (60, 290), (90, 330), (120, 340), (150, 350), (180, 360), (210, 370), (240, 280), (270, 305), (300, 295)]
                let expected = ["pending", "pending", "inactive", "pending", "pending", "pending", "pending", "firing", "inactive", "pending", "inactive"]
                for ((t, value), state) in zip(values, expected) {
                    clock.set(t0.addingTimeInterval(t))
                    try await Self.point(app, "edm_queue_oldest_wait_seconds", value, at: clock.now())
                    _ = try await app.edm.alerting.evaluateOnce()
                    let instance = try await AlertInstanceRow.all(on: app.sql).first { $0.rule_id == ruleID }
                    // A resolved instance shows as inactive at the next step; at 240 it is `resolved`.
                    let name = instance?.decodedState.name ?? "inactive"
                    #expect(name == state || (t == 240 && name == "resolved"), "t=\(t): \(name)")
                    try await app.edm.alerting.deliverOnce()
                }
                let payloads = receiver.payloads
                #expect(payloads.count == 2)
                #expect(payloads.map { $0["status"] as? String } == ["firing", "resolved"])
                let firing = try #require((payloads.first?["alerts"] as? [[String: Any]])?.first)
                #expect(firing["startsAt"] as? String == "2026-03-09T10:03:30Z")
                #expect(firing["endsAt"] as? String == "0001-01-01T00:00:00Z")
                #expect(payloads.first?["receiver"] as? String == "ops-webhook")
                #expect(payloads.first?["version"] as? String == "4")
                let resolved = try #require((payloads.last?["alerts"] as? [[String: Any]])?.first)
                #expect(resolved["endsAt"] as? String == "2026-03-09T10:04:00Z")
                #expect((resolved["labels"] as? [String: String])?["alertname"] == "EdmQueueWaitHigh")
                // One history row: the firing episode; the pending-only episodes left none.
                let histories = try await AlertHistory.query(on: app.db).all()
                #expect(histories.count == 1)
                #expect(histories.first?.status == .resolved)
                #expect(histories.first?.triggeredAt == t0.addingTimeInterval(210))
                #expect(histories.first?.resolvedAt == t0.addingTimeInterval(240))
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("after an outage a receiver gets firing before resolved, even when the resolved retry falls due first", arguments: TestDatabase.enabled)
    func outageKeepsOrder(_ db: TestDatabase) async throws {
        let receiver = try await WebhookReceiver()
        let t0 = try #require(APIJSON.parse("2026-03-09T10:00:00Z"))
        let clock = ManualClock(start: t0)
        do {
            try await withApp(db, clock: clock) { app, _ in
                _ = try await Self.createRule(app, [
                    "name": "cpu", "metric_name": "edm_system_cpu_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                    "threshold_value": 90, "time_window_minutes": 1, "severity": "critical",
                    "notification_channels": [["type": "webhook", "url": .string(receiver.url)]],
                ])
                receiver.state.down.withLock { $0 = true }
                try await Self.point(app, "edm_system_cpu_usage_percent", 95, at: clock.now())
                #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
                #expect(try await app.edm.alerting.deliverOnce() == 0)  // attempt 1 fails: retry at +10 s
                clock.set(t0.addingTimeInterval(10))
                #expect(try await app.edm.alerting.deliverOnce() == 0)  // attempt 2 fails: retry at +30 s
                clock.set(t0.addingTimeInterval(12))
                try await Self.point(app, "edm_system_cpu_usage_percent", 50, at: clock.now())
                #expect(try await app.edm.alerting.evaluateOnce().resolved == 1)  // resolved is due at once
                receiver.state.down.withLock { $0 = false }
                #expect(try await app.edm.alerting.deliverOnce() == 0)  // it waits for its firing
                clock.set(t0.addingTimeInterval(30))
                #expect(try await app.edm.alerting.deliverOnce() == 2)  // the firing, then its resolved
                #expect(try await app.edm.alerting.deliverOnce() == 0)
                #expect(receiver.payloads.map { $0["status"] as? String } == ["firing", "resolved"])
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("a receiver that is down gets every notification after it returns, exactly once")
    func receiverOutage() async throws {
        let receiver = try await WebhookReceiver()
        let clock = ManualClock()
        do {
            try await withApp(.sqlite, clock: clock) { app, _ in
                _ = try await Self.createRule(app, [
                    "name": "cpu", "metric_name": "edm_system_cpu_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                    "threshold_value": 90, "time_window_minutes": 1, "severity": "critical",
                    "notification_channels": [["type": "webhook", "url": .string(receiver.url)]],
                ])
                receiver.state.down.withLock { $0 = true }
                try await Self.point(app, "edm_system_cpu_usage_percent", 95, at: clock.now(), tags: ["host": "a"])
                try await Self.point(app, "edm_system_cpu_usage_percent", 97, at: clock.now(), tags: ["host": "b"])
                let report = try await app.edm.alerting.evaluateOnce()
                #expect(report.firing == 2)
                for _ in 0..<5 {
                    #expect(try await app.edm.alerting.deliverOnce() == 0)
                    clock.advance(by: 700)
                }
                receiver.state.down.withLock { $0 = false }
                #expect(try await app.edm.alerting.deliverOnce() == 2)
                clock.advance(by: 3600)
                #expect(try await app.edm.alerting.deliverOnce() == 0)
                #expect(receiver.payloads.count == 2)
                let hosts = Set(receiver.payloads.compactMap { (($0["alerts"] as? [[String: Any]])?.first?["labels"] as? [String: String])?["host"] })
                #expect(hosts == ["a", "b"])
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("state survives a restart: no reset of for, no second firing notification", arguments: TestDatabase.enabled)
    func restart(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock, sqliteFile: true) { app, settings in
            // A metric no default rule watches, so that only this rule fires.
            _ = try await Self.createRule(app, [
                "name": "slow", "metric_name": "edm_test_latency_seconds", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 1, "time_window_minutes": 1, "for_minutes": 1, "severity": "warning",
            ])
            try await Self.point(app, "edm_test_latency_seconds", 2, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnce()
            // A second process on the same database (the restarted one) continues the pending state.
            let restarted = try await Application.make(.testing)
            do {
                try await configure(restarted, settings: settings, dependencies: .init(clock: clock))
                // The old process is gone; its evaluator lease (3 × 30 s) lapses, then the new one evaluates.
                clock.advance(by: 91)
                try await Self.point(app, "edm_test_latency_seconds", 2, at: clock.now())
                let report = try await restarted.edm.alerting.evaluateOnce()
                #expect(report.firing == 1, "for should count from the first evaluation before the restart")
                clock.advance(by: 30)
                try await Self.point(app, "edm_test_latency_seconds", 2, at: clock.now())
                let again = try await restarted.edm.alerting.evaluateOnce()
                #expect(again.firing == 0)
            } catch {
                try? await restarted.asyncShutdown()
                throw error
            }
            try await restarted.asyncShutdown()
            let notifications = try await app.sql.raw("SELECT count(*) AS n FROM alert_notifications WHERE kind = 'firing'").first(decoding: Count.self)
            #expect(notifications?.n == 1)
        }
    }

    @Test("an evaluation error changes nothing and resolves nothing")
    func evaluationError() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            _ = try await Self.createRule(app, [
                "name": "mem", "metric_name": "edm_system_memory_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 85, "time_window_minutes": 1, "severity": "warning",
            ])
            try await Self.point(app, "edm_system_memory_usage_percent", 90, at: clock.now())
            #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
            try await app.sql.raw("ALTER TABLE system_performance_metrics RENAME TO spm_away").run()
            clock.advance(by: 30)
            await #expect(throws: (any Error).self) { try await app.edm.alerting.evaluateOnceRecordingErrors() }
            #expect(app.edm.alerting.lastEvaluationError != nil)
            try await app.sql.raw("ALTER TABLE spm_away RENAME TO system_performance_metrics").run()
            let history = try #require(try await AlertHistory.query(on: app.db).first())
            #expect(history.status == .active)
            #expect(try await app.sql.raw("SELECT count(*) AS n FROM alert_notifications WHERE kind = 'resolved'").first(decoding: Count.self)?.n == 0)
            try await Self.point(app, "edm_system_memory_usage_percent", 91, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnceRecordingErrors()
            #expect(app.edm.alerting.lastEvaluationError == nil)
        }
    }

    @Test("acknowledge and manual resolve; lists, filters and the notification log")
    func ackAndResolve() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let ruleID = try await Self.createRule(app, [
                "name": "stuck", "metric_name": "edm_task_stuck_duration_seconds", "condition_type": "threshold", "comparison_operator": ">=",
                "threshold_value": 600, "time_window_minutes": 5, "severity": "critical", "repeat_interval_minutes": 1,
                "summary_template": "Task {{labels.task_id}} stuck for {{value}} s (limit {{threshold}})",
            ])
            try await Self.point(app, "edm_task_stuck_duration_seconds", 700, at: clock.now(), tags: ["task_id": "T-1"])
            _ = try await app.edm.alerting.evaluateOnce()
            let history = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == ruleID).first())
            #expect(history.message == "Task T-1 stuck for 700 s (limit 600)")
            let id = try history.requireID()
            try await app.testing().test(.GET, "/api/monitoring/alerts?status=active&severity=critical&rule_id=\(ruleID)") { res in
                #expect(res.body.string.contains(#""total":1"#))
            }
            try await app.testing().test(.POST, "/api/monitoring/alerts/\(id)/acknowledge", beforeRequest: { try $0.content.encode(["by": "ann"]) }) { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""status":"acknowledged""#))
                #expect(res.body.string.contains(#""acknowledged_by":"ann""#))
            }
            // Acknowledged: no reminders.
            clock.advance(by: 120)
            try await Self.point(app, "edm_task_stuck_duration_seconds", 820, at: clock.now(), tags: ["task_id": "T-1"])
            #expect(try await app.edm.alerting.evaluateOnce().reminders == 1)
            #expect(try await app.sql.raw("SELECT count(*) AS n FROM alert_notifications WHERE kind = 'reminder' AND history_id = \(bind: id)").first(decoding: Count.self)?.n == 0)
            try await app.testing().test(.POST, "/api/monitoring/alerts/\(id)/resolve") { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""status":"resolved""#))
            }
            try await app.testing().test(.POST, "/api/monitoring/alerts/\(id)/resolve") { #expect($0.status == .conflict) }
            try await app.edm.alerting.deliverOnce()
            try await app.testing().test(.GET, "/api/monitoring/alerts/\(id)") { res in
                struct A: Decodable { struct N: Decodable { var kind: String; var status: String; var channel: String }; var notifications: [N] }
                let alert = try res.content.decode(A.self)
                #expect(alert.notifications.map(\.kind) == ["firing", "resolved"])
                #expect(alert.notifications.allSatisfy { $0.status == "delivered" && $0.channel == "log" })
            }
            try await app.testing().test(.GET, "/api/monitoring/alerts/\(UUID())") { #expect($0.status == .notFound) }
        }
    }

    struct BadRule: Sendable, CustomTestStringConvertible {
        var change: [String: JSONValue]
        var field: String
        var testDescription: String { field }
    }

    static let base: [String: JSONValue] = [
        "name": "r", "metric_name": "edm_x", "condition_type": "threshold", "comparison_operator": ">", "threshold_value": 1,
        "time_window_minutes": 5, "severity": "warning",
    ]

    static let badRules: [BadRule] = [
        BadRule(change: ["comparison_operator": "=>"], field: "comparison_operator"),
        BadRule(change: ["condition_type": "spike"], field: "condition_type"),
        BadRule(change: ["threshold_value": .null, "comparison_operator": ">"], field: "threshold_value"),
        BadRule(change: ["time_window_minutes": 0], field: "time_window_minutes"),
        BadRule(change: ["severity": "urgent"], field: "severity"),
        BadRule(change: ["tag_matchers": [["key": "bad key", "op": "=", "value": "x"]]], field: "tag_matchers[0].key"),
        BadRule(change: ["tag_matchers": [["key": "host", "op": "~", "value": "x"]]], field: "tag_matchers[0].op"),
        BadRule(change: ["notification_channels": [["type": "pager"]]], field: "notification_channels[0].type"),
        BadRule(change: ["notification_channels": [["type": "webhook", "url": "ftp://x.example.com"]]], field: "notification_channels[0].url"),
        BadRule(change: ["notification_channels": [["type": "email", "to": "not-an-address", "service_id": .string(UUID().uuidString)]]], field: "notification_channels[0].to"),
        // A typo'd key would otherwise do nothing; a number where a URL goes is not "a bad type".
        BadRule(change: ["notification_channels": [["type": "webhook", "url": "https://hooks.example.com/x", "send_resolve": false]]], field: "notification_channels[0].send_resolve"),
        BadRule(change: ["notification_channels": [["type": "webhook", "url": 5]]], field: "notification_channels[0].url"),
        BadRule(change: ["notification_channels": [["type": "webhook", "url": "https://hooks.example.com/x", "send_resolved": "no"]]], field: "notification_channels[0].send_resolved"),
        BadRule(change: ["notification_channels": ["webhook"]], field: "notification_channels[0]"),
        BadRule(change: ["summary_template": "{{#x}}"], field: "summary_template"),
        BadRule(change: ["metric_name": "9bad name"], field: "metric_name"),
        BadRule(change: ["no_data": "panic"], field: "no_data"),
        BadRule(change: ["aggregation": "median"], field: "aggregation"),
    ]

    @Test("bad rule input is a 400 naming each field; unknown ids are 404", arguments: badRules)
    func badRuleInput(_ bad: BadRule) async throws {
        try await withApp(.sqlite) { app, _ in
            let before = try await AlertRule.query(on: app.db).count()
            var body = Self.base.merging(bad.change) { _, new in new }
            body = body.filter { $0.value != .null }
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field).contains(bad.field), "\(error.error.details)")
            }
            #expect(try await AlertRule.query(on: app.db).count() == before)
            try await app.testing().test(.GET, "/api/monitoring/alert-rules/\(UUID())") { #expect($0.status == .notFound) }
        }
    }

    @Test("the seven default rules are seeded with a log channel, and a healthy fresh install raises none of them")
    func defaults() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let rules = try await AlertRule.query(on: app.db).all()
            #expect(rules.count == SeedDefaultAlertRules.seeds.count + 1)  // + SeedEvaluationMissedIterationsRule
            #expect(rules.allSatisfy { $0.notificationChannels == [.object(["type": .string("log")])] })
            try await app.edm.taskMonitor.runOnce()
            try await Self.point(app, "edm_system_memory_usage_percent", 40, at: clock.now())
            let report = try await app.edm.alerting.evaluateOnce()
            #expect(report.firing == 0)
            #expect(try await AlertHistory.query(on: app.db).count() == 0)
        }
    }

    @Test("test now reports what would fire and why, changing nothing")
    func testNow() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let id = try await Self.createRule(app, [
                "name": "cpu", "metric_name": "edm_system_cpu_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 90, "time_window_minutes": 5, "severity": "warning", "aggregation": "avg",
                "tag_matchers": [["key": "host", "op": "!=", "value": "ignored"]],
            ])
            for (host, values) in [("a", [95.0, 99]), ("b", [10.0, 20]), ("ignored", [100.0])] {
                for value in values { try await Self.point(app, "edm_system_cpu_usage_percent", value, at: clock.now(), tags: ["host": host]) }
            }
            try await app.testing().test(.POST, "/api/monitoring/alert-rules/\(id)/test") { res in
                #expect(res.status == .ok)
                struct T: Decodable { struct S: Decodable { var tags: [String: String]; var value: Double?; var condition_holds: Bool; var would: String }; var series: [S] }
                let result = try res.content.decode(T.self)
                #expect(result.series.count == 2)
                let a = try #require(result.series.first { $0.tags["host"] == "a" })
                #expect(a.value == 97)
                #expect(a.condition_holds)
                #expect(a.would == "fire")
                #expect(result.series.first { $0.tags["host"] == "b" }?.condition_holds == false)
            }
            #expect(try await AlertHistory.query(on: app.db).count() == 0)
            #expect(try await AlertInstanceRow.all(on: app.sql).isEmpty)
        }
    }
}

@Suite("Alerting: silences, lease, email")
struct AlertingMoreTests {
    @Test("a silence suppresses a firing alert, then lets it through when it is expired while still firing", arguments: TestDatabase.enabled)
    func silence(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let rule = try await AlertingTests.createRule(app, [
                "name": "QueueStalled", "metric_name": "edm_queue_oldest_wait_seconds", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 300, "time_window_minutes": 1, "severity": "warning",
            ])
            var silenceID = ""
            try await app.testing().test(.POST, "/api/monitoring/silences", beforeRequest: { req in
                try req.content.encode(["matchers": [["name": "alertname", "op": "=", "value": "QueueStalled"]], "ends_at": "2026-03-09T12:00:00Z",
                                        "created_by": "ann", "comment": "maintenance"] as JSONValue, as: .json)
            }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                struct S: Decodable { var id: String; var state: String }
                let s = try res.content.decode(S.self)
                #expect(s.state == "active")
                silenceID = s.id
            }
            try await AlertingTests.point(app, "edm_queue_oldest_wait_seconds", 400, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnce()
            let history = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == rule).first())
            #expect(history.status == .suppressed)
            func notifications() async throws -> Int { try await app.sql.raw("SELECT count(*) AS n FROM alert_notifications WHERE history_id = \(bind: history.requireID())").first(decoding: Count.self)?.n ?? -1 }
            #expect(try await notifications() == 0)

            clock.advance(by: 30)
            try await app.testing().test(.POST, "/api/monitoring/silences/\(silenceID)/expire") { #expect($0.status == .ok) }
            try await AlertingTests.point(app, "edm_queue_oldest_wait_seconds", 410, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnce()
            #expect(try await AlertHistory.find(history.requireID(), on: app.db)?.status == .active)
            #expect(try await notifications() == 1)
            try await app.testing().test(.POST, "/api/monitoring/silences/\(silenceID)/expire") { #expect($0.status == .conflict) }
            try await app.testing().test(.POST, "/api/monitoring/silences", beforeRequest: { req in
                try req.content.encode(["matchers": [] as JSONValue, "ends_at": "2020-01-01T00:00:00Z", "created_by": "", "comment": "x"] as JSONValue, as: .json)
            }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(Set(error.error.details.map(\.field)) == ["matchers", "ends_at", "created_by"])
            }
        }
    }

    @Test("with two instances on one database, exactly one evaluates at a time (a lease)")
    func evaluatorLease() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock, sqliteFile: true) { app, settings in
            let other = try await Application.make(.testing)
            do {
                try await configure(other, settings: settings, dependencies: .init(clock: clock))
                #expect(try await app.edm.alerting.evaluateOnce().skipped == false)
                #expect(try await other.edm.alerting.evaluateOnce().skipped == true)
                #expect(try await app.edm.alerting.evaluateOnce().skipped == false)
                clock.advance(by: 91)  // the holder died: its lease (3 × 30 s) expired
                #expect(try await other.edm.alerting.evaluateOnce().skipped == false)
                #expect(try await app.edm.alerting.evaluateOnce().skipped == true)
            } catch {
                try? await other.asyncShutdown()
                throw error
            }
            try await other.asyncShutdown()
        }
    }

    @Test("an email alert reaches a real SMTP peer through an email service")
    func emailChannel() async throws {
        let server = try SMTPTestServer()
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let service = try await Fixtures.service(app, name: "alerts-relay", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: server.port)))
            _ = try await AlertingTests.createRule(app, [
                "name": "DiskFull", "metric_name": "edm_system_disk_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 95, "time_window_minutes": 1, "severity": "critical",
                "notification_channels": [["type": "email", "to": "ops@example.com", "service_id": .string(service.uuidString)]],
            ])
            try await AlertingTests.point(app, "edm_system_disk_usage_percent", 97, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnce()
            #expect(try await app.edm.alerting.deliverOnce() == 1)
            let messages = try server.messages()
            #expect(messages.count == 1)
            #expect(messages.first?.rcptTos == ["ops@example.com"])
            let text = String(decoding: messages.first?.data ?? [], as: UTF8.self)
            #expect(text.contains("Subject: [FIRING] DiskFull"))
        }
    }
}

@Suite("Alerting: reference case C17")
struct AlertingC17Tests {
    @Test("the webhook receives exactly the Alertmanager v4 payloads of C17, firing then resolved")
    func c17EndToEnd() async throws {
        let receiver = try await AlertingTests.WebhookReceiver()
        let clock = ManualClock(start: try #require(APIJSON.parse("2026-03-09T10:05:00Z")))
        do {
            try await withApp(.sqlite, clock: clock) { app, _ in
                app.edm.alerting.settings.externalURL = "http://edm-monitor.example.com:8080"
                _ = try await AlertingTests.createRule(app, [
                    "name": "EdmTaskStuck", "metric_name": "edm_task_stuck_duration_seconds", "condition_type": "threshold",
                    "comparison_operator": ">=", "threshold_value": 600, "time_window_minutes": 1, "severity": "critical",
                    "labels": ["service": "edm-monitor"],
                    "summary_template": "任务 {{labels.task_id}} 已超过 10 分钟没有进展",
                    "description_template": "Oldest pending subtask has waited {{value}} s (threshold {{threshold}} s).",
                    "notification_channels": [["type": "webhook", "url": .string(receiver.url), "name": "ops-webhook"]],
                ])
                try await AlertingTests.point(app, "edm_task_stuck_duration_seconds", 742, at: clock.now(), tags: ["task_id": "T-20260309-0007"])
                _ = try await app.edm.alerting.evaluateOnce()
                try await app.edm.alerting.deliverOnce()
                clock.set(try #require(APIJSON.parse("2026-03-09T10:31:30Z")))  // no data since: resolves
                _ = try await app.edm.alerting.evaluateOnce()
                try await app.edm.alerting.deliverOnce()
                let bodies = receiver.state.bodies.withLock { $0 }
                #expect(bodies.count == 2)
                for (body, fixture) in zip(bodies, ["C17-webhook-firing.expected.json", "C17-webhook-resolved.expected.json"]) {
                    let expected = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                        .appendingPathComponent("EDMMonitorCoreTests/Fixtures/\(fixture)"))
                    let want = try JSONSerialization.jsonObject(with: expected) as? NSDictionary
                    let got = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? NSDictionary
                    #expect(got == want, "\(fixture): \(body)")
                }
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }
}

@Suite("Alerting: rate and absence through the database")
struct AlertingRateAbsenceTests {
    @Test("rate across a counter reset (C15 D: 100 150 0 20 → 70/180 per second) fires; absence fires when the window is empty and resolves when data returns", arguments: TestDatabase.enabled)
    func rateAndAbsence(_ db: TestDatabase) async throws {
        let t0 = try #require(APIJSON.parse("2026-03-09T10:00:00Z"))
        let clock = ManualClock(start: t0)
        try await withApp(db, clock: clock) { app, _ in
            let rate = try await AlertingTests.createRule(app, [
                "name": "sends", "metric_name": "edm_test_sent_total", "condition_type": "rate", "comparison_operator": ">",
                "threshold_value": 0.388, "time_window_minutes": 5, "severity": "info",
            ])
            let absent = try await AlertingTests.createRule(app, [
                "name": "heartbeat", "metric_name": "edm_test_heartbeat", "condition_type": "absence", "time_window_minutes": 1, "severity": "warning",
            ])
            for (i, value) in [100.0, 150, 0, 20].enumerated() {
                try await AlertingTests.point(app, "edm_test_sent_total", value, at: t0.addingTimeInterval(Double(i) * 60))
            }
            try await AlertingTests.point(app, "edm_test_heartbeat", 1, at: t0.addingTimeInterval(180))
            clock.set(t0.addingTimeInterval(180))
            _ = try await app.edm.alerting.evaluateOnce()
            func status(_ rule: UUID) async throws -> AlertHistory.Status? {
                try await AlertHistory.query(on: app.db).filter(\.$rule.$id == rule).sort(\.$triggeredAt, .descending).first()?.status
            }
            #expect(try await status(rate) == .active)
            let history = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == rate).first())
            #expect(abs((history.triggerValue ?? 0) - 70.0 / 180.0) < 1e-12)
            #expect(try await status(absent) == nil)

            clock.advance(by: 61)  // nothing since 10:03:00: the heartbeat's 1-minute window is empty
            _ = try await app.edm.alerting.evaluateOnce()
            #expect(try await status(absent) == .active)
            try await AlertingTests.point(app, "edm_test_heartbeat", 1, at: clock.now())
            _ = try await app.edm.alerting.evaluateOnce()
            #expect(try await status(absent) == .resolved)
        }
    }
}

@Suite("Alerting: channels, crash, meta-alert")
struct AlertingChannelTests {
    @Test("slack and alertmanager channels post their bodies; a resolve queued before a crash is delivered after the restart")
    func channelsAndCrash() async throws {
        let receiver = try await AlertingTests.WebhookReceiver()
        let clock = ManualClock()
        do {
            try await withApp(.sqlite, clock: clock, sqliteFile: true) { app, settings in
                _ = try await AlertingTests.createRule(app, [
                    "name": "LoadHigh", "metric_name": "edm_system_load1", "condition_type": "threshold", "comparison_operator": ">",
                    "threshold_value": 8, "time_window_minutes": 1, "severity": "warning",
                    "notification_channels": [["type": "slack", "url": .string("http://127.0.0.1:\(receiver.port)/slack")],
                                              ["type": "alertmanager", "url": .string("http://127.0.0.1:\(receiver.port)")]],
                ])
                try await AlertingTests.point(app, "edm_system_load1", 9, at: clock.now())
                _ = try await app.edm.alerting.evaluateOnce()
                #expect(try await app.edm.alerting.deliverOnce() == 2)
                let paths = receiver.state.paths.withLock { $0 }.sorted()
                #expect(paths == ["/api/v2/alerts", "/slack"])
                let bodies = receiver.state.bodies.withLock { $0 }
                let slack = try #require(bodies.first { $0.contains("attachments") })
                #expect(slack.contains("FIRING"))
                let am = try #require(bodies.first { $0.hasPrefix("[") })
                let posted = try #require(try JSONSerialization.jsonObject(with: Data(am.utf8)) as? [[String: Any]])
                #expect((posted.first?["labels"] as? [String: String])?["alertname"] == "LoadHigh")

                // The condition clears and the resolve is queued; the process dies before delivering it.
                clock.advance(by: 90)
                _ = try await app.edm.alerting.evaluateOnce()
                let restarted = try await Application.make(.testing)
                do {
                    try await configure(restarted, settings: settings, dependencies: .init(clock: clock))
                    #expect(try await restarted.edm.alerting.deliverOnce() == 2)
                } catch {
                    try? await restarted.asyncShutdown()
                    throw error
                }
                try await restarted.asyncShutdown()
                #expect(receiver.state.paths.withLock { $0 }.count == 4)
                #expect(receiver.state.bodies.withLock { $0 }.last { $0.contains("attachments") }?.contains("RESOLVED") == true)
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("while evaluation fails, /metrics reports the evaluator's meta-alert and health says degraded")
    func metaAlert() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.body.string.contains("edm_alert_evaluation_failing 0"))
            }
            try await app.sql.raw("ALTER TABLE system_performance_metrics RENAME TO spm_away").run()
            _ = try? await app.edm.alerting.evaluateOnceRecordingErrors()
            try await app.sql.raw("ALTER TABLE spm_away RENAME TO system_performance_metrics").run()
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.body.string.contains("edm_alert_evaluation_failing 1"))
            }
            try await app.testing().test(.GET, "/api/monitoring/health") { res in
                struct H: Decodable { struct C: Decodable { var status: String }; var checks: [String: C] }
                let health = try res.content.decode(H.self)
                #expect(health.checks["evaluator"]?.status == "degraded")
            }
        }
    }
}

@Suite("Alerting: history retention")
struct AlertHistoryRetentionTests {
    @Test("resolved episodes older than the alert-history retention (90 days) are deleted; open and recent ones stay")
    func retention() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let rule = try #require(try await AlertRule.query(on: app.db).first())
            func episode(status: AlertHistory.Status, triggered: Double, resolved: Double?) async throws -> UUID {
                let h = AlertHistory()
                h.$rule.id = try rule.requireID()
                h.triggeredAt = clock.now().addingTimeInterval(triggered * 86_400)
                h.resolvedAt = resolved.map { clock.now().addingTimeInterval($0 * 86_400) }
                h.status = status
                h.message = "m"
                h.fingerprint = "f"
                h.tags = [:]
                h.createdAt = h.triggeredAt
                try await h.create(on: app.db)
                return try h.requireID()
            }
            let old = try await episode(status: .resolved, triggered: -100, resolved: -95)
            let recent = try await episode(status: .resolved, triggered: -10, resolved: -9)
            let open = try await episode(status: .active, triggered: -200, resolved: nil)
            let report = try await app.metricStore.cleanup(on: app.db)
            #expect(report.alerts == 1)
            #expect(try await AlertHistory.find(old, on: app.db) == nil)
            #expect(try await AlertHistory.find(recent, on: app.db) != nil)
            #expect(try await AlertHistory.find(open, on: app.db) != nil)
        }
    }
}

@Suite("Alerting: hysteresis and keep_firing through the database")
struct AlertingHysteresisTests {
    @Test("fire above 90, resolve only below 80; keep_firing holds a firing alert for 2 minutes after the condition clears", arguments: TestDatabase.enabled)
    func hysteresisAndKeepFiring(_ db: TestDatabase) async throws {
        let t0 = try #require(APIJSON.parse("2026-03-09T10:00:00Z"))
        let clock = ManualClock(start: t0)
        try await withApp(db, clock: clock) { app, _ in
            let hysteresis = try await AlertingTests.createRule(app, [
                "name": "CPU", "metric_name": "edm_test_cpu", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 90, "resolve_threshold": 80, "time_window_minutes": 1, "severity": "warning",
            ])
            let keep = try await AlertingTests.createRule(app, [
                "name": "Errors", "metric_name": "edm_test_errors", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 5, "keep_firing_minutes": 2, "time_window_minutes": 1, "severity": "warning",
            ])
            func state(_ rule: UUID) async throws -> String {
                try await AlertInstanceRow.all(on: app.sql).first { $0.rule_id == rule }?.decodedState.name ?? "inactive"
            }
            // t, cpu, errors → expected CPU state, Errors state
            let steps: [(Double, Double, Double, String, String)] = [
                (0, 95, 9, "firing", "firing"),
                (30, 85, 1, "firing", "firing"),     // below 90 but above 80: still firing; errors clear, kept
                (60, 82, 1, "firing", "firing"),
                (120, 79, 1, "resolved", "firing"),  // below 80: resolves; errors clear for 90 s < 120 s
                (150, 85, 1, "inactive", "resolved"),// 85 does not re-fire (needs > 90); errors clear for 120 s
            ]
            for (t, cpu, errors, cpuState, errorState) in steps {
                clock.set(t0.addingTimeInterval(t))
                try await AlertingTests.point(app, "edm_test_cpu", cpu, at: clock.now())
                try await AlertingTests.point(app, "edm_test_errors", errors, at: clock.now())
                _ = try await app.edm.alerting.evaluateOnce()
                #expect(try await state(hysteresis) == cpuState, "CPU at t=\(t)")
                #expect(try await state(keep) == errorState, "Errors at t=\(t)")
            }
            let cpuHistory = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == hysteresis).first())
            #expect(cpuHistory.resolvedAt == t0.addingTimeInterval(120))
            let errorHistory = try #require(try await AlertHistory.query(on: app.db).filter(\.$rule.$id == keep).first())
            #expect(errorHistory.resolvedAt == t0.addingTimeInterval(150))
        }
    }
}
