import EDMMonitorCore
import Foundation
import Logging
import EDMMonitor
import Testing

/// The mailer against the real aiosmtpd test server on 127.0.0.1 (one server per test).
@Suite("SMTPMailer against the aiosmtpd test server", .timeLimit(.minutes(1)))
struct SMTPMailerTests {
    static let subject = "季度报告：您的 EDM 活动 — Quarterly report ✓"

    /// A rendered UTF-8 message whose body has a line starting with "." (dot-stuffing) and
    /// 8bit text, and the envelope for it.
    static func envelope(to recipient: String = "wang.xiaoming@example.com", eightBitMIME: Bool = true)
        throws -> (RenderedMailMessage, SMTPEnvelope) {
        let message = MailMessage(
            from: MailMailbox(displayName: "EDM 通知", address: "news@mail.example.com"),
            to: [MailMailbox(displayName: "王小明", address: recipient)],
            subject: subject,
            textBody: "您好，\n.这一行以点开头\n..两个点\nbye\n",
            htmlBody: "<p>您好</p>\n<p>.</p>\n",
            extraHeaders: [MailHeaderField(name: "X-EDM-Task-ID", value: "T7")])
        let rendered = try message.render(MailRenderOptions(date: Date(timeIntervalSince1970: 1_760_000_000),
                                                           messageIDLocalPart: "m1", boundaryToken: "b1",
                                                           eightBitMIME: eightBitMIME))
        return (rendered, SMTPEnvelope(reversePath: "bounce+T7@mail.example.com", recipient: recipient, message: rendered))
    }

    static func configuration(port: Int, security: SMTPSecurity = .none, credentials: SMTPCredentials? = nil,
                              verification: SMTPCertificateVerification = .full) -> SMTPMailerConfiguration {
        SMTPMailerConfiguration(host: "127.0.0.1", port: port, security: security, credentials: credentials,
                                heloName: "edm-test.localhost", certificateVerification: verification,
                                connectTimeout: .seconds(5), commandTimeout: .seconds(10), dataTimeout: .seconds(10))
    }

    @Test("Plain send arrives byte-exact: envelope, 8BITMIME, headers, UTF-8 subject, queue id")
    func plainSend() async throws {
        let server = try SMTPTestServer()
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        let (rendered, envelope) = try Self.envelope()
        #expect(envelope.requires8BitMIME)

        let result = try await mailer.send(envelope)
        await mailer.close()

        let message = try #require(try server.messages().first, "no message recorded; server log:\n\(server.log)")
        #expect(result.isSent, "\(result)")
        #expect(result.queueIdentifier == message.queueId)
        #expect(message.mailFrom == "bounce+T7@mail.example.com")
        #expect(message.rcptTos == ["wang.xiaoming@example.com"])
        #expect(message.mailOptions.contains("BODY=8BITMIME"))
        #expect(message.mailOptions.contains("SIZE=\(envelope.payload.count)"))
        #expect(!message.tls && message.authUser == nil)
        #expect(message.data == rendered.octets, "received octets differ from the rendered message")

        let text = String(decoding: message.data, as: UTF8.self)
        let head = try #require(text.range(of: "\r\n\r\n").map { String(text[..<$0.lowerBound]) })
        let fields = MIMEEncodedWordDecoder.unfold(head).components(separatedBy: "\r\n")
            .compactMap(MIMEEncodedWordDecoder.decodeHeaderField)
        #expect(fields.first { $0.name == "Subject" }?.value == Self.subject)
        #expect(fields.first { $0.name == "From" }?.value == "EDM 通知 <news@mail.example.com>")
        #expect(fields.first { $0.name == "X-EDM-Task-ID" }?.value == "T7")
        #expect(text.contains("\r\n.这一行以点开头\r\n..两个点\r\n"), "dot-stuffing not undone exactly")
    }

    @Test("STARTTLS with a trusted self-signed certificate, then AUTH; the password is never logged")
    func startTLSWithAuth() async throws {
        let password = "s3cret-pässword"
        let server = try SMTPTestServer(["--starttls", "--require-starttls", "--auth-required",
                                         "--auth-user", "edm", "--auth-password", password], selfSignedTLS: true)
        let pem = try #require(server.certificatePEM)
        let (logger, log) = CapturingLogHandler.logger()
        let mailer = try SMTPMailer(configuration: Self.configuration(
            port: server.port, security: .startTLS, credentials: SMTPCredentials(username: "edm", password: password),
            verification: .fullTrustingAdditionalCAs(pem: pem)), logger: logger)

        let result = try await mailer.send(try Self.envelope().1)
        await mailer.close()

        #expect(result.isSent, "\(result)\n\(server.log)")
        let message = try #require(try server.messages().first)
        #expect(message.tls)
        #expect(message.authUser == "edm")
        let transcript = log.text
        #expect(transcript.contains("C: STARTTLS"))
        #expect(transcript.contains("<redacted>"))
        #expect(!transcript.contains(password))
        #expect(!transcript.contains(Data(password.utf8).base64EncodedString()))
        #expect(!transcript.contains(Data("\0edm\0\(password)".utf8).base64EncodedString()))
    }

