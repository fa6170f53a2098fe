@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Synchronization
import Testing
import Vapor
import VaporTesting

/// The notification outbox with several instances: claims, claim expiry, order and exactly-once
/// delivery; and the alert-rule service's validation.
@Suite("Alerting: outbox claims and the rule service")
struct AlertOutboxTests {
    /// A webhook receiver on 127.0.0.1 that answers after `delay` and records (alertname,
    /// startsAt, status) of every alert it receives, in arrival order.
    final class SlowReceiver: Sendable {
        let app: Application
        let port: Int
        final class Log: Sendable {
            let entries = Mutex<[(alert: String, startsAt: String, status: String)]>([])
        }
        let log = Log()

        init(delay: Duration) async throws {
            app = try await Application.make(.testing)
            port = try PostgresTestServer.freeLoopbackPort()
            app.http.server.configuration.hostname = "127.0.0.1"
            app.http.server.configuration.port = port
            app.logger.logLevel = .warning
            app.post("hook") { [log] req async throws -> HTTPStatus in
                let payload = try JSONSerialization.jsonObject(with: Data((req.body.string ?? "").utf8)) as? [String: Any]
                for alert in payload?["alerts"] as? [[String: Any]] ?? [] {
                    let name = (alert["labels"] as? [String: String])?["alertname"] ?? "?"
                    log.entries.withLock { $0.append((name, alert["startsAt"] as? String ?? "?", payload?["status"] as? String ?? "?")) }
                }
                try await Task.sleep(for: delay)
                return .ok
            }
            try await app.server.start()
        }

        var url: String { "http://127.0.0.1:\(port)/hook" }

        func stop() async throws {
            await app.server.shutdown()
            try await app.asyncShutdown()
        }
    }

    /// A flag one task sets and others poll.
    final class StopFlag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    static func pendingNotifications(_ app: Application) async throws -> Int {
        struct Count: Decodable { var n: Int }
        return try await app.sql.raw("SELECT COUNT(*) AS n FROM alert_notifications WHERE status = \(bind: AlertNotificationStatus.pending.rawValue)")
            .first(decoding: Count.self)?.n ?? -1
    }

