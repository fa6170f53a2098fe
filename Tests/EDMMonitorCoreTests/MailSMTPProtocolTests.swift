import Foundation
import Testing
import EDMMonitorCore

@Suite("SMTP replies")
struct SMTPReplyParserTests {
    @Test("Multi-line reply is returned only when complete, even when split mid-line")
    func multiline() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.feed(Array("250-mx.example.com Hello\r\n250-PIPEL".utf8)).isEmpty)
        #expect(parser.hasPartialReply)
        let replies = try parser.feed(Array("INING\r\n250-SIZE 35882577\r\n250 8BITMIME\r\n".utf8))
        #expect(replies == [SMTPReply(code: 250, lines: ["mx.example.com Hello", "PIPELINING", "SIZE 35882577", "8BITMIME"])])
        #expect(!parser.hasPartialReply)
    }

    @Test("Several replies in one read (pipelining), code-only line, bare LF tolerated")
    func several() throws {
        var parser = SMTPReplyParser()
        let replies = try parser.feed(Array("250 2.1.0 Ok\r\n250\r\n354 End data with <CR><LF>.<CR><LF>\n".utf8))
        #expect(replies.map(\.code) == [250, 250, 354])
        #expect(replies[0].enhancedStatus == SMTPEnhancedStatusCode(statusClass: 2, subject: 1, detail: 0))
        #expect(replies[0].lines == ["Ok"])
        #expect(replies[1].lines == [""])
        #expect(replies[2].category == .positiveIntermediate)
    }

    @Test("Enhanced status codes: taken from each line, only when the class matches")
    func enhanced() throws {
        var parser = SMTPReplyParser()
        let reply = try #require(try parser.feed(Array("451-4.7.1 Greylisted, please\r\n451 4.7.1 try again later\r\n".utf8)).first)
        #expect(reply.enhancedStatus?.description == "4.7.1")
        #expect(reply.lines == ["Greylisted, please", "try again later"])
        #expect(reply.isTransientFailure)
        let mismatch = try #require(try parser.feed(Array("550 2.0.0 odd\r\n".utf8)).first)
        #expect(mismatch.enhancedStatus == nil)
        #expect(mismatch.lines == ["2.0.0 odd"])
        let user = try #require(try parser.feed(Array("550 5.1.1 <x@example.com>: Recipient address rejected\r\n".utf8)).first)
        #expect(user.enhancedStatus == SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 1))
        #expect(user.isPermanentFailure)
        #expect(SMTPEnhancedStatusCode("5.1.10")?.detail == 10)
        #expect(SMTPEnhancedStatusCode("3.1.1") == nil)
        #expect(SMTPEnhancedStatusCode("5.1") == nil)
        #expect(SMTPEnhancedStatusCode("5.1.1000") == nil)
    }

    @Test("Categories follow the first digit (RFC 5321 §4.2.1)")
    func categories() {
        #expect(SMTPReply(code: 221, lines: ["bye"]).category == .positiveCompletion)
        #expect(SMTPReply(code: 334, lines: [""]).category == .positiveIntermediate)
        #expect(SMTPReply(code: 421, lines: [""]).category == .transientNegative)
        #expect(SMTPReply(code: 554, lines: [""]).category == .permanentNegative)
    }

    @Test("Malformed lines, code changes and runaway lines are errors")
    func malformed() throws {
        var parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.malformedLine("hello")) { try parser.feed(Array("hello\r\n".utf8)) }
        parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.malformedLine("25")) { try parser.feed(Array("25\r\n".utf8)) }
        parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.malformedLine("250_x")) { try parser.feed(Array("250_x\r\n".utf8)) }
        parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.malformedLine("650 x")) { try parser.feed(Array("650 x\r\n".utf8)) }
        parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.inconsistentCode(expected: 250, found: 251)) {
            try parser.feed(Array("250-a\r\n251 b\r\n".utf8))
        }
        parser = SMTPReplyParser()
        #expect(throws: SMTPReplyParseError.lineTooLong(octets: SMTPReplyParser.maxLineOctets)) {
            try parser.feed(Array(repeating: UInt8(ascii: "2"), count: SMTPReplyParser.maxLineOctets + 1))
        }
    }
}

