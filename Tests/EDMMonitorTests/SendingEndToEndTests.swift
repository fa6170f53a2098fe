@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// The sending core from the API to a real SMTP server (aiosmtpd, `scripts/dev/smtp_test_server.py`).
@Suite("Sending end to end")
struct SendingEndToEndTests {
    /// A 1,000-row CSV as Excel writes it: BOM, CRLF, quoted commas, non-ASCII names; rows 101,
    /// 502 and 803 hold invalid addresses, rows 254 and 905 repeat earlier recipients
    /// (header = row 1).
    static func thousandRowCSV() -> Data {
        var text = "\u{FEFF}email,name,company\r\n"
        for i in 2...1001 {
            let email: String
            switch i {
            case 101: email = "not-an-address"
            case 502: email = "two@@example.com"
            case 803: email = "trailing-dot.@example.com"
            case 254: email = "  R7@Example.COM "          // duplicate of row 9 (r7@example.com)
            case 905: email = "r42@example.com"            // duplicate of row 44
            default: email = "r\(i - 2)@example.com"
            }
            text += "\(email),\"王小明 \(i)\",\"Example Trading Co., Ltd.\"\r\n"
        }
        return Data(text.utf8)
    }

    @Test("CSV import report, then 995 messages through three SMTP services, each exactly once, decoded right", arguments: TestDatabase.enabled)
    func importAndSend(_ db: TestDatabase) async throws {
        let server = try SMTPTestServer()
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let userID = try await Self.createUser(app)
            for name in ["relay-a", "relay-b", "relay-c"] {
                try await app.testing().test(.POST, "/api/email-services", beforeRequest: { req in
                    try req.content.encode([
                        "name": .string(name), "provider": .string("smtp"), "sender_address": .string("news@example.com"),
                        "sender_name": .string("示例 News"), "daily_quota": .number(10_000),
                        "smtp": .object(["host": .string("127.0.0.1"), "port": .number(Double(server.port)), "security": .string("none")]),
                    ] as [String: JSONValue], as: .json)
                }) { res in #expect(res.status == .created, "\(res.body.string)") }
            }
            let csv = Self.thousandRowCSV()
            let subject = "{{name}}，您的专属春季优惠券已到账！满300减50，限时3天有效，点击领取 >>"
            func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
            let path = "/api/tasks?user_id=\(userID)&name=spring&subject=\(encoded(subject))&text_body=\(encoded("Hello {{name}} of {{company}}"))"

            // Refused by default, naming exactly the five bad rows.
            try await app.testing().test(.POST, path, beforeRequest: { req in
                req.headers.contentType = .init(type: "text", subType: "csv")
                req.body = .init(data: csv)
            }) { res in
                #expect(res.status == .badRequest)
                let body = try res.content.decode(ErrorBody.self)
                #expect(body.error.code == "validation_failed")
                #expect(body.error.details.map(\.field).sorted() == ["row 101", "row 254", "row 502", "row 803", "row 905"])
            }
            #expect(try await TaskRecord.query(on: app.db).count() == 0)

            var taskID: UUID?
            try await app.testing().test(.POST, path + "&skip_invalid=true", beforeRequest: { req in
                req.headers.contentType = .init(type: "text", subType: "csv")
                req.body = .init(data: csv)
            }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                struct Created: Decodable { struct T: Decodable { var id: UUID; var total: Int }; struct S: Decodable { var row: Int; var code: String }; var task: T; var imported: Int; var skipped: [S] }
                let created = try res.content.decode(Created.self)
                #expect(created.imported == 995)
                #expect(created.task.total == 995)
                #expect(created.skipped.map(\.row).sorted() == [101, 254, 502, 803, 905])
                #expect(Set(created.skipped.map(\.code)) == ["invalid_address", "duplicate"])
                taskID = created.task.id
            }
            let id = try #require(taskID)

            let report = try await Fixtures.drain(app)
            #expect(report.sent == 995)
            let messages = try server.messages()
            #expect(messages.count == 995)
            let recipients = messages.flatMap(\.rcptTos)
            #expect(Set(recipients).count == 995, "a recipient got two messages")
            #expect(Set(messages.map(\.mailFrom)) == ["news@example.com"])
            let perService = try await app.sql.raw("SELECT service_id, count(*) AS n FROM sub_tasks GROUP BY service_id").all(decoding: ServiceCount.self)
            #expect(perService.count == 3)

            // Subject decodes to the rendered text; headers and envelope agree.
            let sample = try #require(messages.first { $0.rcptTos == ["r0@example.com"] })
            let text = String(decoding: sample.data, as: UTF8.self)
            let headers = text.components(separatedBy: "\r\n\r\n").first ?? ""
            let unfolded = MIMEEncodedWordDecoder.unfold(headers)
            let subjectLine = try #require(unfolded.split(separator: "\r\n").first { $0.hasPrefix("Subject: ") })
            #expect(MIMEEncodedWordDecoder.decode(String(subjectLine.dropFirst("Subject: ".count))) == "王小明 2，您的专属春季优惠券已到账！满300减50，限时3天有效，点击领取 >>")
            #expect(unfolded.contains("To: "))
            #expect(unfolded.contains("<r0@example.com>"))
            #expect(unfolded.contains("Message-ID: <"))
            #expect(unfolded.contains("X-EDM-Task-ID: \(id.uuidString.lowercased())"))
            for line in text.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998) }

