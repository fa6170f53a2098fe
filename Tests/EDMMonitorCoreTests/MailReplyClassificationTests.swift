import Foundation
import Testing
import EDMMonitorCore

/// One SMTP row of C09-replies.tsv.
struct C09Row: Sendable, CustomTestStringConvertible {
    var channel: String
    var reply: String
    var expectedClass: String
    var expectedAction: String
    var testDescription: String { reply }

    /// Every row of the fixture (`\r\n` in the file is a literal escape for a line break).
    static var all: [C09Row] {
        guard let text = try? Fixture.string("C09-replies.tsv") else { return [] }
        return text.split(separator: "\n").dropFirst().map { line in
            let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return C09Row(channel: cells[0], reply: cells[1].replacingOccurrences(of: "\\r\\n", with: "\r\n"),
                          expectedClass: cells[2], expectedAction: cells[3])
        }
    }

    /// The class the row's columns 3–4 call for.
    var expected: DeliveryFailureClass {
        if expectedClass.hasPrefix("temporary (whole session") { return .session }
        if expectedClass.hasPrefix("temporary") {
            if let seconds = expectedAction.split(separator: " ").compactMap({ Double($0) }).first { return .temporary(retryAfterSeconds: seconds) }
            return .temporary(retryAfterSeconds: nil)
        }
        if expectedClass.hasPrefix("provider/configuration") { return .serviceConfiguration }
        if expectedAction.contains("suppress address") { return .hardBounce }
        return .permanent
    }
}

@Suite("SMTP reply classification: reference case C09")
struct MailReplyClassificationTests {
    @Test("fixture rows") func fixture() {
        #expect(C09Row.all.filter { $0.channel == "smtp" }.count == 10)
    }

    @Test("every SMTP row of C09 (a multi-line reply is one reply)", arguments: C09Row.all.filter { $0.channel == "smtp" })
    func smtpRow(_ row: C09Row) throws {
        var parser = SMTPReplyParser()
        let replies = try parser.feed(Array((row.reply + "\r\n").utf8))
        #expect(replies.count == 1)
        let reply = try #require(replies.first)
        for stage in [SMTPConversationStage.mailFrom, .rcptTo, .data, .payload] {
            #expect(SMTPReplyClassification.classify(reply, at: stage) == row.expected, "at \(stage)")
        }
    }

    @Test("a 4xx or 5xx while setting the session up is about the session or the service, never the recipient")
    func setUpStages() throws {
        #expect(SMTPReplyClassification.classify(SMTPReply(code: 454, lines: ["TLS not available"]), at: .startTLS) == .session)
        #expect(SMTPReplyClassification.classify(SMTPReply(code: 554, lines: ["no service"]), at: .greeting) == .serviceConfiguration)
        #expect(SMTPReplyClassification.classify(
            SMTPReply(code: 550, enhancedStatus: SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 1), lines: ["x"]), at: .payload) == .hardBounce)
        #expect(SMTPReplyClassification.classify(SMTPReply(code: 550, lines: ["User unknown"]), at: .rcptTo) == .permanent,
                "without an enhanced status code a 5xx is not taken for a hard bounce")
    }

    @Test("retry hints in words", arguments: [
        ("Greylisted, retry in 300 seconds", 300.0), ("please try again in 5 minutes", 300), ("Retry after 2 min", 120),
        ("try again later", nil), ("retry in many seconds", nil),
    ] as [(String, Double?)])
    func hints(_ text: String, _ seconds: Double?) {
        #expect(SMTPReplyClassification.retryHint(in: text) == seconds)
    }
}
