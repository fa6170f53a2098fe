@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import Testing
import Vapor
import VaporTesting

/// A mailer factory whose mailers answer from a script and record every call, for testing the
/// scheduler's bookkeeping (the real SMTP and HTTP mailers have their own tests against real peers).
final class ScriptedMailers: MailerFactory, Sendable {
    struct Call: Sendable { var service: String; var to: String; var subject: String; var text: String; var at: Date }
    let clock: any WallClock
    let script: @Sendable (_ service: String, _ call: Int) -> MailerOutcome
    let calls = Mutex<[Call]>([])
    /// Sends in progress per service (across every scheduler instance using this factory), to
    /// prove that a service never has more than its `max_connections` in flight.
    let inFlight = Mutex<[String: Int]>([:])
    /// Sends that started while the service already had `max_connections` in flight.
    let overlaps = Mutex(0)
    /// The most sends in flight at once per service.
    let mostInFlight = Mutex<[String: Int]>([:])

    init(clock: any WallClock, script: @escaping @Sendable (_ service: String, _ call: Int) -> MailerOutcome = { _, _ in .sent(messageID: nil) }) {
        self.clock = clock
        self.script = script
    }

    func makeMailer(for service: EmailService) throws -> any Mailer {
        Scripted(factory: self, service: service.name, maxConnections: service.maxConnections)
    }

    var all: [Call] { calls.withLock { $0 } }

    struct Scripted: Mailer {
        let factory: ScriptedMailers
        let service: String
        let maxConnections: Int

        func send(_ email: OutgoingEmail) async -> MailerOutcome {
            let now = factory.inFlight.withLock { m -> Int in m[service, default: 0] += 1; return m[service]! }
            factory.mostInFlight.withLock { $0[service] = max($0[service] ?? 0, now) }
            if now > maxConnections { factory.overlaps.withLock { $0 += 1 } }
            let index = factory.calls.withLock { c -> Int in
                c.append(Call(service: service, to: email.toAddress, subject: email.subject, text: email.textBody, at: factory.clock.now()))
                return c.filter { $0.service == service }.count
            }
            await Task.yield()
            factory.inFlight.withLock { $0[service, default: 1] -= 1 }
            return factory.script(service, index)
        }

        func close() async {}
    }
}

/// Task hooks that remember what they were told.
final class RecordingHooks: TaskMonitorHooks, Sendable {
    enum Event: Sendable, Equatable {
        case created(UUID, Int)
        case firstSent(UUID, Double)
        case progress(UUID, sent: Int, failed: Int, total: Int)
        case completed(UUID, sent: Int, failed: Int)
        case failed(UUID, String)
    }
    let events = Mutex<[Event]>([])
    var all: [Event] { events.withLock { $0 } }

    func taskCreated(taskID: UUID, userID: UUID, totalSubtasks: Int, at: Date) async { events.withLock { $0.append(.created(taskID, totalSubtasks)) } }
    func firstSent(taskID: UUID, userID: UUID, waitSeconds: Double, totalSubtasks: Int, at: Date) async { events.withLock { $0.append(.firstSent(taskID, waitSeconds)) } }
    func progress(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async { events.withLock { $0.append(.progress(taskID, sent: sent, failed: failed, total: total)) } }
    func completed(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async { events.withLock { $0.append(.completed(taskID, sent: sent, failed: failed)) } }
    func failed(taskID: UUID, userID: UUID, reason: String, at: Date) async { events.withLock { $0.append(.failed(taskID, reason)) } }
}

/// Helpers to set up users, services and tasks directly (the API has its own tests).
enum Fixtures {
    static func user(_ app: Application, name: String = "Ann") async throws -> UUID {
        let user = User(name: name, email: "\(name.lowercased())@example.com")
        user.createdAt = app.edm.clock.now()
        try await user.create(on: app.db)
        return try user.requireID()
    }

    @discardableResult
    static func service(_ app: Application, name: String, provider: EmailService.Provider = .dryRun, config: ProviderConfig = .init(), quota: Int = 1000, interval: Double = 0, resetTime: String = "00:00", timezone: String = "UTC", maxConnections: Int = 4, rateLimit: Double = 0) async throws -> UUID {
        let service = EmailService(name: name, provider: provider, providerConfig: config, senderAddress: "news@example.com", senderName: "Example News", dailyQuota: quota, quotaResetTime: resetTime, quotaTimezone: timezone, sendingIntervalSeconds: interval, maxConnections: maxConnections, rateLimitPerSecond: rateLimit)
        service.createdAt = app.edm.clock.now()
        service.updatedAt = service.createdAt
        try await service.create(on: app.db)
        return try service.requireID()
    }

    static func task(_ app: Application, user: UUID, recipients: Int, name: String = "campaign", scheduledAt: Date? = nil, prefix: String = "r") async throws -> UUID {
        let list = (0..<recipients).map { RecipientInput(email: "\(prefix)\($0)@example.com", name: "R \($0)") }
        let created = try await TaskService.create(
            NewTask(userID: user, name: name, subject: "Hello {{name}}", textBody: "Hi {{name}} <{{email}}>", scheduledAt: scheduledAt, recipients: .list(list)),
            on: app.db, clock: app.edm.clock, hooks: app.edm.taskHooks
        )
        return try created.task.requireID()
    }

    /// Runs scheduler cycles until one dispatches nothing (at most `limit` cycles).
    @discardableResult
    static func drain(_ app: Application, limit: Int = 10_000) async throws -> SchedulerCycleReport {
        var total = SchedulerCycleReport()
        for _ in 0..<limit {
            let report = try await app.edm.scheduler.runOnce()
            total.sent += report.sent
            total.failedAttempts += report.failedAttempts
            total.interrupted += report.interrupted
            total.requeued += report.requeued
            total.quotaResets += report.quotaResets
            total.thawed += report.thawed
            if report.dispatched == 0 { break }
        }
        return total
    }
}

extension SchedulerConfiguration {
    /// The test instance's settings with a pipeline depth of 1: a batch is at most
    /// `max_connections` messages, so a one-connection service sends one message per cycle.
    /// Settings for a test driven cycle by cycle with a `ManualClock`: leases on the scheduler's
    /// clock, and one batch per service a cycle (a cycle is the test's unit of time).
    static func manualClock(instanceID: String) -> SchedulerConfiguration {
        var config = SchedulerConfiguration(instanceID: instanceID)
        config.leaseClock = .scheduler
        config.maxBatchesPerDispatch = 1
        return config
    }

    /// `withApp`'s default: ``manualClock(instanceID:)`` as "test-instance".
    static var testInstance: SchedulerConfiguration { manualClock(instanceID: "test-instance") }

    static var oneMessagePerConnection: SchedulerConfiguration {
        var config = testInstance
        config.pipelineDepth = 1
        return config
    }
}