    @Test("STARTTLS: untrusted certificate is a transient TLS failure; wrong password is permanent")
    func startTLSFailures() async throws {
        let server = try SMTPTestServer(["--starttls", "--auth-user", "edm", "--auth-password", "right"], selfSignedTLS: true)
        let untrusted = try SMTPMailer(configuration: Self.configuration(port: server.port, security: .startTLS))
        let refused = try await untrusted.send(try Self.envelope().1)
        guard case .transientFailure(let failure) = refused, case .tlsFailed = failure.reason else {
            Issue.record("expected a transient TLS failure, got \(refused)")
            return
        }
        #expect(failure.stage == .startTLS)

        let wrong = try SMTPMailer(configuration: Self.configuration(
            port: server.port, security: .startTLS, credentials: SMTPCredentials(username: "edm", password: "wrong"),
            verification: .fullTrustingAdditionalCAs(pem: try #require(server.certificatePEM))))
        let denied = try await wrong.send(try Self.envelope().1)
        guard case .permanentFailure(let authFailure) = denied, case .reply(let reply) = authFailure.reason else {
            Issue.record("expected a permanent AUTH failure, got \(denied)")
            return
        }
        #expect(reply.code == 535 && authFailure.stage == .auth)
        #expect(try server.messages().isEmpty)
    }

    @Test("Implicit TLS (RFC 8314) with AUTH PLAIN")
    func implicitTLS() async throws {
        let server = try SMTPTestServer(["--implicit-tls", "--auth-user", "edm", "--auth-password", "pw"], selfSignedTLS: true)
        let mailer = try SMTPMailer(configuration: Self.configuration(
            port: server.port, security: .tls, credentials: SMTPCredentials(username: "edm", password: "pw"),
            verification: .fullTrustingAdditionalCAs(pem: try #require(server.certificatePEM))))
        let result = try await mailer.send(try Self.envelope().1)
        await mailer.close()
        #expect(result.isSent, "\(result)\n\(server.log)")
        let message = try #require(try server.messages().first)
        #expect(message.tls && message.authUser == "edm")
    }

    @Test("451 then 250: transient failure, then success on the same connection (RSET)")
    func transientThenSuccess() async throws {
        let server = try SMTPTestServer(["--reply-plan", "451,250"])
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        let envelope = try Self.envelope().1

        let first = try await mailer.send(envelope)
        guard case .transientFailure(let failure) = first, case .reply(let reply) = failure.reason else {
            Issue.record("expected a transient failure, got \(first)")
            return
        }
        #expect(reply.code == 451 && failure.stage == .payload && !failure.mayHaveBeenDelivered)
        let second = try await mailer.send(envelope)
        #expect(second.isSent, "\(second)")
        #expect(try server.messages().count == 1)
        #expect(try server.connectionCount() == 1)
        #expect(await mailer.connectionsOpened == 1)
    }

    @Test("550 is permanent; per-recipient 550 and 450 at RCPT are permanent and transient")
    func permanentFailures() async throws {
        let always = try SMTPTestServer(["--always", "550"])
        let mailer = try SMTPMailer(configuration: Self.configuration(port: always.port))
        let rejected = try await mailer.send(try Self.envelope().1)
        guard case .permanentFailure(let failure) = rejected, case .reply(let reply) = failure.reason else {
            Issue.record("expected a permanent failure, got \(rejected)")
            return
        }
        #expect(reply.code == 550 && reply.enhancedStatus?.description == "5.1.1" && failure.stage == .payload)

        let rules = try SMTPTestServer(["--rcpt-rule", "unknown@*=550", "--rcpt-rule", "*@greylist.example=450"])
        let ruled = try SMTPMailer(configuration: Self.configuration(port: rules.port))
        let unknown = try await ruled.send(try Self.envelope(to: "unknown@example.com").1)
        let greylisted = try await ruled.send(try Self.envelope(to: "someone@greylist.example").1)
        let accepted = try await ruled.send(try Self.envelope(to: "ok@example.com").1)
        #expect(unknown.failure?.stage == .rcptTo)
        guard case .permanentFailure = unknown, case .transientFailure = greylisted else {
            Issue.record("expected permanent then transient, got \(unknown), \(greylisted)")
            return
        }
        #expect(greylisted.failure?.stage == .rcptTo)
        #expect(accepted.isSent, "\(accepted)")
        #expect(try rules.messages().map(\.rcptTos) == [["ok@example.com"]])
        #expect(try rules.connectionCount() == 1)
    }

    @Test("Connection refused and a server that never greets are transient failures")
    func connectionFailures() async throws {
        let closedPort = try LoopbackSocket(listening: false)
        let refusedMailer = try SMTPMailer(configuration: Self.configuration(port: closedPort.port))
        let refused = try await refusedMailer.send(try Self.envelope().1)
        guard case .transientFailure(let failure) = refused, case .connectionFailed = failure.reason else {
            Issue.record("expected a transient connection failure, got \(refused)")
            return
        }
        #expect(failure.stage == .greeting)

        let silent = try LoopbackSocket(listening: true)
        var configuration = Self.configuration(port: silent.port)
        configuration.commandTimeout = .milliseconds(300)
        let waiting = try SMTPMailer(configuration: configuration)
        let started = ContinuousClock.now
        let timedOut = try await waiting.send(try Self.envelope().1)
        #expect(timedOut == .transientFailure(SMTPDeliveryFailure(reason: .timedOut, stage: .greeting)))
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test("Three messages over one mailer reuse one connection")
    func reuse() async throws {
        let server = try SMTPTestServer()
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        for index in 1...3 {
            let result = try await mailer.send(try Self.envelope(to: "user\(index)@example.com").1)
            #expect(result.isSent, "\(result)")
        }
        await mailer.close()
        #expect(try server.messages().map(\.rcptTos) == [["user1@example.com"], ["user2@example.com"], ["user3@example.com"]])
        #expect(try server.messages().map(\.connection) == [1, 1, 1])
        #expect(try server.connectionCount() == 1)
        #expect(await mailer.connectionsOpened == 1)
    }

    @Test("Concurrent sends are serialised over the one connection")
    func concurrentSends() async throws {
        let server = try SMTPTestServer()
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        let results = try await withThrowingTaskGroup(of: SMTPDeliveryResult.self) { group in
            for index in 1...4 {
                group.addTask { try await mailer.send(try Self.envelope(to: "c\(index)@example.com").1) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter(\.isSent).count == 4, "\(results)")
        #expect(try server.messages().count == 4)
        #expect(try server.connectionCount() == 1)
    }

    @Test("A server that closes after each message: every next send reconnects transparently")
    func reconnectAfterServerClose() async throws {
        let server = try SMTPTestServer(["--close-after-each"])
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        for index in 1...3 {
            let result = try await mailer.send(try Self.envelope(to: "r\(index)@example.com").1)
            #expect(result.isSent, "message \(index): \(result)")
        }
        #expect(try server.messages().map(\.connection) == [1, 2, 3])
        #expect(try server.connectionCount() == 3)
    }

    @Test("421 ends the session as a transient failure; the next send reconnects")
    func serviceClosing() async throws {
        let server = try SMTPTestServer(["--reply-plan", "421"])
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port))
        let first = try await mailer.send(try Self.envelope().1)
        guard case .transientFailure(let failure) = first, case .reply(let reply) = failure.reason else {
            Issue.record("expected a transient 421, got \(first)")
            return
        }
        #expect(reply.code == 421)
        let second = try await mailer.send(try Self.envelope().1)
        #expect(second.isSent, "\(second)")
        #expect(try server.connectionCount() == 2)
    }

    @Test("421 at MAIL on a reused connection: reconnected once within the same send")
    func transparentReconnect() async throws {
        let server = try SMTPTestServer(["--421-after-each"])
        let (logger, log) = CapturingLogHandler.logger()
        let mailer = try SMTPMailer(configuration: Self.configuration(port: server.port), logger: logger)
        for index in 1...3 {
            let result = try await mailer.send(try Self.envelope(to: "t\(index)@example.com").1)
            #expect(result.isSent, "message \(index): \(result)")
        }
        #expect(try server.messages().map(\.connection) == [1, 2, 3])
        #expect(await mailer.connectionsOpened == 3)
        #expect(log.text.components(separatedBy: "reconnecting once").count - 1 == 2)
    }

    @Test("No final reply within dataTimeout: transient, may have been delivered; next send reconnects")
    func dataTimeout() async throws {
        let server = try SMTPTestServer(["--reply-plan", "stall"])
        var configuration = Self.configuration(port: server.port)
        configuration.dataTimeout = .milliseconds(500)
        let mailer = try SMTPMailer(configuration: configuration)
        let started = ContinuousClock.now
        let first = try await mailer.send(try Self.envelope().1)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(first == .transientFailure(SMTPDeliveryFailure(reason: .timedOut, stage: .payload)))
        #expect(first.failure?.mayHaveBeenDelivered == true)
        let second = try await mailer.send(try Self.envelope().1)
        #expect(second.isSent, "\(second)")
        #expect(try server.connectionCount() == 2)
    }
}
