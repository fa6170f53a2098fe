import Foundation
import Testing
import EDMMonitorCore

/// Parses one scripted server reply ("250-a\r\n250 b\r\n").
private func reply(_ text: String) throws -> SMTPReply {
    var parser = SMTPReplyParser()
    let replies = try parser.feed(Array(text.utf8))
    return try #require(replies.count == 1 ? replies.first : nil)
}

/// `.send` of the given ASCII text.
private func send(_ text: String) -> SMTPConversationAction { .send(Array(text.utf8)) }

private let ehloFull = "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
    + "250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
private let ehloAfterTLS = "250-mx.example.org Hello\r\n250-SIZE 10240000\r\n250-AUTH LOGIN\r\n250 8BITMIME\r\n"

@Suite("SMTP client conversation (sans-IO)")
struct SMTPConversationTests {
    static let payload = Array("Subject: x\r\n\r\nHi\r\n.\r\n".utf8)
    static let envelope = SMTPEnvelope(reversePath: "bounce+T7@mail.example.com", recipient: "wang.xiaoming@example.com",
                                       payload: payload, requires8BitMIME: true)

    @Test("Full session: EHLO, STARTTLS, EHLO again, AUTH LOGIN, MAIL/RCPT/DATA, 250 with queue id, QUIT")
    func fullSession() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .startTLSRequired,
            credentials: SMTPCredentials(username: "user@example.com", password: "secret")))
        #expect(try conversation.receive(reply("220 mx.example.org ESMTP\r\n")) == send("EHLO edm1.example.com\r\n"))
        #expect(try conversation.receive(reply(ehloFull)) == send("STARTTLS\r\n"))
        #expect(try conversation.receive(reply("220 2.0.0 Ready to start TLS\r\n")) == .upgradeToTLS)
        #expect(conversation.capabilities.startTLS)
        #expect(try conversation.tlsEstablished() == send("EHLO edm1.example.com\r\n"))
        #expect(conversation.capabilities == .empty)
        // After TLS only LOGIN is offered: two 334 steps.
        #expect(try conversation.receive(reply(ehloAfterTLS)) == send("AUTH LOGIN\r\n"))
        #expect(try conversation.receive(reply("334 VXNlcm5hbWU6\r\n")) == send("dXNlckBleGFtcGxlLmNvbQ==\r\n"))
        #expect(try conversation.receive(reply("334 UGFzc3dvcmQ6\r\n")) == send("c2VjcmV0\r\n"))
        let ready = try conversation.receive(reply("235 2.7.0 Authentication successful\r\n"))
        guard case .ready(let capabilities) = ready else {
            Issue.record("expected ready, got \(ready)")
            return
        }
        #expect(capabilities.eightBitMIME && !capabilities.startTLS)
        #expect(conversation.isTLSActive && conversation.isAuthenticated)

        #expect(try conversation.begin(Self.envelope)
            == send("MAIL FROM:<bounce+T7@mail.example.com> SIZE=\(Self.payload.count) BODY=8BITMIME\r\n"))
        #expect(try conversation.receive(reply("250 2.1.0 Ok\r\n")) == send("RCPT TO:<wang.xiaoming@example.com>\r\n"))
        #expect(try conversation.receive(reply("250 2.1.5 Ok\r\n")) == send("DATA\r\n"))
        #expect(try conversation.receive(reply("354 End data with <CR><LF>.<CR><LF>\r\n")) == .send(Self.payload))
        let final = try reply("250 2.0.0 Ok: queued as 4F2B1C3D9E\r\n")
        #expect(try conversation.receive(final) == .finished(.sent(final)))
        #expect(final.queueIdentifier == "4F2B1C3D9E")
        #expect(conversation.isReady)

        #expect(conversation.quit() == send("QUIT\r\n"))
        #expect(try conversation.receive(reply("221 2.0.0 Bye\r\n")) == .close)
    }

    @Test("EHLO refused with 502: HELO fallback, no extensions, AUTH PLAIN not possible without TLS")
    func heloFallback() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .startTLSIfOffered))
        _ = try conversation.receive(reply("220 old.example.net\r\n"))
        #expect(try conversation.receive(reply("502 5.5.1 Command not implemented\r\n")) == send("HELO edm1.example.com\r\n"))
        #expect(try conversation.receive(reply("250 old.example.net\r\n")) == .ready(.empty))
        // The message needs 8bit but HELO servers have no 8BITMIME: refused locally, still ready.
        #expect(try conversation.begin(Self.envelope) == .finished(.localFailure(.eightBitMIMENotOffered)))
        var sevenBit = Self.envelope
        sevenBit.requires8BitMIME = false
        #expect(try conversation.begin(sevenBit) == send("MAIL FROM:<bounce+T7@mail.example.com>\r\n"))
    }

    @Test("Implicit TLS with AUTH PLAIN initial response")
    func authPlain() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .implicit,
            credentials: SMTPCredentials(username: "tim", password: "tanstaaftanstaaf")))
        _ = try conversation.receive(reply("220 smtp.example.com\r\n"))
        #expect(try conversation.receive(reply(ehloFull)) == send("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"))
        let failed = try reply("535 5.7.8 Authentication credentials invalid\r\n")
        #expect(try conversation.receive(failed) == .sessionFailed(.permanentFailure(failed, stage: .auth)))
        #expect(throws: SMTPConversationError.notReady) { try conversation.begin(Self.envelope) }
        #expect(conversation.quit() == send("QUIT\r\n"))
    }

    @Test("Credentials are never sent without TLS unless allowed")
    func noPlaintextAuth() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .plaintext, credentials: SMTPCredentials(username: "u", password: "p")))
        _ = try conversation.receive(reply("220 x\r\n"))
        #expect(try conversation.receive(reply(ehloFull)) == .sessionFailed(.localFailure(.authRequiresTLS)))

        var allowed = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .plaintext, credentials: SMTPCredentials(username: "u", password: "p"),
            allowAuthWithoutTLS: true))
        _ = try allowed.receive(reply("220 x\r\n"))
        #expect(try allowed.receive(reply(ehloFull)) == send("AUTH PLAIN AHUAcA==\r\n"))
    }

    @Test("STARTTLS required but not offered, or refused")
    func startTLSRequired() throws {
        var notOffered = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "c.example.com", tls: .startTLSRequired))
        _ = try notOffered.receive(reply("220 x\r\n"))
        #expect(try notOffered.receive(reply(ehloAfterTLS)) == .sessionFailed(.localFailure(.startTLSNotOffered)))

        var refused = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "c.example.com", tls: .startTLSRequired))
        _ = try refused.receive(reply("220 x\r\n"))
        _ = try refused.receive(reply(ehloFull))
        let busy = try reply("454 4.7.0 TLS not available due to temporary reason\r\n")
        #expect(try refused.receive(busy) == .sessionFailed(.transientFailure(busy, stage: .startTLS)))

        var opportunistic = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "c.example.com", tls: .startTLSIfOffered))
        _ = try opportunistic.receive(reply("220 x\r\n"))
        _ = try opportunistic.receive(reply(ehloFull))
        #expect(try opportunistic.receive(busy) == .ready(SMTPCapabilities(ehloReply: reply(ehloFull))))
    }

    @Test("Rejected recipient: transient/permanent outcome, then RSET before the next MAIL")
    func rejectedRecipientThenReuse() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .plaintext))
        _ = try conversation.receive(reply("220 x\r\n"))
        _ = try conversation.receive(reply(ehloAfterTLS))
        _ = try conversation.begin(Self.envelope)
        _ = try conversation.receive(reply("250 2.1.0 Ok\r\n"))
        let greylisted = try reply("450-4.7.1 <wang.xiaoming@example.com>: Recipient address rejected:\r\n450 4.7.1 Greylisted, try again later\r\n")
        #expect(try conversation.receive(greylisted) == .finished(.transientFailure(greylisted, stage: .rcptTo)))
        #expect(greylisted.enhancedStatus?.description == "4.7.1")

        #expect(try conversation.begin(Self.envelope) == send("RSET\r\n"))
        #expect(try conversation.receive(reply("250 2.0.0 Ok\r\n"))
            == send("MAIL FROM:<bounce+T7@mail.example.com> SIZE=\(Self.payload.count) BODY=8BITMIME\r\n"))
        _ = try conversation.receive(reply("250 2.1.0 Ok\r\n"))
        let unknown = try reply("550 5.1.1 User unknown\r\n")
        #expect(try conversation.receive(unknown) == .finished(.permanentFailure(unknown, stage: .rcptTo)))

        // Final reply failure after the payload.
        #expect(try conversation.begin(Self.envelope) == send("RSET\r\n"))
        _ = try conversation.receive(reply("250 Ok\r\n"))
        _ = try conversation.receive(reply("250 Ok\r\n"))
        _ = try conversation.receive(reply("250 Ok\r\n"))
        #expect(try conversation.receive(reply("354 go\r\n")) == .send(Self.payload))
        let spam = try reply("554 5.7.1 Message rejected as spam\r\n")
        #expect(try conversation.receive(spam) == .finished(.permanentFailure(spam, stage: .payload)))
    }

    @Test("421 at any point ends the session; QUIT is not sent to a closing server")
    func serviceClosing() throws {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(
            clientDomain: "edm1.example.com", tls: .plaintext))
        _ = try conversation.receive(reply("220 x\r\n"))
        _ = try conversation.receive(reply(ehloAfterTLS))
        _ = try conversation.begin(Self.envelope)
        let closing = try reply("421 4.7.0 Too many connections, closing\r\n")
        #expect(try conversation.receive(closing) == .sessionFailed(.transientFailure(closing, stage: .mailFrom)))
        #expect(conversation.quit() == .close)
    }

    @Test("Greeting 554, SIZE limit, unsafe addresses, replies out of turn")
    func edgeCases() throws {
        var refused = try SMTPClientConversation(configuration: SMTPClientConfiguration(clientDomain: "c.example.com"))
        let noService = try reply("554 5.7.1 No SMTP service here\r\n")
        #expect(try refused.receive(noService) == .sessionFailed(.permanentFailure(noService, stage: .greeting)))

        var small = try SMTPClientConversation(configuration: SMTPClientConfiguration(clientDomain: "c.example.com", tls: .plaintext))
        _ = try small.receive(reply("220 x\r\n"))
        _ = try small.receive(reply("250-x\r\n250-SIZE 10\r\n250 8BITMIME\r\n"))
        #expect(try small.begin(Self.envelope) == .finished(.localFailure(.messageTooLarge(size: Self.payload.count, limit: 10))))
        var injected = Self.envelope
        injected.recipient = "a@b.com>\r\nRCPT TO:<c@d.com"
        #expect(try small.begin(injected) == .finished(.localFailure(.invalidArgument(.unsafeArgument(injected.recipient)))))
        #expect(small.isReady)
        #expect(throws: SMTPConversationError.unexpectedReply(code: 250)) { try small.receive(reply("250 x\r\n")) }

        #expect(throws: SMTPConversationError.invalidArgument(.unsafeArgument("bad host"))) {
            try SMTPClientConversation(configuration: SMTPClientConfiguration(clientDomain: "bad host"))
        }
    }

    @Test("End to end: rendered message through the conversation, payload is the dot-stuffed message")
    func renderedMessage() throws {
        let message = MailMessage(from: MailMailbox(displayName: "EDM", address: "news@mail.example.com"),
                                  to: [MailMailbox(address: "a@example.org")], subject: "Hi", textBody: ".\nbye")
        let rendered = try message.render(MailRenderOptions(date: Date(timeIntervalSince1970: 0), messageIDLocalPart: "m",
                                                            boundaryToken: "b", eightBitMIME: false))
        let envelope = SMTPEnvelope(reversePath: "bounce@mail.example.com", recipient: "a@example.org", message: rendered)
        #expect(envelope.payload.suffix(11) == Array("..\r\nbye\r\n.\r\n".utf8).suffix(11))
        #expect(!envelope.requires8BitMIME)
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(clientDomain: "c.example.com", tls: .plaintext))
        _ = try conversation.receive(reply("220 x\r\n"))
        _ = try conversation.receive(reply("250 x\r\n"))
        #expect(try conversation.begin(envelope) == send("MAIL FROM:<bounce@mail.example.com>\r\n"))
    }
}
