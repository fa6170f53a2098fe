@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Synchronization
import Testing
import Vapor

/// The dispatch loop's bookkeeping, with an injected clock and scripted mailers, on both databases.
@Suite("Scheduler")
struct SchedulerTests {
    @Test("a task is sent to every recipient once, completes, and reports its wait time", arguments: TestDatabase.enabled)
    func sendsEverything(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        let hooks = RecordingHooks()
        try await withApp(db, clock: clock, mailers: mailers, hooks: hooks) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "a")
            try await Fixtures.service(app, name: "b")
            let taskID = try await Fixtures.task(app, user: user, recipients: 7)
            clock.advance(by: 42)
            let report = try await Fixtures.drain(app)
            #expect(report.sent == 7)
            #expect(Set(mailers.all.map(\.to)).count == 7)
            #expect(mailers.all.count == 7)
            #expect(mailers.all.first?.subject.hasPrefix("Hello R ") == true)
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.status == .completed)
            #expect(task.sentCount == 7)
            #expect(task.failedCount == 0)
            #expect(task.startedAt == clock.now())
            #expect(hooks.all.contains(.firstSent(taskID, 42)))
            #expect(hooks.all.contains(.completed(taskID, sent: 7, failed: 0)))
            #expect(hooks.all.first == .created(taskID, 7))
            #expect(mailers.overlaps.withLock { $0 } == 0)
            let services = try await EmailService.query(on: app.db).all()
            #expect(services.map(\.usedQuota).reduce(0, +) == 7)
        }
    }

    @Test("no two sends through one service are closer than its interval", arguments: TestDatabase.enabled)
    func interval(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "paced", interval: 60)
            _ = try await Fixtures.task(app, user: user, recipients: 4)
            for _ in 0..<40 {
                _ = try await app.edm.scheduler.runOnce()
                clock.advance(by: 15)
            }
            let times = mailers.all.map(\.at)
            #expect(times.count == 4)
            for (a, b) in zip(times, times.dropFirst()) { #expect(b.timeIntervalSince(a) >= 60) }
        }
    }

    @Test("the daily quota holds, and resets at local midnight across a DST change", arguments: TestDatabase.enabled)
    func quotaAndDST(_ db: TestDatabase) async throws {
        // 2026-03-08 is a 23-hour day in New York: midnight EST is 05:00Z, the next midnight (EDT) 04:00Z.
        let clock = ManualClock(start: try #require(APIJSON.parse("2026-03-08T06:00:00Z")))
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "ny", quota: 3, timezone: "America/New_York")
            _ = try await Fixtures.task(app, user: user, recipients: 10)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 3)
            clock.set(try #require(APIJSON.parse("2026-03-09T03:59:59Z")))  // still 03-08 in New York
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 3)
            clock.set(try #require(APIJSON.parse("2026-03-09T04:00:00Z")))  // local midnight, EDT
            let report = try await Fixtures.drain(app)
            #expect(report.quotaResets == 1)
            #expect(mailers.all.count == 6)
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.quotaDay == "2026-03-09")
            #expect(service.usedQuota == 3)
        }
    }

    @Test("a temporary failure is retried after backoff, a permanent one fails at once", arguments: TestDatabase.enabled)
    func failures(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        // Service "flaky": first call 451-like, then success. Service "rejecting": always 550-like.
        let mailers = ScriptedMailers(clock: clock) { service, call in
            switch service {
            case "flaky": return call == 1 ? .transientFailure("451 try later") : .sent(messageID: "ok")
            default: return .permanentFailure("550 no such user")
            }
        }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let flaky = try await Fixtures.service(app, name: "flaky")
            _ = try await Fixtures.task(app, user: user, recipients: 1, name: "one")
            try await Fixtures.drain(app)
            var sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .pending)
            #expect(sub.attempts == 1)
            #expect(sub.lastError == "451 try later")
            #expect(sub.nextAttemptAt == clock.now().addingTimeInterval(30))
            clock.advance(by: 29)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 1)
            clock.advance(by: 1)
            try await Fixtures.drain(app)
            sub = try #require(try await SubTaskRecord.find(sub.requireID(), on: app.db))
            #expect(sub.status == .sent)
            #expect(sub.attempts == 2)
            #expect(sub.providerMessageID == "ok")

            try await EmailService.query(on: app.db).filter(\.$id == flaky).set(\.$isEnabled, to: false).update()
            try await Fixtures.service(app, name: "rejecting")
            let second = try await Fixtures.task(app, user: user, recipients: 1, name: "two", prefix: "x")
            try await Fixtures.drain(app)
            let failed = try #require(try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == second).first())
            #expect(failed.status == .failed)
            #expect(failed.attempts == 1)
            #expect(failed.lastError == "550 no such user")
            let task = try #require(try await TaskRecord.find(second, on: app.db))
            #expect(task.status == .failed)
            #expect(task.failedCount == 1)
        }
    }

    @Test("a temporary failure gives up after the last attempt", arguments: [TestDatabase.sqlite])
    func maxAttempts(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock) { _, _ in .transientFailure("421 busy") }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "busy")
            _ = try await Fixtures.task(app, user: user, recipients: 1)
            for _ in 0..<5 {
                try await Fixtures.drain(app)
                clock.advance(by: 3600)
            }
            #expect(mailers.all.count == 3)
            let sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .failed)
            #expect(sub.attempts == 3)
        }
    }

    @Test("a service freezes after 5 consecutive failures and thaws after 15 minutes", arguments: TestDatabase.enabled)
    func freezeAndThaw(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock) { _, call in call <= 5 ? .permanentFailure("550 rejected") : .sent(messageID: nil) }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            // One connection: the freeze takes effect before the next send (with more, the sends
            // already in flight finish first).
            let serviceID = try await Fixtures.service(app, name: "bad", maxConnections: 1)
            _ = try await Fixtures.task(app, user: user, recipients: 10)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 5)
            var service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.isFrozen)
            #expect(service.frozenUntil == clock.now().addingTimeInterval(900))
            #expect(ServiceState.of(service, now: clock.now()) == .frozen)
            clock.advance(by: 899)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 5)
            clock.advance(by: 1)
            let report = try await Fixtures.drain(app)
            #expect(report.thawed == 1)
            #expect(mailers.all.count == 10)
            service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(!service.isFrozen)
            #expect(service.consecutiveFailures == 0)
        }
    }

    @Test("a subtask left sending by a dead instance is failed as interrupted, never resent", arguments: TestDatabase.enabled)
    func atMostOnce(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "a")
            let taskID = try await Fixtures.task(app, user: user, recipients: 3)
            // Another instance claimed the first recipient and its reservation, then died.
            let dead = try #require(try await SubTaskRecord.query(on: app.db).sort(\.$sequence).first())
            let lease = clock.now().addingTimeInterval(30)
            try await app.sql.raw("UPDATE sub_tasks SET status = 'sending', claimed_by = 'dead', service_id = \(bind: serviceID), attempts = 1, lease_expires_at = \(bind: lease), handed_over_at = \(bind: clock.now()) WHERE id = \(bind: dead.requireID())").run()
            try await app.sql.raw("INSERT INTO service_reservations (service_id, reserved_by, subtask_id, reserved_at, expires_at) VALUES (\(bind: serviceID), 'dead', \(bind: dead.requireID()), \(bind: clock.now()), \(bind: lease))").run()

            // While its lease holds, the service is reserved elsewhere and the claim is left alone.
            let blocked = try await app.edm.scheduler.runOnce()
            #expect(blocked.reservationConflicts == 1)
            #expect(mailers.all.isEmpty)

            clock.advance(by: 31)
            let report = try await Fixtures.drain(app)
            #expect(report.interrupted == 1)
            #expect(report.sent == 2)
            #expect(!mailers.all.map(\.to).contains(dead.recipientEmail))
            let after = try #require(try await SubTaskRecord.find(dead.requireID(), on: app.db))
            #expect(after.status == .failed)
            #expect(after.lastError == "interrupted")
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.sentCount == 2)
            #expect(task.failedCount == 1)
            #expect(task.status == .completed)
        }
    }

    /// Mailers that take the `sub_tasks` table out of reach during their first send, as a
    /// database outage between the send and its bookkeeping would.
    final class OutageMailers: MailerFactory, @unchecked Sendable {
        var app: Application?
        let sent = Mutex<[String]>([])

        func makeMailer(for service: EmailService) throws -> any Mailer { Outage(factory: self) }

        struct Outage: Mailer {
            let factory: OutageMailers
            func send(_ email: OutgoingEmail) async -> MailerOutcome {
                let first = factory.sent.withLock { s in s.append(email.toAddress); return s.count == 1 }
                if first, let app = factory.app { try? await app.sql.raw("ALTER TABLE sub_tasks RENAME TO sub_tasks_unreachable").run() }
                return .sent(messageID: nil)
            }
            func close() async {}
        }
    }

    @Test("a sent message whose outcome the database could not take is recorded sent when it returns, not failed as interrupted",
          arguments: TestDatabase.enabled)
    func outcomeKeptThroughOutage(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = OutageMailers()
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            mailers.app = app
            let user = try await Fixtures.user(app)
            // One connection: one send per cycle, so exactly one meets the outage.
            try await Fixtures.service(app, name: "a", maxConnections: 1)
            let taskID = try await Fixtures.task(app, user: user, recipients: 3)
            await #expect(throws: (any Error).self) { try await app.edm.scheduler.runOnce() }
            #expect(mailers.sent.withLock { $0.count } == 1)

            try await app.sql.raw("ALTER TABLE sub_tasks_unreachable RENAME TO sub_tasks").run()
            clock.advance(by: 31)  // the claim's lease ran out during the outage
            let report = try await Fixtures.drain(app)
            #expect(report.interrupted == 0)
            #expect(report.sent == 2)
            #expect(mailers.sent.withLock { $0 }.sorted() == ["r0@example.com", "r1@example.com", "r2@example.com"])
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.sentCount == 3)
            #expect(task.failedCount == 0)
            #expect(task.status == .completed)
            mailers.app = nil
        }
    }

    @Test("users take turns (round-robin); FIFO by task within a user; paused and future tasks wait", arguments: TestDatabase.enabled)
    func fairnessAndSchedule(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers, scheduler: .oneMessagePerConnection) { app, _ in
            let ann = try await Fixtures.user(app, name: "Ann")
            let bob = try await Fixtures.user(app, name: "Bob")
            // One connection, pipeline depth 1: one send per cycle, in claim order (a batch's
            // sends start together; batchTakesTurns checks the order within a batch).
            try await Fixtures.service(app, name: "only", maxConnections: 1)
            _ = try await Fixtures.task(app, user: ann, recipients: 3, name: "ann-1", prefix: "ann")
            clock.advance(by: 1)
            _ = try await Fixtures.task(app, user: ann, recipients: 1, name: "ann-2", prefix: "ann2-")
            clock.advance(by: 1)
            _ = try await Fixtures.task(app, user: bob, recipients: 2, name: "bob-1", prefix: "bob")
            let later = try await Fixtures.task(app, user: bob, recipients: 1, name: "bob-later", scheduledAt: clock.now().addingTimeInterval(3600), prefix: "later")
            let paused = try await Fixtures.task(app, user: bob, recipients: 1, name: "bob-paused", prefix: "paused")
            _ = try await TaskService.control(.pause, taskID: paused, on: app.db, clock: clock)

            for _ in 0..<6 {
                _ = try await app.edm.scheduler.runOnce()
                clock.advance(by: 1)
            }
            #expect(mailers.all.map(\.to) == [
                "ann0@example.com", "bob0@example.com", "ann1@example.com", "bob1@example.com", "ann2@example.com", "ann2-0@example.com",
            ])
            #expect(try await TaskRecord.find(later, on: app.db)?.status == .queued)
            clock.advance(by: 3600)
            _ = try await TaskService.control(.resume, taskID: paused, on: app.db, clock: clock)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 8)
        }
    }

    @Test("two instances on one PostgreSQL send a 2,000-recipient task: no service shared, no recipient twice",
          .enabled(if: PostgresTestServer.isEnabled, "PostgreSQL binaries not found"))
    func twoInstances() async throws {
        let clock = SystemClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(.postgres, clock: clock, mailers: mailers, scheduler: .init(instanceID: "instance-a")) { app, settings in
            let user = try await Fixtures.user(app)
            for name in ["s1", "s2", "s3", "s4"] { try await Fixtures.service(app, name: name, quota: 10_000) }
            let taskID = try await Fixtures.task(app, user: user, recipients: 2_000)
            // A second instance: its own application (connection pool) on the same database.
            let other = try await Application.make(.testing)
            var config = SchedulerConfiguration(instanceID: "instance-b")
            config.idleDelay = .milliseconds(20)
            try await configure(other, settings: settings, dependencies: .init(clock: clock, scheduler: config, mailers: mailers))
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for instance in [app, other] {
                        group.addTask {
                            for _ in 0..<3_000 {
                                let report = try await instance.edm.scheduler.runOnce()
                                if report.dispatched == 0 && report.reservationConflicts == 0 {
                                    let remaining = try await SubTaskRecord.query(on: instance.db).filter(\.$status != .sent).count()
                                    if remaining == 0 { return }
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            } catch {
                try? await other.asyncShutdown()
                throw error
            }
            try await other.asyncShutdown()
            let recipients = mailers.all.map(\.to)
            #expect(recipients.count == 2_000)
            #expect(Set(recipients).count == 2_000)
            // Never more than a service's max_connections (4) in flight, both instances together.
            #expect(mailers.overlaps.withLock { $0 } == 0)
            #expect(mailers.mostInFlight.withLock { $0.values.allSatisfy { $0 <= 4 } })
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.sentCount == 2_000)
            #expect(task.status == .completed)
            let byInstance = try await app.sql.raw("SELECT claimed_by, count(*) AS n FROM sub_tasks GROUP BY claimed_by").all(decoding: ClaimRow.self)
            #expect(byInstance.count == 2, "both instances should have sent: \(byInstance)")
        }
    }

    struct ClaimRow: Decodable { var claimed_by: String?; var n: Int }
}
