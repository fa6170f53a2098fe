import Foundation
import Testing
import EDMMonitorCore

/// Parses one scripted server reply.
private func reply(_ text: String) throws -> SMTPReply {
    var parser = SMTPReplyParser()
    let replies = try parser.feed(Array(text.utf8))
    return try #require(replies.count == 1 ? replies.first : nil)
}

private func send(_ text: String) -> SMTPConversationAction { .send(Array(text.utf8)) }

/// The sans-IO conversation with PIPELINING (RFC 2920) and SMTPUTF8 (RFC 6531).
@Suite("SMTP client conversation: PIPELINING and SMTPUTF8")
struct SMTPPipeliningConversationTests {
    static let payload = Array("Subject: x\r\n\r\nHi\r\n.\r\n".utf8)

    static func envelope(_ recipient: String) -> SMTPEnvelope {
        SMTPEnvelope(reversePath: "bounce@bounce.example.com", recipient: recipient, payload: payload, requires8BitMIME: false)
    }

    static func ready(_ ehlo: String = "250-mx2.example.net\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n") throws -> SMTPClientConversation {
        var conversation = try SMTPClientConversation(configuration: SMTPClientConfiguration(clientDomain: "sender.example.com", tls: .plaintext))
        _ = try conversation.receive(reply("220 mx2.example.net ESMTP\r\n"))
        _ = try conversation.receive(reply(ehlo))
        return conversation
    }

    @Test("C26 at the conversation: one group, replies in order, no body after a refused RCPT, lone dot after a blind 354")
    func c26() throws {
        var conversation = try Self.ready()
        let group = "MAIL FROM:<bounce@bounce.example.com>\r\nRCPT TO:<alice.wang@example.org>\r\nDATA\r\n"
        // m1: sent.
        #expect(try conversation.begin(Self.envelope("alice.wang@example.org")) == send(group))
        #expect(conversation.stage == .mailFrom)
        #expect(try conversation.receive(reply("250 2.1.0 Ok\r\n")) == .readReply)
        #expect(conversation.stage == .rcptTo)
        #expect(try conversation.receive(reply("250 2.1.5 Ok\r\n")) == .readReply)
        #expect(try conversation.receive(reply("354 End data\r\n")) == .send(Self.payload))
        let queued = try reply("250 2.0.0 Ok: queued as 51A0000001\r\n")
        #expect(try conversation.receive(queued) == .finished(.sent(queued)))

        // m2: RCPT refused, DATA refused: the outcome is the RCPT's 550, then RSET before the next group.
        _ = try conversation.begin(Self.envelope("no.such.user@example.org"))
        _ = try conversation.receive(reply("250 2.1.0 Ok\r\n"))
        let unknown = try reply("550 5.1.1 <no.such.user@example.org>: Recipient address rejected: User unknown\r\n")
        #expect(try conversation.receive(unknown) == .readReply)
        #expect(try conversation.receive(reply("554 5.5.1 Error: no valid recipients\r\n")) == .finished(.permanentFailure(unknown, stage: .rcptTo)))
        #expect(try conversation.begin(Self.envelope("li.hua@example.net")) == send("RSET\r\n"))

        // m3: greylisted RCPT, DATA accepted anyway: only "." goes out; its 554 is not a second outcome.
        #expect(try conversation.receive(reply("250 2.0.0 Ok\r\n"))
            == send("MAIL FROM:<bounce@bounce.example.com>\r\nRCPT TO:<li.hua@example.net>\r\nDATA\r\n"))
        _ = try conversation.receive(reply("250 2.1.0 Ok\r\n"))
        let greylisted = try reply("451 4.7.1 <li.hua@example.net>: Recipient address rejected: Greylisted, retry in 300 seconds\r\n")
        #expect(try conversation.receive(greylisted) == .readReply)
        #expect(try conversation.receive(reply("354 End data\r\n")) == send(".\r\n"))
        #expect(conversation.stage == .data)
        #expect(try conversation.receive(reply("554 5.5.1 Error: no valid recipients\r\n")) == .finished(.transientFailure(greylisted, stage: .rcptTo)))

        // m4: a three-line 550 5.7.1 is one reply; no RSET was needed after the lone dot.
        #expect(try conversation.begin(Self.envelope("zhang.wei@example.com"))
            == send("MAIL FROM:<bounce@bounce.example.com>\r\nRCPT TO:<zhang.wei@example.com>\r\nDATA\r\n"))
        _ = try conversation.receive(reply("250 2.1.0 Ok\r\n"))
        let policy = try reply("550-5.7.1 <zhang.wei@example.com>: Recipient address rejected:\r\n550-5.7.1 this mailbox does not accept bulk mail from your network.\r\n550 5.7.1 See https://postmaster.example.com/policy for details.\r\n")
        #expect(policy.lines.count == 3)
        #expect(try conversation.receive(policy) == .readReply)
        #expect(try conversation.receive(reply("554 5.5.1 Error: no valid recipients\r\n")) == .finished(.permanentFailure(policy, stage: .rcptTo)))
        #expect(SMTPReplyClassification.classify(policy, at: .rcptTo) == .permanent)
        #expect(try conversation.begin(Self.envelope("bob.li@example.net")) == send("RSET\r\n"))
    }

    @Test("a refused MAIL in a group: its reply is the outcome, the RCPT and DATA replies are consumed")
    func refusedMail() throws {
        var conversation = try Self.ready()
        _ = try conversation.begin(Self.envelope("a@example.org"))
        let refused = try reply("550 5.7.1 Sender blocked\r\n")
        #expect(try conversation.receive(refused) == .readReply)
        #expect(try conversation.receive(reply("503 5.5.1 Error: need MAIL command\r\n")) == .readReply)
        #expect(try conversation.receive(reply("503 5.5.1 Error: need RCPT command\r\n")) == .finished(.permanentFailure(refused, stage: .mailFrom)))
        #expect(conversation.isReady)
    }

    @Test("SMTPUTF8: a non-ASCII local part goes out with MAIL … SMTPUTF8 only when offered (RFC 6531)")
    func smtpUTF8() throws {
        var offered = try Self.ready("250-mx.example.net\r\n250 SMTPUTF8\r\n")
        #expect(try offered.begin(Self.envelope("用户@xn--fsqu00a.xn--4rr70v"))
            == send("MAIL FROM:<bounce@bounce.example.com> SMTPUTF8\r\n"))
        #expect(try offered.receive(reply("250 2.1.0 Ok\r\n")) == send("RCPT TO:<用户@xn--fsqu00a.xn--4rr70v>\r\n"))

        var plain = try Self.ready("250-mx.example.net\r\n250 8BITMIME\r\n")
        #expect(try plain.begin(Self.envelope("用户@xn--fsqu00a.xn--4rr70v"))
            == .finished(.localFailure(.invalidArgument(.nonASCIIAddressWithoutSMTPUTF8("用户@xn--fsqu00a.xn--4rr70v")))))
        var ascii = try Self.ready("250-mx.example.net\r\n250 SMTPUTF8\r\n")
        #expect(try ascii.begin(Self.envelope("user@xn--bcher-kva.example")) == send("MAIL FROM:<bounce@bounce.example.com>\r\n"),
                "SMTPUTF8 only when an address needs it")
    }
}
