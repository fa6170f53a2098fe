@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// The EDM figures on `GET /metrics` (issue #17 item 2): queue, sending, tasks, services and
/// alerts, from the collectors' aggregate queries, never from a query at scrape time.
@Suite("/metrics: EDM figures")
struct EDMMetricsTests {
    /// The value of the sample `name{labels}` in an exposition (labels in any order), if present.
    static func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        let prefix = labels.isEmpty ? name : name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",") + "}"
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix + " ") }) else { return nil }
        return Double(line.dropFirst(prefix.count + 1))
    }

    /// The sum of every sample of `name` (any labels).
    static func total(_ text: String, _ name: String) -> Double {
        text.split(separator: "\n")
            .filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0, +)
    }

    @Test("queue depth, oldest wait, sent and failed per service and kind, tasks by state, stuck tasks, service state and quota, open alerts", arguments: TestDatabase.enabled)
    func figures(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        // The relay refuses its first two recipients for good, then accepts.
        let mailers = ScriptedMailers(clock: clock) { _, call in call <= 2 ? .permanentFailure("550 5.7.1 refused by policy") : .sent(messageID: nil) }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let relay = try await Fixtures.service(app, name: "relay", quota: 100)
            let spare = try #require(try await EmailService.find(try await Fixtures.service(app, name: "spare"), on: app.db))
            spare.isEnabled = false
            try await spare.save(on: app.db)

            let sentTask = try await Fixtures.task(app, user: user, recipients: 5, name: "sent", prefix: "a")
            try await Fixtures.drain(app)
            let cancelled = try await Fixtures.task(app, user: user, recipients: 3, name: "cancelled", prefix: "b")
            try await app.testing().test(.POST, "/api/tasks/\(cancelled)/cancel") { #expect($0.status == .ok) }
            let waiting = try await Fixtures.task(app, user: user, recipients: 4, name: "waiting", prefix: "c")
            clock.advance(by: 120)

            // The waiting task is stuck under a 60 s threshold.
            var settings = app.edm.taskMonitor.settings
            settings.stuckThresholdSeconds = 60
            app.edm.taskMonitor.settings = settings
            #expect(try await app.edm.taskMonitor.runOnce().map(\.taskID) == [waiting])

            // One firing critical alert.
            let rule = try #require(try await AlertRule.query(on: app.db).filter(\.$severity == .critical).first())
            let episode = AlertHistory()
            episode.$rule.id = try rule.requireID()
            episode.triggeredAt = clock.now()
            episode.status = .active
            episode.message = "m"
            episode.fingerprint = "f"
            episode.tags = [:]
            episode.createdAt = clock.now()
            try await episode.create(on: app.db)

            await app.systemMonitor.collectOnce()
            var text = ""
            try await app.testing().test(.GET, "/metrics") { res in text = res.body.string }

            #expect(Self.sample(text, "edm_queue_pending_subtasks") == 4)
            #expect(Self.sample(text, "edm_queue_oldest_wait_seconds") == 120)
            #expect(Self.sample(text, "edm_emails_sent_total", ["service": "relay"]) == 3)
            #expect(Self.sample(text, "edm_emails_sent_total", ["service": "spare"]) == 0)
            #expect(Self.sample(text, "edm_emails_failed_total", ["service": "relay", "kind": "rejected"]) == 2)
            #expect(Self.sample(text, "edm_emails_failed_total", ["service": "relay", "kind": "cancelled"]) == 0)
            #expect(Self.sample(text, "edm_emails_failed_total", ["service": "none", "kind": "cancelled"]) == 3)
            #expect(text.contains("# TYPE edm_emails_sent_total counter\n"))
            #expect(text.contains("# TYPE edm_emails_failed_total counter\n"))
            #expect(Self.sample(text, "edm_tasks", ["state": "completed"]) == 1)
            #expect(Self.sample(text, "edm_tasks", ["state": "cancelled"]) == 1)
            #expect(Self.sample(text, "edm_tasks", ["state": "queued"]) == 1)
            #expect(Self.sample(text, "edm_tasks", ["state": "sending"]) == 0)
            #expect(Self.total(text, "edm_tasks_stuck") == 1)
            #expect(text.contains("# TYPE edm_tasks_stuck gauge\n"))
            #expect(Self.sample(text, "edm_email_service_state", ["service": "relay", "state": "available"]) == 1)
            #expect(Self.sample(text, "edm_email_service_state", ["service": "relay", "state": "frozen"]) == 0)
            #expect(Self.sample(text, "edm_email_service_state", ["service": "spare", "state": "disabled"]) == 1)
            let used = try #require(try await EmailService.find(relay, on: app.db)).usedQuota
            #expect(Self.sample(text, "edm_email_service_quota_remaining", ["service": "relay"]) == Double(100 - used))
            #expect(Self.sample(text, "edm_alerts", ["state": "firing", "severity": "critical"]) == 1)
            #expect(Self.sample(text, "edm_alerts", ["state": "acknowledged", "severity": "critical"]) == 0)
            #expect(Self.total(text, "edm_alerts") == 1)
            // Low cardinality: no task id, no address in any label.
            for id in [sentTask, cancelled, waiting] { #expect(!text.lowercased().contains(id.uuidString.lowercased())) }
            #expect(!text.contains("@example.com"))

            // A scrape reads the collectors' last cycle, not the tables: with sub_tasks gone
            // for a moment it still answers the same figures.
            try await app.sql.raw("ALTER TABLE sub_tasks RENAME TO sub_tasks_away").run()
            var again = ""
            try await app.testing().test(.GET, "/metrics") { res in
                #expect(res.status == .ok)
                again = res.body.string
            }
            try await app.sql.raw("ALTER TABLE sub_tasks_away RENAME TO sub_tasks").run()
            #expect(Self.sample(again, "edm_queue_pending_subtasks") == 4)
            #expect(Self.sample(again, "edm_emails_sent_total", ["service": "relay"]) == 3)
        }
    }
}