            try await app.testing().test(.GET, "/api/tasks/\(id)") { res in
                struct T: Decodable { var status: String; var sent: Int; var failed: Int; var total: Int; var pending: Int; var progress_percent: Double }
                let task = try res.content.decode(T.self)
                #expect(task.status == "completed")
                #expect(task.sent == 995)
                #expect(task.pending == 0)
                #expect(task.progress_percent == 100)
            }
        }
    }

    struct ServiceCount: Decodable { var service_id: UUID?; var n: Int }

    @Test("an SMTP server answering 451 then 250 is retried and delivers; one answering 550 fails at once")
    func smtpFailures() async throws {
        let flaky = try SMTPTestServer(["--reply-plan", "451,250"])
        let rejecting = try SMTPTestServer(["--always", "550"])
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            let flakyID = try await Fixtures.service(app, name: "flaky", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: flaky.port)))
            _ = try await Fixtures.task(app, user: user, recipients: 1, name: "retry")
            try await Fixtures.drain(app)
            var sub = try #require(try await SubTaskRecord.query(on: app.db).first())
            #expect(sub.status == .pending)
            #expect(sub.lastError?.contains("451") == true)
            clock.advance(by: 30)
            try await Fixtures.drain(app)
            sub = try #require(try await SubTaskRecord.find(sub.requireID(), on: app.db))
            #expect(sub.status == .sent)
            #expect(try flaky.messages().count == 1)

            try await EmailService.query(on: app.db).filter(\.$id == flakyID).set(\.$isEnabled, to: false).update()
            try await Fixtures.service(app, name: "rejecting", provider: .smtp, config: .init(smtp: .init(host: "127.0.0.1", port: rejecting.port)))
            let task = try await Fixtures.task(app, user: user, recipients: 1, name: "reject", prefix: "x")
            try await Fixtures.drain(app)
            let failed = try #require(try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == task).first())
            #expect(failed.status == .failed)
            #expect(failed.attempts == 1)
            #expect(failed.lastError?.contains("550") == true)
            #expect(try rejecting.messages().isEmpty)
        }
    }

    static func createUser(_ app: Application) async throws -> UUID {
        var id: UUID?
        try await app.testing().test(.POST, "/api/users", beforeRequest: { req in
            try req.content.encode(["name": "Ann Operator", "email": "ann@Example.COM"])
        }) { res in
            #expect(res.status == .created)
            struct U: Decodable { var id: UUID; var email: String }
            let user = try res.content.decode(U.self)
            #expect(user.email == "ann@example.com")
            id = user.id
        }
        return try #require(id)
    }
}
