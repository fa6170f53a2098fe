@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Synchronization
import Testing
import Vapor

/// The `http` provider's C09 rows and its connection limit, against a real HTTP receiver on
/// 127.0.0.1.
@Suite("HTTP mailer: C09 reply classes and max_connections")
struct HTTPMailerReplyClassTests {
    final class Gate: Sendable {
        let inFlight = Mutex(0)
        let highest = Mutex(0)
    }

    static func receiver(gate: Gate) async throws -> (Application, Int) {
        let app = try await Application.make(.testing)
        let port = try PostgresTestServer.freeLoopbackPort()
        app.http.server.configuration.hostname = "127.0.0.1"
        app.http.server.configuration.port = port
        app.logger.logLevel = .warning
        app.post("c09", "429") { _ in Response(status: .tooManyRequests, headers: ["Retry-After": "120"]) }
        app.post("c09", "503") { _ in Response(status: .serviceUnavailable) }
        app.post("c09", "408") { _ in Response(status: .requestTimeout) }
        app.post("c09", "400") { _ in Response(status: .badRequest, body: .init(string: #"{"error":"invalid recipient"}"#)) }
        app.post("c09", "401") { _ in Response(status: .unauthorized) }
        app.post("c09", "date") { _ in
            Response(status: .serviceUnavailable, headers: ["Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"])
        }
        // Holds each request until a second one is in flight (at most 2 s), so an unlimited
        // mailer would show more than two at once.
        app.post("slow") { _ async throws -> Response in
            let now = gate.inFlight.withLock { n -> Int in n += 1; return n }
            gate.highest.withLock { $0 = max($0, now) }
            for _ in 0..<200 where gate.inFlight.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(20))
            gate.inFlight.withLock { $0 -= 1 }
            return Response(status: .accepted)
        }
        try await app.server.start()
        return (app, port)
    }

    static let email = OutgoingEmail(fromAddress: "news@example.com", fromName: nil, toAddress: "a@example.com", toName: nil,
                                     subject: "s", textBody: "t", htmlBody: nil, headers: [:], taskID: UUID(), subtaskID: UUID())

    @Test("every HTTP row of C09: 429 honours Retry-After, 503 and 408 retried, 400 permanent, 401 pauses the service")
    func c09() async throws {
        let (app, port) = try await Self.receiver(gate: Gate())
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        func send(_ path: String) async throws -> MailerOutcome {
            try await HTTPMailer(settings: .init(endpointURL: "http://127.0.0.1:\(port)/c09/\(path)"), client: client).send(Self.email)
        }
        do {
            guard case .retryLater(_, 120) = try await send("429") else { Issue.record("429 must wait 120 s"); throw CancellationError() }
            guard case .transientFailure = try await send("503") else { Issue.record("503 is retried"); throw CancellationError() }
            guard case .transientFailure = try await send("408") else { Issue.record("408 is retried"); throw CancellationError() }
            guard case .permanentFailure(let reason) = try await send("400") else { Issue.record("400 is permanent"); throw CancellationError() }
            #expect(reason.contains("invalid recipient"))
            guard case .serviceConfigurationFailure = try await send("401") else { Issue.record("401 pauses"); throw CancellationError() }
            guard case .retryLater(_, let seconds) = try await send("date") else { Issue.record("an HTTP date is a hint too"); throw CancellationError() }
            #expect(seconds > 365 * 86_400)
        } catch {
            try? await client.shutdown()
            await app.server.shutdown()
            try? await app.asyncShutdown()
            if !(error is CancellationError) { throw error }
            return
        }
        try await client.shutdown()
        await app.server.shutdown()
        try await app.asyncShutdown()
    }

    @Test("Retry-After: seconds, an IMF date, or nothing usable")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 1_445_412_000) // Wed, 21 Oct 2015 07:20:00 GMT
        #expect(HTTPMailer.retryAfterSeconds("120", now: now) == 120)
        #expect(HTTPMailer.retryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT", now: now) == 480)
        #expect(HTTPMailer.retryAfterSeconds("Wed, 21 Oct 2015 07:00:00 GMT", now: now) == 0)
        #expect(HTTPMailer.retryAfterSeconds("soon", now: now) == nil)
    }

    @Test("no more than maxConnections requests at once")
    func connectionLimit() async throws {
        let gate = Gate()
        let (app, port) = try await Self.receiver(gate: gate)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let mailer = try HTTPMailer(settings: .init(endpointURL: "http://127.0.0.1:\(port)/slow"), client: client, maxConnections: 2)
        let outcomes = await withTaskGroup(of: MailerOutcome.self) { group in
            for _ in 0..<6 { group.addTask { await mailer.send(Self.email) } }
            return await group.reduce(into: [MailerOutcome]()) { $0.append($1) }
        }
        try await client.shutdown()
        await app.server.shutdown()
        try await app.asyncShutdown()
        #expect(outcomes.count == 6)
        #expect(outcomes.allSatisfy { if case .sent = $0 { return true } else { return false } })
        #expect(gate.highest.withLock { $0 } == 2)
    }
}
