@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Task monitoring: lifecycle rows, throttled progress, stuck detection, the task and queue APIs.
@Suite("Task monitoring")
struct TaskMonitoringTests {
    @Test("through a real SMTP peer: wait time, throttled progress, completed throughput", arguments: TestDatabase.enabled)
    func lifecycleRows(_ db: TestDatabase) async throws {
        let server = try SMTPTestServer()
        let clock = ManualClock()
        try await withApp(db, clock: clock, scheduler: .oneMessagePerConnection) { app, _ in
            let user = try await Fixtures.user(app)
            // One connection, pipeline depth 1: one email per cycle, 2 s apart.
            try await Fixtures.service(app, name: "smtp", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: server.port)), maxConnections: 1)
            let taskID = try await Fixtures.task(app, user: user, recipients: 100)
            clock.advance(by: 75)  // eligible at creation; the first email goes out 75 s later
            for _ in 0..<100 {
                _ = try await app.edm.scheduler.runOnce()
                clock.advance(by: 2)
            }
            #expect(try server.messages().count == 100)
            let rows = try await TaskProcessingMetric.query(on: app.db).filter(\.$task.$id == taskID).sort(\.$timestamp).all()
            let types = rows.map(\.metricType)
            #expect(types.first == .created)
            #expect(types.last == .completed)
            let first = try #require(rows.first { $0.metricType == .firstSent })
            #expect(first.waitTimeSeconds == 75)
            // 100 sends 2 s apart (198 s): every 5 % (5 emails) or every 30 s, whichever first.
            let progress = rows.filter { $0.metricType == .progress }
            #expect(progress.count >= 10 && progress.count <= 20, "\(progress.count) progress rows")
            for (a, b) in zip(progress, progress.dropFirst()) {
                #expect(b.timestamp.timeIntervalSince(a.timestamp) >= 30 || b.subtasksSent - a.subtasksSent >= 5)
            }
            let completed = try #require(rows.last)
            let duration = try #require(completed.metadata?["duration_seconds"]?.doubleValue)
            #expect(duration == 198)
            #expect(completed.subtasksSent == 100)
            let throughput = try #require(completed.throughputPerHour)
            #expect(abs(throughput - 100 / duration * 3600) < 1e-9)

