@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Alert evaluation as a Prometheus rule group (reference case C31), its metrics and default
/// rule, what it writes, rule-save warnings and the one rounding of alert instants (issue #15).
@Suite("Alert evaluation schedule")
struct AlertEvaluationScheduleTests {
    typealias Receiver = AlertingTests.WebhookReceiver
    static let t0 = APIJSON.parse("2026-03-09T10:00:00Z")!

    /// The two tiers of C31 on `edm_queue_oldest_wait_seconds`: same alert name (the
    /// `alertname` label), thresholds 300 and 600, `for` 60 s, a 1-minute window, `last`.
    static func createC31Rules(_ app: Application, webhook: String) async throws -> (w: UUID, c: UUID) {
        func body(_ tier: String, _ threshold: Double) -> [String: JSONValue] {
            ["name": .string("EdmQueueWaitHigh \(tier)"), "metric_name": "edm_queue_oldest_wait_seconds", "condition_type": "threshold",
             "comparison_operator": ">", "threshold_value": .number(threshold), "time_window_minutes": 1, "for_minutes": 1,
             "aggregation": "last", "severity": .string(tier), "labels": ["alertname": "EdmQueueWaitHigh"],
             "notification_channels": [["type": "webhook", "url": .string(webhook), "name": "ops-webhook"]]]
        }
        return (try await AlertingTests.createRule(app, body("warning", 300)), try await AlertingTests.createRule(app, body("critical", 600)))
    }

    static func state(_ app: Application, _ rule: UUID) async throws -> String {
        try await AlertInstanceRow.all(on: app.sql).first { $0.rule_id == rule }?.decodedState.name ?? "inactive"
    }