    @Test("two instances on one PostgreSQL deliver every notification exactly once, in order per alert, to a receiver slower than the delivery interval",
          .enabled(if: PostgresTestServer.isEnabled))
    func twoInstancesExactlyOnce() async throws {
        let receiver = try await SlowReceiver(delay: .milliseconds(300))
        let clock = ManualClock()
        do {
            try await withApp(.postgres, clock: clock) { app, settings in
                let other = try await Application.make(.testing)
                do {
                    try await configure(other, settings: settings, dependencies: .init(clock: clock))
                    try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()  // the seeded defaults stay quiet
                    let rules = 5
                    for i in 0..<rules {
                        _ = try await AlertingTests.createRule(app, [
                            "name": .string("Rule\(i)"), "metric_name": .string("edm_test_value_\(i)"), "condition_type": "threshold",
                            "comparison_operator": ">", "threshold_value": 10, "time_window_minutes": 1, "severity": "warning",
                            "notification_channels": [["type": "webhook", "url": .string(receiver.url)]],
                        ])
                    }
                    // Both instances drain the outbox every 50 ms while rules fire and resolve twice.
                    let stop = StopFlag()
                    let deliverers = [app, other].map { instance in
                        Task { [stop] in
                            var delivered = 0
                            while !stop.isSet {
                                delivered += try await instance.edm.alerting.deliverOnce()
                                try await Task.sleep(for: .milliseconds(50))
                            }
                            return delivered
                        }
                    }
                    for (step, value) in [20.0, 0, 20, 0].enumerated() {
                        for i in 0..<rules { try await AlertingTests.point(app, "edm_test_value_\(i)", value, at: clock.now()) }
                        let report = try await app.edm.alerting.evaluateOnce()
                        #expect(step % 2 == 0 ? report.firing == rules : report.resolved == rules, "step \(step): \(report)")
                        try await Task.sleep(for: .milliseconds(400))
                        clock.advance(by: 90)
                    }
                    let deadline = ContinuousClock.now + .seconds(60)
                    while try await Self.pendingNotifications(app) > 0, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    stop.set()
                    var total = 0
                    for deliverer in deliverers { total += try await deliverer.value }

                    let received = receiver.log.entries.withLock { $0 }
                    #expect(received.count == rules * 4, "\(received)")
                    #expect(total == rules * 4)
                    // Exactly once: no (alert, episode, status) twice.
                    let keys = received.map { "\($0.alert) \($0.startsAt) \($0.status)" }
                    #expect(Set(keys).count == keys.count, "duplicates: \(keys)")
                    // In order per alert: each episode's firing arrives before its resolved.
                    for episode in Dictionary(grouping: received, by: { "\($0.alert) \($0.startsAt)" }).values {
                        #expect(episode.map(\.status) == ["firing", "resolved"], "\(episode)")
                    }
                    struct Row: Decodable { var status: String; var attempts: Int; var claimed_by: String? }
                    let rows = try await app.sql.raw("SELECT status, attempts, claimed_by FROM alert_notifications").all(decoding: Row.self)
                    #expect(rows.count == rules * 4)
                    #expect(rows.allSatisfy { $0.status == "delivered" && $0.attempts == 1 && $0.claimed_by == nil }, "\(rows)")
                } catch {
                    try? await other.asyncShutdown()
                    throw error
                }
                try await other.asyncShutdown()
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    /// Creates a threshold rule `name` on metric `edm_test_<name>` with one webhook channel, and
    /// stores a point that makes it fire at the next evaluation.
    static func fireRule(_ app: Application, _ name: String, webhook: String, at date: Date) async throws {
        let metric = "edm_test_\(name.lowercased())"
        _ = try await AlertingTests.createRule(app, [
            "name": .string(name), "metric_name": .string(metric), "condition_type": "threshold",
            "comparison_operator": ">", "threshold_value": 10, "time_window_minutes": 1, "severity": "warning",
            "notification_channels": [["type": "webhook", "url": .string(webhook)]],
        ])
        try await AlertingTests.point(app, metric, 20, at: date)
    }

    @Test("a receiver that hangs delays no other channel: the notifications of one claim go out at once", arguments: TestDatabase.enabled)
    func hangingReceiverDelaysNoOther(_ db: TestDatabase) async throws {
        let hanging = try await SlowReceiver(delay: .seconds(120))
        let live = try await SlowReceiver(delay: .zero)
        let clock = ManualClock()
        do {
            try await withApp(db, clock: clock) { app, _ in
                try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
                // The hanging receiver's notification is the older: one at a time, it would go first.
                try await Self.fireRule(app, "Hanging", webhook: hanging.url, at: clock.now())
                #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
                clock.advance(by: 1)
                try await Self.fireRule(app, "Live", webhook: live.url, at: clock.now())
                #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
                let delivery = Task { try await app.edm.alerting.deliverOnce() }
                struct Row: Decodable { var status: String; var attempts: Int }
                func liveRow() async throws -> Row? {
                    try await app.sql.raw("SELECT status, attempts FROM alert_notifications WHERE channel LIKE \(bind: "%:\(live.port)%")")
                        .first(decoding: Row.self)
                }
                // Bounded wait: the live receiver's notification is recorded delivered while the other hangs.
                for _ in 0..<600 where try await liveRow()?.status != AlertNotificationStatus.delivered.rawValue {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(try await liveRow()?.status == AlertNotificationStatus.delivered.rawValue)
                #expect(try await liveRow()?.attempts == 1)
                #expect(live.log.entries.withLock { $0.count } == 1)
                #expect(hanging.log.entries.withLock { $0.count } == 1)
                delivery.cancel()
                #expect(try await delivery.value == 1)
            }
        } catch {
            try? await hanging.stop()
            try? await live.stop()
            throw error
        }
        try await hanging.stop()
        try await live.stop()
    }

    @Test("a delivery cut short by cancellation (serve's graceful shutdown) gives its notification back: pending, no attempt spent, unclaimed", arguments: TestDatabase.enabled)
    func cancelledDeliveryGivesBack(_ db: TestDatabase) async throws {
        let receiver = try await SlowReceiver(delay: .seconds(120))
        let clock = ManualClock()
        do {
            try await withApp(db, clock: clock) { app, _ in
                try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
                try await Self.fireRule(app, "Hanging", webhook: receiver.url, at: clock.now())
                #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
                let delivery = Task { try await app.edm.alerting.deliverOnce() }
                // Bounded wait until the POST has reached the receiver, which then hangs.
                for _ in 0..<600 where receiver.log.entries.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(50)) }
                #expect(receiver.log.entries.withLock { $0.count } == 1, "the POST never reached the receiver")
                delivery.cancel()
                #expect(try await delivery.value == 0)
                struct Row: Decodable { var status: String; var attempts: Int; var claimed_by: String? }
                let rows = try await app.sql.raw("SELECT status, attempts, claimed_by FROM alert_notifications").all(decoding: Row.self)
                #expect(rows.count == 1)
                #expect(rows.first?.status == AlertNotificationStatus.pending.rawValue)
                #expect(rows.first?.attempts == 0)
                #expect(rows.first?.claimed_by == nil)
            }
        } catch {
            try? await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("a claimed notification is not claimed again until its lease lapses; a lost claim records nothing; a newer one waits for the older", arguments: TestDatabase.enabled)
    func claims(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            try await AlertRule.query(on: app.db).set(\.$isActive, to: false).update()
            _ = try await AlertingTests.createRule(app, [
                "name": "LogOnly", "metric_name": "edm_test_value", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 10, "time_window_minutes": 1, "severity": "info",
            ])
            let t0 = clock.now()
            try await AlertingTests.point(app, "edm_test_value", 20, at: t0)
            #expect(try await app.edm.alerting.evaluateOnce().firing == 1)
            clock.advance(by: 90)
            #expect(try await app.edm.alerting.evaluateOnce().resolved == 1)
            let now = clock.now()
            let store = AlertNotificationStore(sql: app.sql)
            let lease = now.addingTimeInterval(NotificationOutbox.claimLeaseSeconds)

            // A takes the firing; its resolved waits behind it; B gets nothing.
            let a = try await store.claim(claimer: "A", limit: 10, now: now, until: lease)
            #expect(a.map(\.kind) == ["firing"])
            #expect(try await store.claim(claimer: "B", limit: 10, now: now, until: lease).isEmpty)

            // A dies; after the lease B takes the firing over, and A's late outcome is ignored.
            clock.advance(by: NotificationOutbox.claimLeaseSeconds + 1)
            let later = clock.now()
            let b = try await store.claim(claimer: "B", limit: 10, now: later, until: later.addingTimeInterval(NotificationOutbox.claimLeaseSeconds))
            #expect(b.map(\.id) == a.map(\.id))
            #expect(try await store.markDelivered(a[0].id, claimer: "A", now: later) == false)
            #expect(try await store.markFailed(a[0].id, claimer: "A", attempts: 1, error: "x", giveUp: false, nextAttemptAt: later) == false)
            #expect(try await store.markDelivered(b[0].id, claimer: "B", now: later) == true)

            // The firing is delivered: now its resolved can be claimed, once.
            let resolved = try await store.claim(claimer: "A", limit: 10, now: later, until: later.addingTimeInterval(60))
            #expect(resolved.map(\.kind) == ["resolved"])
            #expect(try await store.claim(claimer: "B", limit: 10, now: later, until: later.addingTimeInterval(60)).isEmpty)
            try await store.release(resolved.map(\.id), claimer: "A")
            // Released, the outbox itself delivers it (log channel) and nothing is left.
            #expect(try await app.edm.alerting.deliverOnce() == 1)
            #expect(try await app.edm.alerting.deliverOnce() == 0)
            #expect(try await Self.pendingNotifications(app) == 0)
        }
    }

    @Test("durations that overflow in seconds name their own field, not resolve_threshold", arguments: ["for_minutes", "keep_firing_minutes", "repeat_interval_minutes"])
    func overflowingMinutesNameTheirField(_ field: String) async throws {
        try await withApp(.sqlite) { app, _ in
            let body: [String: JSONValue] = [
                "name": "Big", "metric_name": "edm_test_value", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 1, "time_window_minutes": 1, "severity": "info", .init(field): 1e308,
            ]
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == [field], "\(error.error.details)")
            }
        }
    }

    @Test("a rule body with unknown fields is refused, every problem listed at once; a known rule accepts PATCH of known fields")
    func unknownFieldsAndEveryProblem() async throws {
        try await withApp(.sqlite) { app, _ in
            let body: [String: JSONValue] = [
                "name": "Typo", "metric_nme": "edm_test_value", "condition_type": "threshold", "comparison_operator": ">",
                "threshold_value": 1, "time_window_minutes": 0, "severity": "loud", "treshold": 5,
            ]
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "validation_failed")
                #expect(Set(error.error.details.map(\.field)) == ["metric_nme", "treshold", "metric_name", "time_window_minutes", "severity"], "\(error.error.details)")
                #expect(error.error.details.first { $0.field == "treshold" }?.reason.hasPrefix("is not an alert rule field") == true)
            }
            // A wrongly typed field is listed with the unknown ones (and, since every problem
            // is listed at once, with the required fields the body leaves out).
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(["name": 5, "extra": true] as [String: JSONValue], as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(Set(error.error.details.map(\.field)) == ["extra", "name", "metric_name", "condition_type", "time_window_minutes", "severity"])
            }
            let id = try await AlertingTests.createRule(app, [
                "name": "Fine", "metric_name": "edm_test_value", "condition_type": "absence", "time_window_minutes": 5, "severity": "info",
            ])
            try await app.testing().test(.PATCH, "/api/monitoring/alert-rules/\(id)", beforeRequest: { try $0.content.encode(["is_active": false, "colour": "red"] as [String: JSONValue], as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["colour"])
            }
            #expect(try await AlertRule.find(id, on: app.db)?.isActive == true)
            try await app.testing().test(.PATCH, "/api/monitoring/alert-rules/\(id)", beforeRequest: { try $0.content.encode(["is_active": false] as [String: JSONValue], as: .json) }) { res in
                #expect(res.status == .ok)
            }
            #expect(try await AlertRule.find(id, on: app.db)?.isActive == false)
        }
    }
}
