@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import Testing
import Vapor

/// Runs `test` in an app on `db` whose mailers answer `first` to the first send and `then` to
/// every later one, with a user already created.
private func withOutcomes(_ db: TestDatabase, first: MailerOutcome, then: MailerOutcome = .sent(messageID: "ok"),
                          _ test: (Application, ManualClock, ScriptedMailers, UUID) async throws -> Void) async throws {
    let clock = ManualClock()
    let mailers = ScriptedMailers(clock: clock) { _, call in call == 1 ? first : then }
    try await withApp(db, clock: clock, mailers: mailers) { app, _ in
        try await test(app, clock, mailers, try await Fixtures.user(app))
    }
}

/// How the scheduler applies the outcome classes of reference case C09, on both databases.
@Suite("Scheduler: C09 outcome classes")
struct MailerOutcomeSchedulerTests {
    @Test("a service-configuration failure pauses the service and returns the subtask without spending an attempt",
          arguments: TestDatabase.enabled)
    func configuration(_ db: TestDatabase) async throws {
        try await withOutcomes(db, first: .serviceConfigurationFailure("535 5.7.8 Authentication credentials invalid")) { app, clock, mailers, user in
            let serviceID = try await Fixtures.service(app, name: "bad-login")
            let taskID = try await Fixtures.task(app, user: user, recipients: 2)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 1, "nothing more is sent through a paused service")
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.isFrozen)
            #expect(service.frozenUntil == clock.now().addingTimeInterval(900))
            let subs = try await SubTaskRecord.query(on: app.db).all()
            #expect(subs.allSatisfy { $0.status == .pending && $0.attempts == 0 })
            #expect(subs.contains { $0.lastError?.contains("535") == true })
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.failedCount == 0, "the recipient is never failed for the service's settings")

            _ = try await app.edm.emailServices.unfreeze(serviceID, on: app.db)
            try await Fixtures.drain(app)
            #expect(try await SubTaskRecord.query(on: app.db).all().allSatisfy { $0.status == .sent && $0.attempts == 1 })
        }
    }

    @Test("a session failure (421) requeues without spending an attempt and counts against the service",
          arguments: TestDatabase.enabled)
    func session(_ db: TestDatabase) async throws {
        try await withOutcomes(db, first: .sessionFailure("421 4.7.0 Try again later, closing connection.")) { app, clock, mailers, user in
            let serviceID = try await Fixtures.service(app, name: "closing", interval: 30)
            _ = try await Fixtures.task(app, user: user, recipients: 1)
            _ = try await app.edm.scheduler.runOnce()
            var sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .pending)
            #expect(sub.attempts == 0)
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.consecutiveFailures == 1)
            #expect(service.nextAvailableAt == clock.now().addingTimeInterval(30), "reconnect after the service's pause")
            clock.advance(by: 30)
            try await Fixtures.drain(app)
            sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .sent)
            #expect(sub.attempts == 1)
            let task = try #require(try await TaskRecord.query(on: app.db).first())
            #expect(task.failedCount == 0 && task.sentCount == 1)
        }
    }

    @Test("a retry hint sets the next attempt no sooner than it says", arguments: TestDatabase.enabled)
    func retryHint(_ db: TestDatabase) async throws {
        try await withOutcomes(db, first: .retryLater("451 4.7.1 Greylisted, retry in 300 seconds", afterSeconds: 300)) { app, clock, mailers, user in
            try await Fixtures.service(app, name: "grey")
            _ = try await Fixtures.task(app, user: user, recipients: 1)
            let start = clock.now()
            try await Fixtures.drain(app)
            let sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .pending)
            #expect(sub.nextAttemptAt == start.addingTimeInterval(300))
            clock.advance(by: 299)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 1)
            clock.advance(by: 1)
            try await Fixtures.drain(app)
            #expect(mailers.all.count == 2)
        }
    }

    @Test("a hard bounce fails the recipient at once; a policy refusal too, and both keep their reasons",
          arguments: TestDatabase.enabled)
    func permanent(_ db: TestDatabase) async throws {
        try await withOutcomes(db, first: .hardBounce("550 5.1.1 User unknown"), then: .permanentFailure("550 5.7.1 bulk mail refused")) { app, clock, mailers, user in
            try await Fixtures.service(app, name: "strict")
            let taskID = try await Fixtures.task(app, user: user, recipients: 2)
            try await Fixtures.drain(app)
            let subs = try await SubTaskRecord.query(on: app.db).all()
            #expect(subs.allSatisfy { $0.status == .failed && $0.attempts == 1 })
            #expect(Set(subs.compactMap(\.lastError)) == ["550 5.1.1 User unknown", "550 5.7.1 bulk mail refused"])
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.failedCount == 2)
        }
    }
}