    @Test("reference case C31: iterations on the slot grid, slot 90 missed, W fires at 120 and C at 180, exactly four notifications, one metric read per iteration", arguments: TestDatabase.enabled)
    func c31(_ db: TestDatabase) async throws {
        let receiver = try await Receiver()
        let t0 = Self.t0
        let clock = ManualClock(start: t0)
        do {
            try await withApp(db, clock: clock) { app, _ in
                try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()  // the seeded defaults stay out
                let (w, c) = try await Self.createC31Rules(app, webhook: receiver.url)
                let samples: [(Double, Double)] = [(0, 250), (30, 320), (60, 450), (90, 700), (120, 650), (150, 640), (180, 620), (210, 500), (240, 280), (270, 250)]
                for (t, value) in samples {
                    try await AlertingTests.point(app, "edm_queue_oldest_wait_seconds", value, at: t0.addingTimeInterval(t), tags: ["service": "smtp-a"])
                }
                let alerting = app.edm.alerting
                // (wall start, slot, W's state, C's state) per iteration; the slot-60 iteration takes 75 s.
                let expected: [(Double, Double, String, String)] = [
                    (0, 0, "inactive", "inactive"), (30, 30, "pending", "inactive"), (60, 60, "pending", "inactive"),
                    (135, 120, "firing", "pending"), (150, 150, "firing", "pending"), (180, 180, "firing", "firing"),
                    (210, 210, "firing", "resolved"), (240, 240, "resolved", "inactive"), (270, 270, "inactive", "inactive"),
                ]
                var metricQueries = 0
                var missed: [Int] = []
                var wall = 0.0
                for (start, slot, wState, cState) in expected {
                    // Between iterations the loop waits exactly until the next slot is due.
                    #expect(alerting.secondsUntilNextIteration() == (wall == 0 ? 0 : max(0, start - wall)), "before \(start)")
                    clock.set(t0.addingTimeInterval(start))
                    let iteration = try #require(try await alerting.runDueIteration())
                    #expect(iteration.slot == t0.addingTimeInterval(slot), "wall \(start)")
                    #expect(iteration.report.rules == 2)
                    metricQueries += iteration.report.metricQueries
                    missed.append(iteration.missed)
                    #expect(try await Self.state(app, w) == wState, "W at \(slot)")
                    #expect(try await Self.state(app, c) == cState, "C at \(slot)")
                    #expect(try await alerting.runDueIteration() == nil, "never two iterations at once")
                    try await alerting.deliverOnce()
                    wall = start + (slot == 60 ? 75 : 1)
                    clock.set(t0.addingTimeInterval(wall))
                }
                #expect(missed == [0, 0, 0, 1, 0, 0, 0, 0, 0])
                #expect(alerting.missedIterations == 1)
                #expect(metricQueries == 9)  // one read of the metric per iteration for both rules, not 18

                let alerts = receiver.payloads.compactMap { ($0["alerts"] as? [[String: Any]])?.first }
                #expect(alerts.count == 4)
                #expect(alerts.map { $0["status"] as? String } == ["firing", "firing", "resolved", "resolved"])
                #expect(alerts.map { $0["fingerprint"] as? String } == ["faf956349fa29d36", "ec11771af5ece78f", "ec11771af5ece78f", "faf956349fa29d36"])
                #expect(alerts.map { ($0["labels"] as? [String: String])?["severity"] } == ["warning", "critical", "critical", "warning"])
                #expect(alerts.map { ($0["labels"] as? [String: String])?["alertname"] } == Array(repeating: "EdmQueueWaitHigh", count: 4))
                #expect(alerts.map { $0["startsAt"] as? String } == ["2026-03-09T10:02:00Z", "2026-03-09T10:03:00Z", "2026-03-09T10:03:00Z", "2026-03-09T10:02:00Z"])
                #expect(alerts.map { $0["endsAt"] as? String } == ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-03-09T10:03:30Z", "2026-03-09T10:04:00Z"])
                // The value 700 at t=90 was never evaluated: W fired on 650 (slot 120).
                let histories = try await AlertHistory.query(on: app.db).sort(\.$triggeredAt).all()
                #expect(histories.map(\.triggerValue) == [650, 620])
                #expect(histories.map(\.triggeredAt) == [t0.addingTimeInterval(120), t0.addingTimeInterval(180)])
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("an unchanged instance costs no write; its value is refreshed at most every 300 s", arguments: TestDatabase.enabled)
    func writesOnlyChanges(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Self.t0)
        try await withApp(db, clock: clock) { app, _ in
            try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
            _ = try await AlertingTests.createRule(app, [
                "name": "cpu", "metric_name": "edm_system_cpu_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 90, "time_window_minutes": 10, "severity": "critical", "notification_channels": [["type": "log"]],
            ])
            for minute in 0..<10 {
                try await AlertingTests.point(app, "edm_system_cpu_usage_percent", 95, at: Self.t0.addingTimeInterval(Double(minute) * 60), tags: ["host": "a"])
            }
            let first = try await app.edm.alerting.evaluateOnce()
            #expect(first.firing == 1 && first.writes == 1)
            for step in 1...9 {
                clock.set(Self.t0.addingTimeInterval(Double(step) * 30))
                let report = try await app.edm.alerting.evaluateOnce()
                #expect(report.instances == 1)
                #expect(report.writes == 0, "step \(step)")
                #expect(report.valueRefreshes == 0)
            }
            clock.set(Self.t0.addingTimeInterval(300))
            #expect(try await app.edm.alerting.evaluateOnce().valueRefreshes == 1)
            clock.set(Self.t0.addingTimeInterval(330))
            let report = try await app.edm.alerting.evaluateOnce()
            #expect(report.valueRefreshes == 0 && report.writes == 0)
        }
    }

    @Test("/metrics has the evaluation duration histogram and the missed-iterations counter, promtool-clean", arguments: [TestDatabase.sqlite])
    func metrics(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Self.t0)
        try await withApp(db, clock: clock) { app, _ in
            try await app.edm.alerting.runDueIteration()
            clock.set(Self.t0.addingTimeInterval(95))  // slots 30 and 60 were missed
            let iteration = try await app.edm.alerting.runDueIteration()
            #expect(iteration?.missed == 2)
            let (text, _) = try await PrometheusMetricsTests.exposition(app)
            #expect(text.contains("# TYPE edm_alert_evaluation_duration_seconds histogram\n"))
            #expect(text.contains("edm_alert_evaluation_duration_seconds_count 2\n"))
            #expect(text.contains("# TYPE edm_alert_evaluation_iterations_missed_total counter\nedm_alert_evaluation_iterations_missed_total 2\n"))
            try PrometheusMetricsTests.expectPromtoolAccepts(text)
        }
    }

    @Test("the seeded missed-iterations rule stays quiet on a fresh install and fires after a missed slot", arguments: TestDatabase.enabled)
    func missedIterationsRule(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Self.t0)
        try await withApp(db, clock: clock) { app, _ in
            let name = SeedEvaluationMissedIterationsRule.seed.name
            let rule = try #require(try await AlertRule.query(on: app.db).filter(\.$name == name).first())
            #expect(rule.isActive && rule.conditionType == .rate)
            let alerting = app.edm.alerting
            // A fresh install: an hour of on-time iterations raises nothing.
            for slot in stride(from: 0.0, through: 3600, by: 30) {
                clock.set(Self.t0.addingTimeInterval(slot))
                let iteration = try #require(try await alerting.runDueIteration())
                #expect(iteration.report.firing == 0, "at \(slot)")
            }
            #expect(try await AlertHistory.query(on: app.db).count() == 0)
            // One iteration runs 50 s: slot 3630 is missed, and the next iteration fires.
            clock.set(Self.t0.addingTimeInterval(3600 + 50 + 30))
            let late = try #require(try await alerting.runDueIteration())
            #expect(late.missed == 1)
            let firing = try await AlertHistory.query(on: app.db).all()
            #expect(firing.count == 1)
            #expect(firing.first?.$rule.id == rule.id)
        }
    }