            try await app.testing().test(.GET, "/api/monitoring/task-metrics/\(taskID)") { res in
                #expect(res.status == .ok)
                struct D: Decodable { struct P: Decodable { var sent: Int; var percent: Double }; struct S: Decodable { var is_stuck: Bool }; var status: String; var progress: P; var wait_time_seconds: Double?; var stuck: S; var timeline: [TaskMonitoringController.MetricDTO] }
                let detail = try res.content.decode(D.self)
                #expect(detail.status == "completed")
                #expect(detail.progress.sent == 100)
                #expect(detail.progress.percent == 100)
                #expect(detail.wait_time_seconds == 75)
                #expect(!detail.stuck.is_stuck)
                #expect(detail.timeline.count == rows.count)
            }
        }
    }

    @Test("a task blocked by a frozen only-service is stuck with no_service_available; it clears when it moves", arguments: TestDatabase.enabled)
    func stuckNoService(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock) { _, call in call <= 5 ? .transientFailure("421 down") : .sent(messageID: nil) }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "only", maxConnections: 1)
            let taskID = try await Fixtures.task(app, user: user, recipients: 10)
            // Five failures freeze the only service for 15 minutes.
            for _ in 0..<5 {
                _ = try await app.edm.scheduler.runOnce()
                clock.advance(by: 31)
                _ = try await app.edm.scheduler.runOnce()
            }
            #expect(try await EmailService.query(on: app.db).first()?.isFrozen == true)
            // Not stuck before the threshold (10 min since eligibility)…
            clock.set(try #require(try await TaskRecord.find(taskID, on: app.db)?.createdAt).addingTimeInterval(599))
            _ = try await app.edm.scheduler.runOnce()
            #expect(try await app.edm.taskMonitor.runOnce().isEmpty)
            // …stuck at the first detection after it.
            clock.advance(by: 30)
            _ = try await app.edm.scheduler.runOnce()
            let stuck = try await app.edm.taskMonitor.runOnce()
            #expect(stuck.map(\.taskID) == [taskID])
            #expect(stuck.first?.reason == .noServiceAvailable)
            let points = try await SystemPerformanceMetric.query(on: app.db).filter(\.$metricName == "edm_task_stuck_duration_seconds").all()
            #expect(points.count == 1)
            #expect(points.first?.tags["reason"] == "no_service_available")
            #expect((points.first?.metricValue ?? 0) >= 600)

            // The freeze ends, the task moves, the stuck flag clears.
            clock.advance(by: 900)
            _ = try await app.edm.scheduler.runOnce()
            #expect(try await app.edm.taskMonitor.runOnce().isEmpty)
            #expect(app.edm.taskMonitor.stuckTasks.isEmpty)
        }
    }

    @Test("quota_exhausted carries the next reset; a task paced by a 60-second interval is never stuck", arguments: TestDatabase.enabled)
    func stuckQuotaAndPaced(_ db: TestDatabase) async throws {
        let clock = ManualClock()  // 2026-03-09T10:00:00Z
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "small", quota: 2, resetTime: "08:00", timezone: "Asia/Shanghai")
            let quotaTask = try await Fixtures.task(app, user: user, recipients: 5, name: "quota")
            try await Fixtures.drain(app)
            clock.advance(by: 700)
            _ = try await app.edm.scheduler.runOnce()
            let stuck = try await app.edm.taskMonitor.runOnce()
            #expect(stuck.map(\.taskID) == [quotaTask])
            #expect(stuck.first?.reason == .quotaExhausted)
            // 08:00 in Shanghai is 00:00Z: the next reset after 2026-03-09T10:11:40Z.
            #expect(stuck.first?.nextReset == APIJSON.parse("2026-03-10T00:00:00Z"))
        }
        let pacedClock = ManualClock()
        let pacedMailers = ScriptedMailers(clock: pacedClock)
        try await withApp(db, clock: pacedClock, mailers: pacedMailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "slow", interval: 60)
            _ = try await Fixtures.task(app, user: user, recipients: 30)
            for _ in 0..<(30 * 4) {
                _ = try await app.edm.scheduler.runOnce()
                #expect(try await app.edm.taskMonitor.runOnce().isEmpty)
                pacedClock.advance(by: 15)
            }
            #expect(pacedMailers.all.count == 30)
        }
    }

    @Test("a task with work while no scheduler runs is stuck with scheduler_not_running")
    func schedulerNotRunning() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "idle")
            _ = try await Fixtures.task(app, user: user, recipients: 1)
            clock.advance(by: 601)
            let stuck = try await app.edm.taskMonitor.runOnce()
            #expect(stuck.first?.reason == .schedulerNotRunning)
        }
    }

    @Test("task-stats over a fixed set of rows gives the hand-computed answers", arguments: TestDatabase.enabled)
    func stats(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 1)
            let t0 = try #require(APIJSON.parse("2026-03-09T00:00:00Z"))
            // Wait times 10, 20, 30, 40, 100: avg 40, p50 30, p95 = 40 + 0.8 × 60 = 88 (rank 0.95 × 4 = 3.8), max 100.
            for (i, wait) in [30.0, 10, 100, 40, 20].enumerated() {
                try await TaskProcessingMetric(taskID: task, userID: user, metricType: .firstSent, timestamp: t0.addingTimeInterval(Double(i) * 60), waitTimeSeconds: wait).create(on: app.db)
            }
            for (i, throughput) in [1200.0, 1800].enumerated() {
                try await TaskProcessingMetric(taskID: task, userID: user, metricType: .completed, timestamp: t0.addingTimeInterval(600 + Double(i)), throughputPerHour: throughput).create(on: app.db)
            }
            try await TaskProcessingMetric(taskID: task, userID: user, metricType: .failed, timestamp: t0.addingTimeInterval(700)).create(on: app.db)
            // Outside the range: ignored.
            try await TaskProcessingMetric(taskID: task, userID: user, metricType: .firstSent, timestamp: t0.addingTimeInterval(-60), waitTimeSeconds: 9999).create(on: app.db)

            try await app.testing().test(.GET, "/api/monitoring/task-stats?from=2026-03-09T00:00:00Z&to=2026-03-09T02:00:00%2B01:00") { res in
                #expect(res.status == .ok, "\(res.body.string)")
                struct S: Decodable {
                    struct W: Decodable { var count: Int; var avg: Double?; var p50: Double?; var p95: Double?; var max: Double? }
                    var counts_by_type: [String: Int]; var wait_time_seconds: W; var average_throughput_per_hour: Double?; var tasks_completed: Int; var tasks_failed: Int
                }
                let s = try res.content.decode(S.self)
                #expect(s.counts_by_type["first_sent"] == 5)
                #expect(s.counts_by_type["completed"] == 2)
                #expect(s.wait_time_seconds.count == 5)
                #expect(s.wait_time_seconds.avg == 40)
                #expect(s.wait_time_seconds.p50 == 30)
                #expect(abs((s.wait_time_seconds.p95 ?? 0) - 88) < 1e-9)
                #expect(s.wait_time_seconds.max == 100)
                #expect(s.average_throughput_per_hour == 1500)
                #expect(s.tasks_completed == 2)
                #expect(s.tasks_failed == 1)
            }
        }
    }

    @Test("queue-status shows subtasks, services by state with quota and reset, reservations and throughput")
    func queueStatus() async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(.sqlite, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "a", quota: 3)
            try await Fixtures.service(app, name: "b", interval: 600)
            _ = try await Fixtures.task(app, user: user, recipients: 10)
            try await Fixtures.drain(app)
            try await app.testing().test(.GET, "/api/monitoring/queue-status") { res in
                #expect(res.status == .ok)
                struct Q: Decodable {
                    struct S: Decodable { var name: String; var state: String; var remaining_quota: Int; var next_reset: Date? }
                    var subtasks: [String: Int]; var active_tasks: Int; var services_by_state: [String: Int]; var services: [S]; var sent_last_5_minutes: Int; var throughput_per_hour_5m: Double
                }
                let q = try res.content.decode(Q.self)
                #expect(q.subtasks["sent"] == 4)
                #expect(q.subtasks["pending"] == 6)
                #expect(q.active_tasks == 1)
                #expect(q.services.map(\.state) == ["quota_exhausted", "paced"])
                #expect(q.services_by_state["quota_exhausted"] == 1)
                #expect(q.services.first?.remaining_quota == 0)
                #expect(q.services.first?.next_reset == APIJSON.parse("2026-03-10T00:00:00Z"))
                #expect(q.sent_last_5_minutes == 4)
                #expect(q.throughput_per_hour_5m == 48)
            }
        }
    }

    @Test("task events from an external scheduler: idempotent by id, one bad event refuses the batch")
    func taskEvents() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 1)
            func event(_ id: String, type: String = "progress", wait: JSONValue = .null) -> JSONValue {
                .object(["event_id": .string(id), "task_id": .string(task.uuidString), "user_id": .string(user.uuidString), "type": .string(type),
                         "timestamp": .string("2026-03-09T10:00:00Z"), "subtasks_sent": .number(3), "total_subtasks": .number(10), "wait_time_seconds": wait])
            }
            let before = try await TaskProcessingMetric.query(on: app.db).count()
            let good: JSONValue = .object(["events": .array([event("e1"), event("e2", type: "first_sent", wait: .number(12))])])
            for expected in [(2, 0), (0, 2)] {
                try await app.testing().test(.POST, "/api/monitoring/task-events", beforeRequest: { try $0.content.encode(good, as: .json) }) { res in
                    #expect(res.status == .ok)
                    struct R: Decodable { var accepted: Int; var duplicates: Int }
                    let r = try res.content.decode(R.self)
                    #expect(r.accepted == expected.0)
                    #expect(r.duplicates == expected.1)
                }
            }
            let bad: JSONValue = .object(["events": .array([event("e3"), event("e4", type: "exploded"), event("e5", wait: .number(-1))])])
            try await app.testing().test(.POST, "/api/monitoring/task-events", beforeRequest: { try $0.content.encode(bad, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["events[1].type", "events[2].wait_time_seconds"])
            }
            #expect(try await TaskProcessingMetric.query(on: app.db).count() == before + 2)
        }
    }

    @Test("bad input on every task monitoring endpoint is a 4xx JSON error")
    func badInput() async throws {
        try await withApp(.sqlite) { app, _ in
            let cases: [(HTTPMethod, String, HTTPStatus)] = [
                (.GET, "/api/monitoring/task-metrics/\(UUID())", .notFound),
                (.GET, "/api/monitoring/task-metrics/nope", .notFound),
                (.GET, "/api/monitoring/task-metrics?from=yesterday", .badRequest),
                (.GET, "/api/monitoring/task-metrics?per_page=0", .badRequest),
                (.GET, "/api/monitoring/task-metrics?per_page=10000", .badRequest),
                (.GET, "/api/monitoring/task-metrics?metric_type=started", .badRequest),
                (.GET, "/api/monitoring/task-metrics?task_id=42", .badRequest),
                (.GET, "/api/monitoring/task-stats?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", .badRequest),
                (.GET, "/api/monitoring/task-stats?to=13/13/2026", .badRequest),
                (.POST, "/api/monitoring/task-events", .badRequest),
            ]
            for (method, path, status) in cases {
                try await app.testing().test(method, path, beforeRequest: { req in
                    if method == .POST { req.headers.contentType = .json; req.body = .init(string: #"{"events":"#) }
                }) { res in
                    #expect(res.status == status, "\(method) \(path): \(res.body.string)")
                    let error = try? res.content.decode(ErrorBody.self)
                    #expect(error != nil, "\(path): not the JSON error shape")
                }
            }
        }
    }
}

@Suite("Task throughput right after the start")
struct EarlyThroughputTests {
    @Test("a task that started 20 s ago is measured over 20 s, not the 5-minute window (ETA not 15× too long)")
    func earlyWindow() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "fast")
            let taskID = try await Fixtures.task(app, user: user, recipients: 40)
            try await Fixtures.drain(app)
            clock.advance(by: 20)
            let (perHour, window) = try await app.edm.taskMonitor.currentThroughputAndWindow(taskID: taskID, at: clock.now())
            #expect(window == 20)
            #expect(perHour == 7200)  // 40 emails in 20 s
            // Later than the window: the whole window again.
            clock.advance(by: 600)
            #expect(try await app.edm.taskMonitor.currentThroughputAndWindow(taskID: taskID, at: clock.now()).windowSeconds == 300)
        }
    }
}
