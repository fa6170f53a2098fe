@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import Testing
import Vapor

/// The `http` provider against a real HTTP receiver (a second Vapor server on 127.0.0.1).
@Suite("HTTP mailer")
struct HTTPMailerTests {
    /// A receiver that records bodies and answers 202, 429 or 400 by path.
    final class Receiver: Sendable {
        let app: Application
        let port: Int
        final class Recorded: Sendable {
            let requests = Mutex<[(path: String, authorization: String?, body: String)]>([])
        }
        let recorded = Recorded()

        init() async throws {
            app = try await Application.make(.testing)
            port = try PostgresTestServer.freeLoopbackPort()
            app.http.server.configuration.hostname = "127.0.0.1"
            app.http.server.configuration.port = port
            app.logger.logLevel = .warning
            for (path, status) in [("ok", HTTPStatus.accepted), ("busy", .tooManyRequests), ("bad", .badRequest), ("down", .serviceUnavailable)] {
                app.post("send", .constant(path)) { [recorded] req async throws -> Response in
                    recorded.requests.withLock { $0.append((path, req.headers.first(name: .authorization), req.body.string ?? "")) }
                    let response = Response(status: status)
                    if status == .accepted { try response.content.encode(["id": "provider-42"]) }
                    return response
                }
            }
            // A redirect to a path of its own that must never be requested.
            app.post("send", "moved") { _ in
                Response(status: .found, headers: ["Location": "http://127.0.0.1:\(self.port)/send/ok"])
            }
            try await app.server.start()
        }

        func stop() async throws {
            await app.server.shutdown()
            try await app.asyncShutdown()
        }
    }

    @Test("a redirect is not followed: a permanent failure naming where it pointed, and the target is never called")
    func redirectNotFollowed() async throws {
        let receiver = try await Receiver()
        do {
            try await withApp(.sqlite) { app, _ in
                let mailer = try HTTPMailer(settings: .init(endpointURL: "http://127.0.0.1:\(receiver.port)/send/moved"), client: app.http.client.shared)
                let email = OutgoingEmail(fromAddress: "news@example.com", fromName: nil, toAddress: "a@example.com", toName: nil,
                                          subject: "s", textBody: "t", htmlBody: nil, headers: [:], taskID: UUID(), subtaskID: UUID())
                guard case .permanentFailure(let reason) = await mailer.send(email) else { Issue.record("a redirect must fail the message"); return }
                #expect(reason.contains("HTTP 302") && reason.contains("redirects are not followed") && reason.contains("/send/ok"), "\(reason)")
                #expect(receiver.recorded.requests.withLock { $0.isEmpty })
            }
        } catch {
            try await receiver.stop()
            throw error
        }
        try await receiver.stop()
    }

    @Test("a refused address is refused again right before sending (a service stored before the rules, or a name resolving to it)")
    func refusedBeforeSending() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let email = OutgoingEmail(fromAddress: "news@example.com", fromName: nil, toAddress: "a@example.com", toName: nil,
                                  subject: "s", textBody: "t", htmlBody: nil, headers: [:], taskID: UUID(), subtaskID: UUID())
        for url in ["http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://[::ffff:169.254.169.254]/"] {
            let mailer = try HTTPMailer(settings: .init(endpointURL: url), client: client)
            guard case .permanentFailure(let reason) = await mailer.send(email) else { Issue.record("\(url) must be refused"); continue }
            #expect(reason.contains("refused by the outbound policy"), "\(reason)")
        }
        try await client.shutdown()
    }

    @Test("2xx is sent with the provider's id; 429 and 5xx are temporary; other 4xx permanent; the body is valid JSON")
    func outcomes() async throws {
        let receiver = try await Receiver()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let email = OutgoingEmail(fromAddress: "news@example.com", fromName: "News \"Desk\"", toAddress: "a@example.com", toName: "王小明",
                                      subject: "Line\nbreak \"quoted\" \\ backslash", textBody: "Hi\tthere", htmlBody: nil, headers: [:], taskID: UUID(), subtaskID: UUID())
            func mailer(_ path: String) throws -> HTTPMailer {
                try HTTPMailer(settings: .init(endpointURL: "http://127.0.0.1:\(receiver.port)/send/\(path)", headers: ["Authorization": "Bearer k-1"]), client: client)
            }
            #expect(try await mailer("ok").send(email) == .sent(messageID: "provider-42"))
            guard case .transientFailure = try await mailer("busy").send(email) else { Issue.record("429 should be temporary"); return }
            guard case .transientFailure = try await mailer("down").send(email) else { Issue.record("503 should be temporary"); return }
            guard case .permanentFailure = try await mailer("bad").send(email) else { Issue.record("400 should be permanent"); return }
            let unreachable = try HTTPMailer(settings: .init(endpointURL: "http://127.0.0.1:\(try PostgresTestServer.freeLoopbackPort())/x"), client: client)
            guard case .transientFailure = await unreachable.send(email) else { Issue.record("connection refused should be temporary"); return }

            let first = try #require(receiver.recorded.requests.withLock { $0.first })
            #expect(first.authorization == "Bearer k-1")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(first.body.utf8)) as? [String: Any])
            #expect(json["subject"] as? String == "Line\nbreak \"quoted\" \\ backslash")
            #expect(json["text"] as? String == "Hi\tthere")
            #expect((json["to"] as? [String: Any])?["name"] as? String == "王小明")
            #expect((json["from"] as? [String: Any])?["name"] as? String == "News \"Desk\"")
        } catch {
            try? await client.shutdown()
            try? await receiver.stop()
            throw error
        }
        try await client.shutdown()
        try await receiver.stop()
    }
}