    @Test("a rate window holding one sample has no value (not 0), and saving it warns", arguments: TestDatabase.enabled)
    func shortRateWindow(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Self.t0)
        try await withApp(db, clock: clock) { app, _ in
            try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
            // A counter sampled every 45 s, the latest 20 s ago: a 1-minute window holds one or
            // two samples, depending on the phase; now (t0 − 60 s, t0] holds only t0 − 20 s.
            for i in 0..<10 {
                try await AlertingTests.point(app, "edm_bounces_total", Double(i * 3), at: Self.t0.addingTimeInterval(Double(i - 9) * 45 - 20), tags: ["service": "a"])
            }
            let body: [String: JSONValue] = [
                "name": "bounces", "metric_name": "edm_bounces_total", "condition_type": "rate", "comparison_operator": "<",
                "threshold_value": 1, "time_window_minutes": 1, "severity": "warning", "notification_channels": [["type": "log"]],
            ]
            var id: UUID?
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                struct R: Decodable { var id: UUID; var warnings: [AlertRuleWarning]? }
                let rule = try res.content.decode(R.self)
                id = rule.id
                #expect(rule.warnings?.map(\.code) == ["window_shorter_than_two_samples"])
                #expect(rule.warnings?.first?.field == "time_window_minutes")
            }
            let ruleID = try #require(id)
            // PATCH and PUT warn too; a long enough window does not.
            try await app.testing().test(.PATCH, "/api/monitoring/alert-rules/\(ruleID)", beforeRequest: { try $0.content.encode(["description": "x"] as [String: JSONValue], as: .json) }) { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains("window_shorter_than_two_samples"))
            }
            try await app.testing().test(.PATCH, "/api/monitoring/alert-rules/\(ruleID)", beforeRequest: { try $0.content.encode(["time_window_minutes": 2] as [String: JSONValue], as: .json) }) { res in
                #expect(res.status == .ok)
                #expect(!res.body.string.contains("warnings"))
            }
            var put = body
            put["time_window_minutes"] = 1
            try await app.testing().test(.PUT, "/api/monitoring/alert-rules/\(ruleID)", beforeRequest: { try $0.content.encode(put, as: .json) }) { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains("window_shorter_than_two_samples"))
            }
            // The window (now − 60 s, now] holds one sample: rate < 1 would hold for a 0, but
            // there is no value, so the rule sees no data (no_data ok) and stays inactive.
            let report = try await app.edm.alerting.evaluateOnce()
            #expect(report.instances == 0 && report.firing == 0)
            try await app.testing().test(.POST, "/api/monitoring/alert-rules/\(ruleID)/test") { res in
                #expect(res.status == .ok)
                struct T: Decodable { struct S: Decodable { var value: Double?; var condition_holds: Bool }; var series: [S] }
                let result = try res.content.decode(T.self)
                #expect(result.series.count == 1)
                #expect(result.series.first?.value == nil)
                #expect(result.series.first?.condition_holds == false)
            }
        }
    }

    @Test("one instant, one rounding: the webhook's startsAt is the API's triggered_at, to the millisecond", arguments: TestDatabase.enabled)
    func oneRounding(_ db: TestDatabase) async throws {
        let receiver = try await Receiver()
        // 0.4996 s past the second: truncating prints .499, rounding .5 — the 1 ms of the bug.
        let clock = ManualClock(start: Self.t0.addingTimeInterval(0.4996))
        do {
            try await withApp(db, clock: clock) { app, _ in
                try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
                _ = try await AlertingTests.createRule(app, [
                    "name": "cpu", "metric_name": "edm_system_cpu_usage_percent", "condition_type": "threshold", "comparison_operator": ">",
                    "threshold_value": 90, "time_window_minutes": 1, "severity": "critical",
                    "notification_channels": [["type": "webhook", "url": .string(receiver.url)]],
                ])
                try await AlertingTests.point(app, "edm_system_cpu_usage_percent", 95, at: Self.t0)
                #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
                clock.set(Self.t0.addingTimeInterval(1))  // the notification is due from 0.5 s
                try await app.edm.alerting.deliverOnce()
                let startsAt = try #require((receiver.payloads.first?["alerts"] as? [[String: Any]])?.first?["startsAt"] as? String)
                var triggeredAt: String?
                try await app.testing().test(.GET, "/api/monitoring/alerts") { res in
                    let list = try JSONSerialization.jsonObject(with: Data(res.body.readableBytesView)) as? [String: Any]
                    triggeredAt = ((list?["data"] as? [[String: Any]])?.first?["triggered_at"] as? String)
                }
                #expect(startsAt == "2026-03-09T10:00:00.5Z")
                #expect(triggeredAt == "2026-03-09T10:00:00.500Z")
                #expect(APIJSON.parse(startsAt) == APIJSON.parse(try #require(triggeredAt)))
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }
}
