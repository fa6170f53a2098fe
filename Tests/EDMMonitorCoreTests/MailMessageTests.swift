import Foundation
import Testing
import EDMMonitorCore

@Suite("Message builder")
struct MailMessageBuilderTests {
    /// 2026-03-09T10:05:00Z.
    static let date = Date(timeIntervalSince1970: 1_773_050_700)

    @Test("RFC 5322 §3.3 dates: weekday, zero-padded day, offsets, leap day, pre-1970")
    func dates() {
        #expect(MailDateFormat.rfc5322(Self.date) == "Mon, 09 Mar 2026 10:05:00 +0000")
        #expect(MailDateFormat.rfc5322(Self.date, utcOffsetMinutes: 480) == "Mon, 09 Mar 2026 18:05:00 +0800")
        #expect(MailDateFormat.rfc5322(Self.date, utcOffsetMinutes: -630) == "Sun, 08 Mar 2026 23:35:00 -1030")
        #expect(MailDateFormat.rfc5322(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
        #expect(MailDateFormat.rfc5322(Date(timeIntervalSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 +0000")
        #expect(MailDateFormat.rfc5322(Date(timeIntervalSince1970: 0.999)) == "Thu, 01 Jan 1970 00:00:00 +0000")
    }

    @Test("Single text/plain part: exact bytes")
    func singlePart() throws {
        let message = MailMessage(
            from: MailMailbox(displayName: "EDM 营销", address: "news@mail.example.com"),
            to: [MailMailbox(displayName: "王小明", address: "wang.xiaoming@example.com")],
            subject: "Spring coupons",
            textBody: "Hi\n.hidden line\nBye",
            extraHeaders: [
                MailHeaderField(name: "List-Unsubscribe", value: "<mailto:unsub@mail.example.com?subject=T-7>"),
                MailHeaderField(name: "X-EDM-Task-ID", value: "T-20260309-0007"),
            ])
        let rendered = try message.render(MailRenderOptions(
            date: Self.date, messageIDLocalPart: "abc123", boundaryToken: "b1", eightBitMIME: false))
        let expected = "Date: Mon, 09 Mar 2026 10:05:00 +0000\r\n"
            + "From: =?UTF-8?B?RURNIOiQpemUgA==?= <news@mail.example.com>\r\n"
            + "To: =?UTF-8?B?546L5bCP5piO?= <wang.xiaoming@example.com>\r\n"
            + "Subject: Spring coupons\r\n"
            + "Message-ID: <abc123@mail.example.com>\r\n"
            + "MIME-Version: 1.0\r\n"
            + "List-Unsubscribe: <mailto:unsub@mail.example.com?subject=T-7>\r\n"
            + "X-EDM-Task-ID: T-20260309-0007\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n"
            + "Content-Transfer-Encoding: 7bit\r\n"
            + "\r\n"
            + "Hi\r\n.hidden line\r\nBye"
        #expect(rendered.octets == Array(expected.utf8))
        #expect(rendered.messageID == "<abc123@mail.example.com>")
        #expect(rendered.requires8BitMIME == false)
        #expect(rendered.dataPayload == Array((expected.replacingOccurrences(of: "\r\n.hidden", with: "\r\n..hidden") + "\r\n.\r\n").utf8))
    }

    @Test("multipart/alternative: text then html, boundary avoided, 8bit flagged")
    func multipart() throws {
        let message = MailMessage(
            from: MailMailbox(address: "news@Example.COM"),
            to: [MailMailbox(address: "a@example.org")],
            subject: "新品上市",
            textBody: "Text with =_edm_t1 inside\n王小明",
            htmlBody: "<p>王小明</p>")
        let rendered = try message.render(MailRenderOptions(
            date: Self.date, messageIDLocalPart: "id1", boundaryToken: "t1", eightBitMIME: true))
        let text = String(decoding: rendered.octets, as: UTF8.self)
        let expectedTail = "Content-Type: multipart/alternative;\r\n boundary=\"=_edm_t1_1\"\r\n"
            + "\r\n"
            + "--=_edm_t1_1\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n"
            + "Content-Transfer-Encoding: 8bit\r\n"
            + "\r\n"
            + "Text with =_edm_t1 inside\r\n王小明\r\n"
            + "--=_edm_t1_1\r\n"
            + "Content-Type: text/html; charset=utf-8\r\n"
            + "Content-Transfer-Encoding: 8bit\r\n"
            + "\r\n"
            + "<p>王小明</p>\r\n"
            + "--=_edm_t1_1--\r\n"
        #expect(text.hasSuffix(expectedTail))
        #expect(text.contains("Message-ID: <id1@example.com>\r\n"))
        #expect(text.contains("Subject: =?UTF-8?B?5paw5ZOB5LiK5biC?=\r\n"))
        #expect(rendered.requires8BitMIME)
    }

    @Test("Without 8BITMIME, CJK parts are base64 and the message is 7-bit clean")
    func sevenBitClean() throws {
        let message = MailMessage(from: MailMailbox(address: "n@example.com"), to: [MailMailbox(address: "a@example.org")],
                                  subject: "x", textBody: "王小明您好", htmlBody: "<p>王小明您好</p>")
        let rendered = try message.render(MailRenderOptions(date: Self.date, messageIDLocalPart: "i", boundaryToken: "b", eightBitMIME: false))
        #expect(rendered.octets.allSatisfy { $0 < 0x80 })
        #expect(!rendered.requires8BitMIME)
        let text = String(decoding: rendered.octets, as: UTF8.self)
        #expect(text.contains("boundary=\"=_edm_b\""))
        #expect(text.contains("Content-Transfer-Encoding: base64\r\n\r\n546L5bCP5piO5oKo5aW9\r\n--=_edm_b\r\n"))
    }

    @Test("Builder refusals: reserved headers, bad tokens, no recipients, bad sender")
    func refusals() {
        let base = MailMessage(from: MailMailbox(address: "n@example.com"), to: [MailMailbox(address: "a@example.org")],
                               subject: "x", textBody: "y")
        let options = MailRenderOptions(date: Self.date, messageIDLocalPart: "i", boundaryToken: "b", eightBitMIME: false)
        var reserved = base
        reserved.extraHeaders = [MailHeaderField(name: "message-id", value: "<x@y>")]
        #expect(throws: MailFormatError.reservedField("message-id")) { try reserved.render(options) }
        var empty = base
        empty.to = []
        #expect(throws: MailFormatError.noRecipients) { try empty.render(options) }
        var badToken = options
        badToken.messageIDLocalPart = "a b"
        #expect(throws: MailFormatError.invalidToken("a b")) { try base.render(badToken) }
        var badSender = base
        badSender.from = MailMailbox(address: "nobody")
        #expect(throws: MailFormatError.invalidAddress("nobody")) { try badSender.render(options) }
        var injected = base
        injected.extraHeaders = [MailHeaderField(name: "X-EDM-Task-ID", value: "1\r\nBcc: x@y")]
        #expect(throws: MailFormatError.lineBreakInHeader(field: "X-EDM-Task-ID")) { try injected.render(options) }
    }

    @Test("Default random tokens are valid and differ")
    func randomTokens() throws {
        let first = MailRenderOptions.randomToken()
        #expect(first.count == 32)
        #expect(first != MailRenderOptions.randomToken())
        let message = MailMessage(from: MailMailbox(address: "n@example.com"), to: [MailMailbox(address: "a@example.org")],
                                  subject: "x", textBody: "y")
        let rendered = try message.render(MailRenderOptions(date: Self.date, eightBitMIME: false))
        #expect(rendered.messageID.hasSuffix("@example.com>"))
    }
}
