@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing

/// The pooled SMTP mailer against a scripted peer playing reference cases C25 and C26, and
/// the reply classification of C09 seen through the mailer.
@Suite("SMTP pool, PIPELINING and reply classes against a scripted peer", .timeLimit(.minutes(1)))
struct SMTPPoolTests {
    static func email(_ subtask: String, to recipient: String) -> OutgoingEmail {
        OutgoingEmail(fromAddress: "bounce+\(subtask)@bounce.example.com", fromName: nil, toAddress: recipient, toName: nil,
                      subject: "Spring news \(subtask)", textBody: "Hello\n.dot line\n", htmlBody: nil, headers: [:],
                      taskID: UUID(), subtaskID: UUID())
    }

    static func mailer(_ peer: ScriptedSMTPPeer, clock: ManualClock, maxConnections: Int = 4,
                       maxMessagesPerConnection: Int? = nil) throws -> SMTPServiceMailer {
        try SMTPServiceMailer(settings: SMTPSettings(host: "127.0.0.1", port: peer.port, heloName: "sender.example.com"),
                              senderAddress: "news@sender.example.com", maxConnections: maxConnections,
                              maxMessagesPerConnection: maxMessagesPerConnection, clock: clock)
    }

    /// C25 with the idle gap before m5 below the 240 s retirement (the 421 left on the idle
    /// connection is found at reuse) and above it (the pool retires the connection itself).
    @Test("C25: one pooled connection, many messages — RSET once, 421 retires the connection, nothing deferred",
          arguments: [60.0, 701.0])
    func c25(idleGap: Double) async throws {
        var script = ScriptedSMTPPeer.Script()
        script.messagesPerConnection = 3
        script.rcptReplies["no.such.user@example.org"] = "550 5.1.1 <no.such.user@example.org>: Recipient address rejected: User unknown"
        script.queueIDs = ["7C1E20A001", "7C1E20A0F3", "9A0B11C2D4", "9A0B11C3E8"]
        script.closeAfterFirstMessage[2] = "421 4.4.2 mx.example.net Error: timeout exceeded"
        let peer = try ScriptedSMTPPeer(script)
        let clock = ManualClock()
        let mailer = try Self.mailer(peer, clock: clock)

        var outcomes: [MailerOutcome] = []
        for (subtask, recipient) in [("S-001", "alice.wang@example.org"), ("S-002", "no.such.user@example.org"),
                                     ("S-003", "bob.li@example.net"), ("S-004", "carol@example.com")] {
            outcomes.append(await mailer.send(Self.email(subtask, to: recipient)))
            clock.advance(by: 1)
        }
        clock.advance(by: idleGap)
        outcomes.append(await mailer.send(Self.email("S-005", to: "dave@example.net")))
        await mailer.close()

        #expect(outcomes[0] == .sent(messageID: "7C1E20A001"))
        guard case .hardBounce(let reason) = outcomes[1] else { Issue.record("m2 must be a hard bounce: \(outcomes[1])"); return }
        #expect(reason.contains("550 5.1.1"), "recorded from the RCPT reply: \(reason)")
        #expect(outcomes[2] == .sent(messageID: "7C1E20A0F3"))
        #expect(outcomes[3] == .sent(messageID: "9A0B11C2D4"), "m4 goes out at once on a new connection")
        #expect(outcomes[4] == .sent(messageID: "9A0B11C3E8"), "m5 is not deferred by the idle connection's 421")

        let record = peer.record
        #expect(record.connections == 3)
        #expect(record.messages.map(\.connection) == [1, 1, 2, 3])
        #expect(record.messages.map(\.recipients) == [["alice.wang@example.org"], ["bob.li@example.net"], ["carol@example.com"], ["dave@example.net"]])
        #expect(record.resets == 1)
        #expect(record.replies503 == 0)
        #expect(record.noops == 0, "no NOOP health check before reuse")
        let connection1 = peer.commands(on: 1).map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        #expect(connection1 == [
            "EHLO sender.example.com",
            "MAIL FROM:<bounce+S-001@bounce.example.com>", "RCPT TO:<alice.wang@example.org>", "DATA",
            "MAIL FROM:<bounce+S-002@bounce.example.com>", "RCPT TO:<no.such.user@example.org>", "RSET",
            "MAIL FROM:<bounce+S-003@bounce.example.com>", "RCPT TO:<bob.li@example.net>", "DATA",
            "MAIL FROM:<bounce+S-004@bounce.example.com>",
        ], "no DATA for m2, RSET before the next MAIL, nothing after the 421")
        #expect(!peer.commands(on: 2).contains { $0.hasPrefix("MAIL FROM:<bounce+S-005") }, "m5 never goes onto the closed connection")
        #expect(await mailer.pool.learnedMessageLimit == 3, "the pool remembers 3 messages per connection")
    }

    @Test("a learnt limit is kept: the pool ends connections after 3 messages itself, and a 452 4.4.5 teaches it too")
    func learntLimit() async throws {
        var script = ScriptedSMTPPeer.Script()
        script.messagesPerConnection = 3
        let peer = try ScriptedSMTPPeer(script)
        let mailer = try Self.mailer(peer, clock: ManualClock())
        for index in 1...7 {
            #expect(await mailer.send(Self.email("S-\(index)", to: "r\(index)@example.org")).failureReason == nil)
        }
        await mailer.close()
        #expect(peer.record.messages.map(\.connection) == [1, 1, 1, 2, 2, 2, 3])
        #expect(peer.commands(on: 2).last == "QUIT", "the second connection is retired by the client at the limit")
        #expect(peer.commands(on: 2).filter { $0.hasPrefix("MAIL") }.count == 3)

        var frappe = ScriptedSMTPPeer.Script()
        frappe.messagesPerConnection = 2
        frappe.overLimitReply = "452 4.4.5 Too many messages on this connection"
        let keeper = try ScriptedSMTPPeer(frappe)
        let second = try Self.mailer(keeper, clock: ManualClock())
        for index in 1...3 {
            #expect(await second.send(Self.email("S-\(index)", to: "r\(index)@example.org")).failureReason == nil)
        }
        await second.close()
        #expect(keeper.record.messages.map(\.connection) == [1, 1, 2])
        #expect(keeper.commands(on: 1).suffix(2).map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
                == ["MAIL FROM:<bounce+S-3@bounce.example.com>", "QUIT"],
                "no other MAIL on the connection that answered 452 4.4.5")
        #expect(await second.pool.learnedMessageLimit == 2)
    }

    @Test("a 421 to RCPT on a reused connection: the message goes out at once on a fresh one, no attempt spent")
    func sessionEndsAtRecipient() async throws {
        var script = ScriptedSMTPPeer.Script()
        script.rcptRepliesOnConnection[1] = ["r2@example.org": "421 4.3.2 mx.example.net Service shutting down, closing connection"]
        let peer = try ScriptedSMTPPeer(script)
        let mailer = try Self.mailer(peer, clock: ManualClock())
        #expect(await mailer.send(Self.email("S-1", to: "r1@example.org")) == .sent(messageID: "Q000000000"))
        #expect(await mailer.send(Self.email("S-2", to: "r2@example.org")) == .sent(messageID: "Q000000001"))
        await mailer.close()
        #expect(peer.record.messages.map(\.connection) == [1, 2])
        #expect(await mailer.pool.learnedMessageLimit == nil, "a shutdown is no message limit")
    }

    @Test("configured limits: a new connection after maxMessagesPerConnection, and QUIT after 240 s idle (injected clock)")
    func configuredLimitsAndIdle() async throws {
        let peer = try ScriptedSMTPPeer()
        let clock = ManualClock()
        let mailer = try Self.mailer(peer, clock: clock, maxMessagesPerConnection: 3)
        for index in 1...4 { _ = await mailer.send(Self.email("S-\(index)", to: "r\(index)@example.org")) }
        #expect(peer.commands(on: 1).last == "QUIT", "the first connection is ended after its 3 messages")
        clock.advance(by: 239)
        await mailer.pool.retireIdleConnections()
        #expect(peer.commands(on: 2).last != "QUIT", "239 s idle is not yet too long")
        clock.advance(by: 1)
        await mailer.pool.retireIdleConnections()
        #expect(peer.commands(on: 2).last == "QUIT", "retired after 240 s idle without waiting for the next send")
        _ = await mailer.send(Self.email("S-5", to: "r5@example.org"))
        await mailer.close()
        #expect(peer.record.messages.map(\.connection) == [1, 1, 1, 2, 3])
        #expect(peer.record.noops == 0 && peer.record.resets == 0)
    }

    @Test("C26: PIPELINING — replies matched to commands, no body after a refused RCPT, a lone dot after a blind 354")
    func c26() async throws {
        var script = ScriptedSMTPPeer.Script()
        script.host = "mx2.example.net"
        script.extensions = ["PIPELINING", "SIZE 35882577", "8BITMIME", "ENHANCEDSTATUSCODES"]
        script.rcptReplies = [
            "no.such.user@example.org": "550 5.1.1 <no.such.user@example.org>: Recipient address rejected: User unknown",
            "li.hua@example.net": "451 4.7.1 <li.hua@example.net>: Recipient address rejected: Greylisted, retry in 300 seconds",
            "zhang.wei@example.com": "550-5.7.1 <zhang.wei@example.com>: Recipient address rejected:\r\n"
                + "550-5.7.1 this mailbox does not accept bulk mail from your network.\r\n"
                + "550 5.7.1 See https://postmaster.example.com/policy for details.",
        ]
        script.dataAcceptedDespite = ["li.hua@example.net"]
        script.queueIDs = ["51A0000001", "51A0000005"]
        let peer = try ScriptedSMTPPeer(script)
        let mailer = try Self.mailer(peer, clock: ManualClock())
        var outcomes: [MailerOutcome] = []
        for (subtask, recipient) in [("S-101", "alice.wang@example.org"), ("S-102", "no.such.user@example.org"),
                                     ("S-103", "li.hua@example.net"), ("S-104", "zhang.wei@example.com"), ("S-105", "bob.li@example.net")] {
            outcomes.append(await mailer.send(Self.email(subtask, to: recipient)))
        }
        await mailer.close()

        #expect(outcomes[0] == .sent(messageID: "51A0000001"))
        guard case .hardBounce(let bounce) = outcomes[1] else { Issue.record("m2: \(outcomes[1])"); return }
        #expect(bounce.contains("550 5.1.1") && !bounce.contains("554"), "\(bounce)")
        guard case .retryLater(let greylisted, let seconds) = outcomes[2] else { Issue.record("m3: \(outcomes[2])"); return }
        #expect(greylisted.contains("451 4.7.1") && seconds == 300)
        guard case .permanentFailure(let policy) = outcomes[3] else { Issue.record("m4 must be a permanent policy refusal: \(outcomes[3])"); return }
        #expect(policy.contains("550 5.7.1") && policy.contains("bulk mail") && policy.contains("postmaster.example.com/policy"))
        #expect(outcomes[4] == .sent(messageID: "51A0000005"), "replies stayed aligned after the 3-line reply")

        let record = peer.record
        #expect(record.connections == 1)
        #expect(record.messages.count == 2, "full bodies sent: 2")
        #expect(record.resets == 2)
        #expect(record.loneDots == 1)
        #expect(record.bodiesAfterRefusal == 0)
        #expect(record.unknownCommands == 0, "no body bytes read as commands after a refused DATA")
        #expect(record.replies503 == 0)
    }

    @Test("C09 through the mailer: every SMTP row becomes the right outcome", arguments: C09SMTPRow.all)
    func c09(_ row: C09SMTPRow) async throws {
        var script = ScriptedSMTPPeer.Script()
        script.rcptReplies["x@example.org"] = row.reply
        let peer = try ScriptedSMTPPeer(script)
        let mailer = try Self.mailer(peer, clock: ManualClock())
        let outcome = await mailer.send(Self.email("S-9", to: "x@example.org"))
        await mailer.close()
        switch (row.expected, outcome) {
        case ("session", .sessionFailure), ("temporary", .transientFailure), ("hard", .hardBounce), ("permanent", .permanentFailure),
             ("configuration", .serviceConfigurationFailure):
            break
        case ("temporary-300", .retryLater(_, 300)):
            break
        default:
            Issue.record("\(row.reply): expected \(row.expected), got \(outcome)")
        }
        #expect(peer.record.messages.isEmpty)
    }

    @Test("concurrent sends share at most maxConnections connections (aiosmtpd)")
    func concurrency() async throws {
        let server = try SMTPTestServer()
        let mailer = try SMTPServiceMailer(settings: SMTPSettings(host: "127.0.0.1", port: server.port, heloName: "sender.example.com"),
                                           senderAddress: "news@sender.example.com", maxConnections: 3)
        let outcomes = await withTaskGroup(of: MailerOutcome.self) { group in
            for index in 1...9 { group.addTask { await mailer.send(Self.email("S-\(index)", to: "c\(index)@example.org")) } }
            return await group.reduce(into: [MailerOutcome]()) { $0.append($1) }
        }
        await mailer.close()
        #expect(outcomes.allSatisfy { $0.failureReason == nil }, "\(outcomes)")
        #expect(try server.messages().count == 9)
        #expect(try server.connectionCount() <= 3)
        #expect(await mailer.pool.connectionsOpened <= 3)
    }

    @Test("closing the idle connections (another instance holds the service) ends them; the next send connects again (aiosmtpd)")
    func closeIdle() async throws {
        let server = try SMTPTestServer()
        let mailer = try SMTPServiceMailer(settings: SMTPSettings(host: "127.0.0.1", port: server.port, heloName: "sender.example.com"),
                                           senderAddress: "news@sender.example.com", maxConnections: 2)
        #expect(await mailer.send(Self.email("S-1", to: "a@example.org")).failureReason == nil)
        await mailer.closeIdleConnections()
        #expect(await mailer.send(Self.email("S-2", to: "b@example.org")).failureReason == nil)
        await mailer.close()
        #expect(try server.messages().map(\.connection) == [1, 2], "the second message reused a connection that should have ended")
        #expect(await mailer.pool.connectionsOpened == 2)
    }

    @Test("IDN recipient goes out in A-label form; a non-ASCII local part only to a server offering SMTPUTF8")
    func addresses() async throws {
        let peer = try ScriptedSMTPPeer()
        let mailer = try Self.mailer(peer, clock: ManualClock())
        #expect(await mailer.send(Self.email("S-1", to: "user@bücher.example")).failureReason == nil)
        let refused = await mailer.send(Self.email("S-2", to: "用户@例子.广告"))
        await mailer.close()
        #expect(peer.commands(on: 1).contains("RCPT TO:<user@xn--bcher-kva.example>"))
        guard case .invalidMessage(let reason) = refused else { Issue.record("\(refused)"); return }
        #expect(reason.contains("SMTPUTF8"))
        #expect(peer.record.messages.count == 1)
        #expect(!peer.commands(on: 1).contains { $0.contains("用户") }, "nothing of it was sent")

        var script = ScriptedSMTPPeer.Script()
        script.extensions.append("SMTPUTF8")
        let utf8Peer = try ScriptedSMTPPeer(script)
        let utf8Mailer = try Self.mailer(utf8Peer, clock: ManualClock())
        #expect(await utf8Mailer.send(Self.email("S-3", to: "用户@例子.广告")).failureReason == nil)
        await utf8Mailer.close()
        let mail = try #require(utf8Peer.commands(on: 1).first { $0.hasPrefix("MAIL") })
        #expect(mail.hasSuffix(" SMTPUTF8"))
        #expect(utf8Peer.commands(on: 1).contains("RCPT TO:<用户@xn--fsqu00a.xn--4rr70v>"))
        #expect(utf8Peer.record.messages.first?.data.contains("To: <用户@xn--fsqu00a.xn--4rr70v>") == true)
    }
}

/// One SMTP row of the C09 fixture with its expected outcome kind.
struct C09SMTPRow: Sendable, CustomTestStringConvertible {
    var reply: String
    var expected: String
    var testDescription: String { reply }

    static var all: [C09SMTPRow] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EDMMonitorCoreTests/Fixtures/C09-replies.tsv")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let cells = line.split(separator: "\t").map(String.init)
            guard cells[0] == "smtp" else { return nil }
            let (kind, action) = (cells[2], cells[3])
            let expected: String
            if kind.hasPrefix("temporary (whole session") { expected = "session" }
            else if kind.hasPrefix("temporary") { expected = action.contains("300 s") ? "temporary-300" : "temporary" }
            else if kind.hasPrefix("provider") { expected = "configuration" }
            else if action.contains("suppress address") { expected = "hard" }
            else { expected = "permanent" }
            return C09SMTPRow(reply: cells[1].replacingOccurrences(of: "\\r\\n", with: "\r\n"), expected: expected)
        }
    }
}
