@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Faults found by a tester trying to break the sending and monitoring API; each keeps its right value.
@Suite("Hardening")
struct HardeningTests {
    static let smtp: [String: JSONValue] = [
        "name": "relay", "provider": "smtp", "sender_address": "news@example.com", "daily_quota": 100,
        "smtp": ["host": "smtp.example.com", "port": 587, "security": "starttls"],
    ]

    struct Bad: Sendable, CustomTestStringConvertible {
        var body: [String: JSONValue]
        var field: String
        var testDescription: String { field }
    }

    static let bad: [Bad] = [
        Bad(body: smtp.merging(["daily_quota": 2_000_000_000]) { _, n in n }, field: "daily_quota"),
        Bad(body: smtp.merging(["smtp": ["host": "smtp.example.com", "port": 25, "security": "none", "username": "bob", "password": "pw"]]) { _, n in n }, field: "smtp.security"),
        Bad(body: smtp.merging(["smtp": ["host": "smtp.example.com", "port": 25, "helo_name": "x\r\nRSET"]]) { _, n in n }, field: "smtp.helo_name"),
        Bad(body: smtp.merging(["sender_name": "News\r\nBcc: evil@example.com"]) { _, n in n }, field: "sender_name"),
        Bad(body: ["name": "api", "provider": "http", "sender_address": "news@example.com", "daily_quota": 10,
                   "http": ["endpoint_url": "https://api.example.com/send", "headers": ["X-Key": "v\r\nInjected: 1"]]], field: "http.headers.X-Key"),
        Bad(body: ["name": "api", "provider": "http", "sender_address": "news@example.com", "daily_quota": 10,
                   "http": ["endpoint_url": "http://169.254.169.254/latest/meta-data/"]], field: "http.endpoint_url"),
    ]

    @Test("service settings that could never send, or that inject, are a 400", arguments: bad)
    func badServices(_ bad: Bad) async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(bad.body, as: .json) }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field).contains(bad.field), "\(error.error.details)")
                #expect(!res.body.string.contains("Injected"))
            }
        }
    }

    @Test("an HTTP endpoint's user-info password and query values are not returned")
    func endpointRedacted() async throws {
        try await withApp(.sqlite) { app, _ in
            let body: [String: JSONValue] = ["name": "api", "provider": "http", "sender_address": "news@example.com", "daily_quota": 10,
                                             "http": ["endpoint_url": "http://api:URLPASS123@127.0.0.1:18150/send?api_key=QUERYKEY456"]]
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .created)
                #expect(!res.body.string.contains("URLPASS123"))
                #expect(!res.body.string.contains("QUERYKEY456"))
            }
        }
    }

    @Test("a recipient name with a line break is flattened and the message goes out; a service whose settings cannot make a mailer is frozen and the recipient stays pending")
    func namesAndBrokenSettings() async throws {
        let server = try SMTPTestServer()
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "ok", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: server.port)))
            let created = try await TaskService.create(
                NewTask(userID: user, name: "t", subject: "Hi {{name}}", textBody: "x", recipients: .list([RecipientInput(email: "a@example.com", name: "A\r\nBcc: evil@example.com")])),
                on: app.db, clock: clock, hooks: app.edm.taskHooks)
            try await Fixtures.drain(app)
            #expect(try server.messages().count == 1)
            #expect(try server.messages().first?.rcptTos == ["a@example.com"])
            #expect(try await TaskRecord.find(created.task.requireID(), on: app.db)?.status == .completed)

            // Broken settings written behind the API's back (an old row, a hand edit).
            try await EmailService.query(on: app.db).set(\.$isEnabled, to: false).update()
            let broken = try await Fixtures.service(app, name: "broken", provider: .smtp, config: .init(smtp: .init(host: "bad host name", port: 25)))
            let task = try await Fixtures.task(app, user: user, recipients: 1, prefix: "b")
            _ = try await app.edm.scheduler.runOnce()
            let sub = try #require(try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == task).first())
            #expect(sub.status == .pending)
            #expect(sub.attempts == 0)
            #expect(try await EmailService.find(broken, on: app.db)?.isFrozen == true)
        }
    }

    @Test("cancelling a task ends its pending recipients as failed (cancelled)")
    func cancelEndsPending() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 5)
            _ = try await TaskService.control(.cancel, taskID: task, on: app.db, clock: app.edm.clock)
            let record = try #require(try await TaskRecord.find(task, on: app.db))
            #expect(record.status == .cancelled)
            #expect(record.failedCount == 5)
            #expect(try await SubTaskRecord.query(on: app.db).filter(\.$status == .pending).count() == 0)
            #expect(try await SubTaskRecord.query(on: app.db).filter(\.$lastError == "cancelled").count() == 5)
        }
    }

    @Test("task events with absurd values are refused, so task-stats can always be computed")
    func absurdEvents() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 1)
            let body: JSONValue = ["events": [["event_id": "x1", "task_id": .string(task.uuidString), "user_id": .string(user.uuidString), "type": "first_sent",
                                               "timestamp": "2026-03-09T10:00:00Z", "wait_time_seconds": 1.7e308, "throughput_per_hour": 1.7e308]]]
            try await app.testing().test(.POST, "/api/monitoring/task-events", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(Set(error.error.details.map(\.field)) == ["events[0].wait_time_seconds", "events[0].throughput_per_hour"])
            }
            try await app.testing().test(.GET, "/api/monitoring/task-stats") { #expect($0.status == .ok) }
        }
    }
}
