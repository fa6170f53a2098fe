@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting

/// The service container, the email-service catalog, domain errors and typed query filters.
@Suite("Service container and domain errors")
struct ServiceContainerTests {
    @Test("configure returns the container it stores; two applications have separate containers; none before configure")
    func containerPerApplication() async throws {
        let bare = try await Application.make(.testing)
        #expect(bare.services == nil)
        try await bare.asyncShutdown()

        try await withApp(.sqlite) { app, settings in
            let stored = try #require(app.services)
            let other = try await Application.make(.testing)
            let otherServices = try await configure(other, settings: settings)
            // Each application owns its services: the recorders are different objects.
            #expect(otherServices.apiMetrics !== stored.apiMetrics)
            #expect(otherServices.systemMonitor !== stored.systemMonitor)
            #expect(other.services?.apiMetrics === otherServices.apiMetrics)
            try await other.asyncShutdown()
            // The controllers got the stored recorder: a request is counted in it.
            try await app.testing().test(.GET, "/api/users") { #expect($0.status == .ok) }
            #expect(stored.apiMetrics.requestCounts[.init(method: "GET", route: "/api/users", status: 200)] == 1)
        }
    }

    @Test("domain errors keep their status, code, message and details through the middleware and choose the CLI's exit status")
    func domainErrorMapping() {
        let id = UUID()
        let notFound = APIErrorMiddleware.map(TaskError.notFound(id))
        #expect(notFound == APIError(.notFound, .notFound, "no task with id \(id)"))
        let conflict = APIErrorMiddleware.map(EmailServiceError.nameTaken("relay"))
        #expect(conflict.status == .conflict && conflict.code == .conflict)
        #expect(conflict.details == [.init(field: "name", reason: "already taken")])
        let invalid = APIErrorMiddleware.map(UserError.invalid([.init(field: "email", reason: "bad")]))
        #expect(invalid == APIError(.badRequest, .validationFailed, "the user is invalid", details: [.init(field: "email", reason: "bad")]))

        // 2 for values the command line gave, 1 for bad data in a file, a conflict or a missing row.
        #expect(TaskError.invalid(message: "x", details: []).exitStatus == 2)
        #expect(TaskError.unreadableRecipients(message: "x", details: []).exitStatus == 1)
        #expect(TaskError.notFound(id).exitStatus == 1)
        #expect(EmailServiceError.invalid([]).exitStatus == 2)
        #expect(EmailServiceError.nameTaken("relay").exitStatus == 1)
        #expect(UserError.notFound(id).exitStatus == 1)
        #expect(TaskError.notAllowed(control: "pause", from: "completed").commandLineMessage == "cannot pause a task that is completed")
        #expect(EmailServiceError.nameTaken("relay").commandLineMessage == "an email service named relay already exists: name: already taken")
    }

    @Test("the catalog owns the email-service rules: every bad field at once, a taken name, enable and unfreeze", arguments: TestDatabase.enabled)
    func catalog(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let catalog = app.edm.emailServices
            await #expect(throws: EmailServiceError.invalid([
                .init(field: "name", reason: "is required"),
                .init(field: "provider", reason: "must be one of smtp, http, dry_run"),
                .init(field: "sender_address", reason: "is required"),
                .init(field: "daily_quota", reason: "must be from 0 to 1000000000"),
            ])) {
                try await catalog.create(EmailServiceInput(provider: "pigeon", daily_quota: -1), on: app.db)
            }
            #expect(try await EmailService.query(on: app.db).count() == 0)

            let input = EmailServiceInput(name: "trial", provider: "dry_run", sender_address: "news@example.com", daily_quota: 10)
            let created = try await catalog.create(input, on: app.db)
            #expect(created.createdAt == clock.now())
            #expect(created.isEnabled && !created.isFrozen && created.usedQuota == 0)
            await #expect(throws: EmailServiceError.nameTaken("trial")) { try await catalog.create(input, on: app.db) }

            let id = try created.requireID()
            #expect(try await catalog.setEnabled(id, false, on: app.db).isEnabled == false)
            created.isFrozen = true
            created.consecutiveFailures = 5
            try await created.save(on: app.db)
            let thawed = try await catalog.unfreeze(id, on: app.db)
            #expect(!thawed.isFrozen && thawed.consecutiveFailures == 0)
            clock.advance(by: 60)
            #expect(try await catalog.update(id, with: EmailServiceInput(daily_quota: 5), on: app.db).updatedAt == clock.now())
            try await catalog.delete(id, on: app.db)
            await #expect(throws: EmailServiceError.notFound(id)) { try await catalog.find(id, on: app.db) }
        }
    }

    @Test("JSON recipients are numbered recipients[i] from zero, in the error and in the skipped rows; CSV keeps line numbers")
    func jsonRecipientNumbering() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            var body: [String: JSONValue] = [
                "user_id": .string(user.uuidString), "name": .string("t"), "subject": .string("Hi"), "text_body": .string("ok"),
                "recipients": .array([
                    .object(["email": .string("ann@example.com")]),
                    .object(["email": .string("not-an-address")]),
                    .object(["email": .string("ANN@example.com")]),
                    .object(["email": .string(" "), "name": .string("Cy")]),
                    .object(["email": .string("bo@example.com")]),
                ]),
            ]
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self).error
                #expect(error.details.map(\.field) == ["recipients[1]", "recipients[2]", "recipients[3]"])
                #expect(error.details.map(\.reason).contains("duplicate of recipients[0]"))
                #expect(error.details.map(\.reason).contains("recipients[3] has no email address"))
                #expect(!error.details.contains { $0.reason.contains("row") })
            }
            body["skip_invalid"] = .bool(true)
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                struct Created: Decodable { struct S: Decodable { var row: Int; var code: String; var message: String }; var imported: Int; var skipped: [S] }
                let created = try res.content.decode(Created.self)
                #expect(created.imported == 2)
                #expect(created.skipped.map(\.row) == [1, 2, 3])
                #expect(created.skipped.map(\.message).contains("duplicate of recipients[0]"))
            }
            // The same recipients as CSV: rows are the spreadsheet's (header = 1).
            let csv = "email\nann@example.com\nnot-an-address\nANN@example.com\n"
            let res = try await app.testing().sendRequest(.POST, "/api/tasks?user_id=\(user)&name=c&subject=Hi&text_body=Body",
                                                         headers: ["Content-Type": "text/csv"], body: ByteBuffer(string: csv))
            #expect(res.status == .badRequest)
            let error = try res.content.decode(ErrorBody.self).error
            #expect(error.details.map(\.field) == ["row 3", "row 4"])
            #expect(error.details.map(\.reason).contains("duplicate of row 2"))
        }
    }

    @Test("query filters decode into typed structs: every bad filter named at once, good ones applied")
    func typedFilters() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/api/tasks?status=bogus&user_id=nope") { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self).error
                #expect(error.message == "invalid filters")
                #expect(error.details.map(\.field) == ["status", "user_id"])
            }
            try await app.testing().test(.GET, "/api/monitoring/task-metrics?from=2026-03-09T10:00:00Z&to=2026-03-09T09:00:00Z&task_id=x") { res in
                #expect(res.status == .badRequest)
                // The range is judged first, as before.
                let details = try res.content.decode(ErrorBody.self).error.details.map(\.field)
                #expect(details == ["from"])
            }
            try await app.testing().test(.GET, "/api/monitoring/task-metrics?task_id=x&metric_type=sideways") { res in
                let details = try res.content.decode(ErrorBody.self).error.details.map(\.field)
                #expect(details == ["task_id", "metric_type"])
            }
            try await app.testing().test(.GET, "/api/tokens?state=lost") { res in
                #expect(res.status == .badRequest)
                let details = try res.content.decode(ErrorBody.self).error.details.map(\.reason)
                #expect(details == ["must be one of active, expired, revoked"])
            }
            try await app.testing().test(.GET, "/api/users?page=0&per_page=501") { res in
                let details = try res.content.decode(ErrorBody.self).error.details.map(\.field)
                #expect(details == ["page", "per_page"])
            }
            let user = try await Fixtures.user(app)
            _ = try await Fixtures.task(app, user: user, recipients: 1)
            try await app.testing().test(.GET, "/api/tasks?status=queued&user_id=\(user)") { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""total":1"#))
            }
            try await app.testing().test(.GET, "/api/tasks?user_id=\(UUID())") { res in
                #expect(res.body.string.contains(#""total":0"#))
            }
        }
    }
}
