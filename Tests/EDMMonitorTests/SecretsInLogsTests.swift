@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor

/// A full run of the real binary at `trace`, with every kind of secret in play, whose whole log
/// is then searched for them (issue #7: secrets are never logged nor returned).
@Suite("Secrets in logs", .serialized)
struct SecretsInLogsTests {
    @Test("a full run at trace level logs no secret, returns none, and logs request ids", arguments: TestDatabase.enabled)
    func fullRun(_ kind: TestDatabase) async throws {
        let smtpPassword = "SmtpPw-\(UUID().uuidString.prefix(8))"
        let httpHeaderSecret = "HdrSecret\(UUID().uuidString.prefix(8))"
        let querySecret = "QrySecret\(UUID().uuidString.prefix(8))"
        let hookSecret = "HookSecret\(UUID().uuidString.prefix(12))"
        let slackSecret = "SlackSecret\(UUID().uuidString.prefix(12))"
        let wrongToken = "edm_WrongSecret\(UUID().uuidString.prefix(8))"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-secrets-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (location, cleanup) = try await TestDatabases.make(kind, migrated: false)
        defer { cleanup() }
        let database: String = switch location {
        case .postgres(let url): url
        default: "sqlite://\(folder.path)/edm.sqlite"
        }

        let created = try runEDMMonitor(["token", "create", "--role", "admin", "--name", "ci", "--database-url", database])
        try #require(created.status == 0, "\(created.stderr)")
        let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let smtp = try SMTPTestServer(["--starttls", "--require-starttls", "--auth-required", "--auth-user", "edm", "--auth-password", smtpPassword], selfSignedTLS: true)
        let pem = try #require(smtp.certificatePEM)
        let deadPort = try PostgresTestServer.freeLoopbackPort()

        let server = try await ServedEDMMonitor(["--database-url", database, "--log-level", "trace", "--log-format", "json"],
                                                environment: ["EDM_SYSTEM_MONITOR_INTERVAL_SECONDS": "1"])
        var responses: [String] = []
        func call(_ method: HTTPMethod, _ path: String, _ json: String? = nil, token: String? = token, headers: [(String, String)] = []) async throws -> (status: Int, body: String) {
            let response = try await server.request(method, path, token: token, headers: headers, json: json)
            responses.append(response.body)
            return (response.status, response.body)
        }
        func id(_ body: String) throws -> String {
            let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            return try #require(object?["id"] as? String, "no id in \(body)")
        }

        let user = try await call(.POST, "/api/users", #"{"name":"Ann","email":"ann@example.com"}"#)
        #expect(user.status == 201, "\(user.body)")
        let pemJSON = String(decoding: try JSONEncoder().encode(pem), as: UTF8.self)
        let smtpService = try await call(.POST, "/api/email-services", """
            {"name":"relay","provider":"smtp","sender_address":"news@example.com","daily_quota":100,
             "smtp":{"host":"127.0.0.1","port":\(smtp.port),"security":"starttls","username":"edm","password":"\(smtpPassword)","trusted_ca_pem":\(pemJSON)}}
            """)
        #expect(smtpService.status == 201, "\(smtpService.body)")
        let httpService = try await call(.POST, "/api/email-services", """
            {"name":"api","provider":"http","sender_address":"news@example.com","daily_quota":100,
             "http":{"endpoint_url":"http://user:\(querySecret)@127.0.0.1:\(deadPort)/send?api_key=\(querySecret)","headers":{"Authorization":"Bearer \(httpHeaderSecret)"}}}
            """)
        #expect(httpService.status == 201, "\(httpService.body)")
        let task = try await call(.POST, "/api/tasks", """
            {"user_id":"\(try id(user.body))","name":"hello","subject":"Hi {{name}}","text_body":"Hello {{name}}",
             "recipients":[{"email":"a@example.com","name":"A"},{"email":"b@example.com","name":"B"},{"email":"c@example.com","name":"C"},{"email":"d@example.com","name":"D"}]}
            """)
        #expect(task.status == 201, "\(task.body)")
        let rule = try await call(.POST, "/api/monitoring/alert-rules", """
            {"name":"SecretTest","metric_name":"edm_secret_test_value","condition_type":"threshold","comparison_operator":">","threshold_value":0,
             "time_window_minutes":1,"severity":"warning","notification_channels":[
               {"type":"webhook","url":"http://127.0.0.1:\(deadPort)/hooks/\(hookSecret)?token=\(hookSecret)"},
               {"type":"slack","url":"http://127.0.0.1:\(deadPort)/services/T000/B000/\(slackSecret)"}]}
            """)
        #expect(rule.status == 201, "\(rule.body)")
        #expect(try await call(.PUT, "/api/monitoring/config", #"{"evaluation_interval_seconds": 1}"#).status == 200)
        #expect(try await call(.POST, "/api/monitoring/performance-metrics", #"{"points":[{"name":"edm_secret_test_value","value":5}]}"#).status == 201)
        // Refusals that carry would-be secrets.
        #expect(try await call(.GET, "/api/tasks", token: wrongToken).status == 401)
        #expect(try await call(.GET, "/api/tasks", token: nil, headers: [("Authorization", "Basic \(Data("admin:\(smtpPassword)".utf8).base64EncodedString())")]).status == 401)
        #expect(try await call(.GET, "/api/no-such-route", headers: [("X-Request-ID", "secrets-test-404")]).status == 404)

        // Wait (bounded) until the SMTP peer got mail, the HTTP service failed once, and the rule fired and tried to notify.
        var delivered = false, httpTried = false, notified = false
        for _ in 0..<120 where !(delivered && httpTried && notified) {
            delivered = try !smtp.messages().isEmpty
            let service = try await call(.GET, "/api/email-services/\(try id(httpService.body))")
            httpTried = service.body.contains(#""consecutive_failures":"#) && !service.body.contains(#""consecutive_failures":0"#)
            let alerts = try await call(.GET, "/api/monitoring/alerts?status=active")
            notified = alerts.body.contains("SecretTest")
            if !(delivered && httpTried && notified) { try await Task.sleep(for: .milliseconds(250)) }
        }
        try await Task.sleep(for: .seconds(2))  // one more delivery attempt of the notifications
        let (status, log) = server.stop()
        let artifacts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("test-artifacts")
        try? FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        try? log.write(to: artifacts.appendingPathComponent("secrets-full-run-\(kind.rawValue).log"), atomically: true, encoding: .utf8)
        if status != 0 { try? log.write(to: artifacts.appendingPathComponent("secrets-full-run-\(kind.rawValue)-failed-\(Int(Date().timeIntervalSince1970)).log"), atomically: true, encoding: .utf8) }
        #expect(status == 0, "serve did not exit 0 on SIGTERM; the end of its log:\n\(log.split(separator: "\n").suffix(15).joined(separator: "\n"))")
        // The webhook and Slack receivers are a dead port, where AsyncHTTPClient retries the
        // connection until its 10 s timeout: delivery must still stop at once on SIGTERM.
        #expect(!log.contains("shutdown bound"), "a loop outlived the shutdown bound")
        #expect(delivered, "no mail reached the SMTP peer")
        #expect(httpTried, "the HTTP service was never tried")
        #expect(notified, "the rule did not fire")

        let authPlain = Data("\0edm\0\(smtpPassword)".utf8).base64EncodedString()
        let secrets = [smtpPassword, authPlain, Data(smtpPassword.utf8).base64EncodedString(), token, String(token.dropFirst(4)),
                       httpHeaderSecret, querySecret, hookSecret, slackSecret, wrongToken]
        func hex(_ text: String) -> String { text.utf8.map { String(format: "%02x", $0) }.joined() }
        for secret in secrets where secret.count >= 8 {
            // Vapor dumps request bodies as hex at trace.
            #expect(!log.contains(hex(secret)), "the log contains a secret in hex (\(secret.prefix(6))…)")
        }
        for secret in secrets {
            let line = log.split(separator: "\n").first(where: { $0.contains(secret) }).map { String($0.prefix(400)) } ?? ""
            #expect(!log.contains(secret), "the log contains a secret (\(secret.prefix(6))…): \(line)")
            for body in responses { #expect(!body.contains(secret), "a response contains a secret (\(secret.prefix(6))…): \(body.prefix(300))") }
        }
        #expect(log.contains("secrets-test-404"), "the request id is not in the log")
        #expect(log.contains("C: AUTH") || log.contains("AUTH"), "the SMTP transcript was not logged at trace, so the test proves little")
    }
}
