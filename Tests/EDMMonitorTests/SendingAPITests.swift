@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting

/// Users, email services and tasks through HTTP: shapes, validation, secrets, errors.
@Suite("Sending API")
struct SendingAPITests {
    static let validSMTP: [String: JSONValue] = [
        "name": .string("relay"), "provider": .string("smtp"), "sender_address": .string("news@example.com"), "daily_quota": .number(100),
        "smtp": .object(["host": .string("smtp.example.com"), "port": .number(587), "security": .string("starttls"),
                         "username": .string("edm"), "password": .string("s3cret-smtp-pw")]),
    ]

    @Test("an SMTP password and HTTP header values are never returned", arguments: TestDatabase.enabled)
    func secretsAreWriteOnly(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            var id = ""
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(Self.validSMTP, as: .json) }) { res in
                #expect(res.status == .created)
                #expect(!res.body.string.contains("s3cret-smtp-pw"))
                #expect(res.body.string.contains(#""password_set":true"#))
                struct S: Decodable { var id: String }
                id = try res.content.decode(S.self).id
            }
            try await app.testing().test(.GET, "/api/email-services/\(id)") { res in
                #expect(res.status == .ok)
                #expect(!res.body.string.contains("s3cret-smtp-pw"))
                #expect(res.body.string.contains(#""state":"available""#))
            }
            try await app.testing().test(.GET, "/api/email-services") { res in
                #expect(!res.body.string.contains("s3cret-smtp-pw"))
                #expect(res.body.string.contains(#""total":1"#))
            }
            // An update without a password keeps the stored one.
            try await app.testing().test(.PATCH, "/api/email-services/\(id)", beforeRequest: {
                try $0.content.encode(["daily_quota": JSONValue.number(50)], as: .json)
            }) { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""daily_quota":50"#))
                #expect(res.body.string.contains(#""password_set":true"#))
            }
            let stored = try #require(try await EmailService.query(on: app.db).first())
            #expect(stored.providerConfig.smtp?.password == "s3cret-smtp-pw")

            let http: [String: JSONValue] = [
                "name": .string("api"), "provider": .string("http"), "sender_address": .string("news@example.com"), "daily_quota": .number(10),
                "http": .object(["endpoint_url": .string("https://api.example.com/send"), "headers": .object(["Authorization": .string("Bearer tok-123456")])]),
            ]
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(http, as: .json) }) { res in
                #expect(res.status == .created)
                #expect(!res.body.string.contains("tok-123456"))
                #expect(res.body.string.contains(#""header_names":["Authorization"]"#))
            }
        }
    }

    struct BadService: Sendable, CustomTestStringConvertible {
        var change: [String: JSONValue]
        var field: String
        var testDescription: String { field }
    }

    static let badServices: [BadService] = [
        BadService(change: ["provider": .string("carrier-pigeon")], field: "provider"),
        BadService(change: ["daily_quota": .number(-1)], field: "daily_quota"),
        BadService(change: ["quota_timezone": .string("Mars/Olympus_Mons")], field: "quota_timezone"),
        BadService(change: ["quota_reset_time": .string("24:30")], field: "quota_reset_time"),
        BadService(change: ["sender_address": .string("not an address")], field: "sender_address"),
        BadService(change: ["name": .string("")], field: "name"),
        BadService(change: ["sending_interval_seconds": .number(-5)], field: "sending_interval_seconds"),
        BadService(change: ["smtp": .object(["host": .string("smtp.example.com"), "port": .number(70000)])], field: "smtp.port"),
        BadService(change: ["smtp": .object(["host": .string("smtp.example.com"), "port": .number(25), "security": .string("ssl3")])], field: "smtp.security"),
        BadService(change: ["provider": .string("http"), "http": .object(["endpoint_url": .string("ftp://files.example.com")])], field: "http.endpoint_url"),
        BadService(change: ["daily_quota": .string("lots")], field: "daily_quota"),
        BadService(change: ["max_connections": .number(0)], field: "max_connections"),
        BadService(change: ["max_connections": .number(101)], field: "max_connections"),
        BadService(change: ["max_messages_per_connection": .number(0)], field: "max_messages_per_connection"),
        BadService(change: ["rate_limit_per_second": .number(-0.5)], field: "rate_limit_per_second"),
    ]

    @Test("bad service input is a 400 naming the field, and nothing is stored", arguments: badServices)
    func badServiceInput(_ bad: BadService) async throws {
        try await withApp(.sqlite) { app, _ in
            let body = Self.validSMTP.merging(bad.change) { _, new in new }
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "validation_failed")
                #expect(error.error.details.map(\.field).contains(bad.field), "\(error.error.details)")
            }
            #expect(try await EmailService.query(on: app.db).count() == 0)
        }
    }

    @Test("a duplicate service name is 409; unknown ids are 404; paging is bounded")
    func conflictsAndNotFound() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(Self.validSMTP, as: .json) }) { #expect($0.status == .created) }
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(Self.validSMTP, as: .json) }) { res in
                #expect(res.status == .conflict)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "conflict")
            }
            for path in ["/api/email-services/\(UUID())", "/api/email-services/not-a-uuid", "/api/tasks/\(UUID())", "/api/users/\(UUID())"] {
                try await app.testing().test(.GET, path) { res in
                    #expect(res.status == .notFound, "\(path)")
                    let error = try res.content.decode(ErrorBody.self)
                    #expect(error.error.code == "not_found")
                }
            }
            for query in ["per_page=0", "per_page=10000", "page=0", "page=abc"] {
                try await app.testing().test(.GET, "/api/tasks?\(query)") { res in
                    #expect(res.status == .badRequest, "\(query)")
                }
            }
            try await app.testing().test(.GET, "/api/tasks?status=running") { #expect($0.status == .badRequest) }
            try await app.testing().test(.POST, "/api/tasks/\(UUID())/pause") { #expect($0.status == .notFound) }
        }
    }

    @Test("a task with a template that does not parse is refused with the position; an unknown user too")
    func badTask() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let body: [String: JSONValue] = [
                "user_id": .string(user.uuidString), "name": .string("t"), "subject": .string("Hi {{#name}}"),
                "text_body": .string("ok"), "recipients": .array([.object(["email": .string("a@example.com")])]),
            ]
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                let detail = try #require(error.error.details.first { $0.field == "subject" })
                #expect(detail.reason.contains("line 1"))
            }
            var unknownUser = body
            unknownUser["subject"] = .string("Hi {{name}}")
            unknownUser["user_id"] = .string(UUID().uuidString)
            try await app.testing().test(.POST, "/api/tasks", beforeRequest: { try $0.content.encode(unknownUser, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["user_id"])
            }
            #expect(try await TaskRecord.query(on: app.db).count() == 0)
        }
    }

    @Test("reference cases C01 and C03 through the API: Excel CSV read exactly; duplicates reported and skipped")
    func referenceCSVs() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            func post(_ fixture: String, skip: Bool) async throws -> TestingHTTPResponse {
                let data = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("EDMMonitorCoreTests/Fixtures/\(fixture)"))
                return try await app.testing().sendRequest(.POST, "/api/tasks?user_id=\(user)&name=c&subject=Hi&text_body=Body&skip_invalid=\(skip)", headers: ["Content-Type": "text/csv"], body: ByteBuffer(data: data))
            }
            let c01 = try await post("C01-recipients-excel-utf8.csv", skip: false)
            #expect(c01.status == .created, "\(c01.body.string)")
            let subtasks = try await SubTaskRecord.query(on: app.db).sort(\.$sequence).all()
            #expect(subtasks.map(\.recipientEmail) == ["wang.xiaoming@example.com", "li.hua@example.org", "zhang.wei@example.net", "chen.jing@example.com"])
            #expect(subtasks[2].variables["note"] == "line 1\nline 2")
            #expect(subtasks[0].variables["company"] == "Example Trading Co., Ltd.")
            #expect(subtasks[3].recipientName == "陈静")

            let refused = try await post("C03-recipients-dupes.csv", skip: false)
            #expect(refused.status == .badRequest)
            #expect(try refused.content.decode(ErrorBody.self).error.details.map(\.field).sorted() == ["row 3", "row 5", "row 9"])
            let c03 = try await post("C03-recipients-dupes.csv", skip: true)
            #expect(c03.status == .created)
            struct Created: Decodable { var imported: Int }
            #expect(try c03.content.decode(Created.self).imported == 5)
        }
    }

    @Test("pause, resume and cancel follow the task's state; a wrong transition is 409")
    func taskControl() async throws {
        try await withApp(.sqlite) { app, _ in
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 2)
            try await app.testing().test(.POST, "/api/tasks/\(task)/resume") { #expect($0.status == .conflict) }
            try await app.testing().test(.POST, "/api/tasks/\(task)/pause") { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""status":"paused""#))
            }
            try await app.testing().test(.POST, "/api/tasks/\(task)/resume") { #expect($0.body.string.contains(#""status":"queued""#)) }
            try await app.testing().test(.POST, "/api/tasks/\(task)/cancel") { #expect($0.body.string.contains(#""status":"cancelled""#)) }
            try await app.testing().test(.POST, "/api/tasks/\(task)/pause") { #expect($0.status == .conflict) }
            try await app.testing().test(.GET, "/api/tasks?status=cancelled") { res in
                #expect(res.body.string.contains(#""total":1"#))
            }
        }
    }
}