@Suite("SMTP capabilities and commands")
struct SMTPCommandTests {
    @Test("EHLO capabilities: 8BITMIME, SMTPUTF8, STARTTLS, PIPELINING, SIZE, AUTH (both forms)")
    func capabilities() throws {
        var parser = SMTPReplyParser()
        let reply = try #require(try parser.feed(Array((
            "250-smtp.example.com at your service\r\n250-SIZE 35882577\r\n250-8bitmime\r\n250-STARTTLS\r\n"
            + "250-AUTH LOGIN PLAIN XOAUTH2\r\n250-AUTH=LOGIN\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n").utf8)).first)
        let capabilities = SMTPCapabilities(ehloReply: reply)
        #expect(capabilities.eightBitMIME)
        #expect(capabilities.smtpUTF8)
        #expect(capabilities.startTLS)
        #expect(capabilities.pipelining)
        #expect(capabilities.size)
        #expect(capabilities.maxMessageSize == 35_882_577)
        #expect(capabilities.authMechanisms == ["LOGIN", "PLAIN", "XOAUTH2"])
        #expect(!capabilities.supports("smtp.example.com"))

        let bare = SMTPCapabilities(ehloReply: SMTPReply(code: 250, lines: ["mx.example.org", "SIZE"]))
        #expect(bare.size && bare.maxMessageSize == nil)
        #expect(!bare.eightBitMIME && bare.authMechanisms.isEmpty)
        #expect(SMTPCapabilities(ehloReply: SMTPReply(code: 250, lines: ["x", "SIZE 0"])).maxMessageSize == nil)
    }

    @Test("Command bytes are exact and end in CRLF")
    func bytes() throws {
        func text(_ command: SMTPCommand) -> String { String(decoding: command.octets, as: UTF8.self) }
        #expect(text(try .ehlo("client.example.com")) == "EHLO client.example.com\r\n")
        #expect(text(try .helo("[192.0.2.1]")) == "HELO [192.0.2.1]\r\n")
        #expect(text(try .mailFrom("bounce@example.com")) == "MAIL FROM:<bounce@example.com>\r\n")
        #expect(text(try .mailFrom("bounce@example.com", size: 1234, eightBitMIME: true))
            == "MAIL FROM:<bounce@example.com> SIZE=1234 BODY=8BITMIME\r\n")
        #expect(text(try .mailFrom("")) == "MAIL FROM:<>\r\n")
        #expect(text(try .mailFrom("王@例子.cn", smtpUTF8: true)) == "MAIL FROM:<王@例子.cn> SMTPUTF8\r\n")
        #expect(text(try .rcptTo("a@example.org")) == "RCPT TO:<a@example.org>\r\n")
        #expect(text(.data) == "DATA\r\n")
        #expect(text(.rset) == "RSET\r\n")
        #expect(text(.noop) == "NOOP\r\n")
        #expect(text(.quit) == "QUIT\r\n")
        #expect(text(.startTLS) == "STARTTLS\r\n")
        #expect(text(.authLogin) == "AUTH LOGIN\r\n")
    }

    @Test("AUTH PLAIN is base64 of \\0user\\0pass (RFC 4616); AUTH LOGIN steps; logs redacted")
    func auth() throws {
        let plain = try SMTPCommand.authPlain(username: "tim", password: "tanstaaftanstaaf")
        #expect(plain.octets == Array("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n".utf8))  // RFC 4616 §4 example
        #expect(plain.description == "AUTH PLAIN <redacted>")
        #expect(try SMTPCommand.authPlain(username: "u", password: "p", authorizationIdentity: "a").octets
            == Array("AUTH PLAIN YQB1AHA=\r\n".utf8))
        #expect(SMTPCommand.authLoginResponse("user@example.com").octets == Array("dXNlckBleGFtcGxlLmNvbQ==\r\n".utf8))
        #expect(SMTPCommand.authLoginResponse("密码").octets == Array("5a+G56CB\r\n".utf8))
        #expect(SMTPCommand.authLoginResponse("secret").description == "<redacted>")
        #expect(throws: SMTPCommandError.nulInCredentials) { try SMTPCommand.authPlain(username: "a\0b", password: "p") }
    }

    @Test("CR, LF, spaces and angle brackets in arguments are refused (command injection)")
    func injection() {
        for address in ["a@b.com>\r\nRCPT TO:<victim@x.com", "a@b.com\n", "a@b.com\r", "a b@c.com", "<a@b.com>", "a@b.com>", ""] {
            #expect(throws: SMTPCommandError.unsafeArgument(address)) { try SMTPCommand.rcptTo(address) }
        }
        #expect(throws: SMTPCommandError.unsafeArgument("a@b.com>\r\nDATA")) { try SMTPCommand.mailFrom("a@b.com>\r\nDATA") }
        #expect(throws: SMTPCommandError.unsafeArgument("host\r\nQUIT")) { try SMTPCommand.ehlo("host\r\nQUIT") }
        #expect(throws: SMTPCommandError.unsafeArgument("")) { try SMTPCommand.helo("") }
        #expect(throws: SMTPCommandError.nonASCIIAddressWithoutSMTPUTF8("王@例子.cn")) { try SMTPCommand.rcptTo("王@例子.cn") }
    }
}
