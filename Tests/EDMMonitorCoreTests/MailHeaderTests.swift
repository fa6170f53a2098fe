import Foundation
import Testing
import EDMMonitorCore

/// Physical lines of a header field (CRLF-separated, final CRLF removed).
private func physicalLines(_ field: String) -> [String] {
    var text = field
    if text.hasSuffix("\r\n") { text.removeLast() }  // "\r\n" is one Character
    return text.components(separatedBy: "\r\n")
}

/// `octets` as text when they are valid UTF-8, else `nil`.
private func validUTF8(_ octets: [UInt8]) -> String? {
    let text = String(decoding: octets, as: UTF8.self)
    return text.utf8.elementsEqual(octets) ? text : nil
}

/// The encoded-word tokens in a header field.
private func encodedWords(_ field: String) -> [Substring] {
    field.split(whereSeparator: { $0 == " " || $0 == "\r\n" || $0 == "\n" })
        .filter { $0.hasPrefix("=?") && $0.hasSuffix("?=") }
}

@Suite("RFC 2047 header encoding")
struct MailHeaderEncodingTests {
    /// C06: rendered subject 39 scalars / 99 UTF-8 octets.
    static func renderedC06Subject() throws -> String {
        let input = try Fixture.string("C06-subject-input.txt")
        let lines = input.split(separator: "\n")
        let template = try #require(lines.first { $0.hasPrefix("template: ") }).dropFirst("template: ".count)
        let name = try #require(lines.first { $0.hasPrefix("name: ") }).dropFirst("name: ".count)
        return template.replacingOccurrences(of: "{{name}}", with: name)
    }

    @Test("C06: rendered subject has the documented size")
    func c06Input() throws {
        let subject = try Self.renderedC06Subject()
        #expect(subject.unicodeScalars.count == 39)
        #expect(subject.utf8.count == 99)
    }

    @Test("C06: the five constraints hold for the encoded Subject")
    func c06Constraints() throws {
        let subject = try Self.renderedC06Subject()
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: subject)

        // 1. Decoding (dropping whitespace between adjacent words) gives the subject back.
        let decoded = try #require(MIMEEncodedWordDecoder.decodeHeaderField(field))
        #expect(decoded.name == "Subject")
        #expect(decoded.value == subject)
        // 2. Every encoded-word is ≤ 75 characters.
        let words = encodedWords(field)
        #expect(!words.isEmpty)
        #expect(words.allSatisfy { $0.count <= 75 })
        // 3. Every physical line is ≤ 76 characters (and so ≤ 998 octets).
        #expect(physicalLines(field).allSatisfy { $0.utf8.count <= 76 })
        // 4. Every encoded-word decodes alone to valid UTF-8.
        for word in words {
            let parsed = try #require(MIMEEncodedWord(parsing: word))
            #expect(validUTF8(parsed.octets) != nil, "word \(word) is not valid UTF-8 alone")
        }
        // 5. Folding is CRLF + space: every line break is followed by exactly one space, no bare LF/CR.
        let bytes = Array(field.utf8)
        for (index, byte) in bytes.enumerated() where byte == 0x0A {
            #expect(index > 0 && bytes[index - 1] == 0x0D)
            if index + 1 < bytes.count { #expect(bytes[index + 1] == 0x20) }
        }
        #expect(physicalLines(field).dropFirst().allSatisfy { $0.hasPrefix(" ") && !$0.hasPrefix("  ") })
        #expect(field.hasSuffix("\r\n"))
    }

    @Test("C06: greedy grapheme packing reproduces the canonical file (39/45/15 octets)")
    func c06Canonical() throws {
        let subject = try Self.renderedC06Subject()
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: subject)
        let canonical = try Fixture.string("C06-subject-expected-canonical.eml")
        #expect(field == canonical)
        #expect(physicalLines(field).map { $0.utf8.count } == [73, 73, 33])
        let octets = try encodedWords(field).map { try #require(MIMEEncodedWord(parsing: $0)).octets.count }
        #expect(octets == [39, 45, 15])
    }

    @Test("ASCII values stay plain; long ones fold before whitespace at 78")
    func asciiFolding() throws {
        #expect(try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: "Spring sale") == "Subject: Spring sale\r\n")
        #expect(try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: "") == "Subject: \r\n")
        let value = Array(repeating: "word", count: 40).joined(separator: " ")
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: value)
        let lines = physicalLines(field)
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" word") })
        #expect(MIMEEncodedWordDecoder.unfold(field) == "Subject: " + value)
        #expect(!field.contains("=?"))
    }

    @Test("ASCII with an unbreakable run over 998 octets is encoded instead")
    func asciiTooLongForFolding() throws {
        let value = String(repeating: "x", count: 1200)
        let field = try MIMEHeaderEncoding.encodeHeader(name: "X-Token", value: value)
        #expect(field.hasPrefix("X-Token: =?UTF-8?B?"))
        #expect(physicalLines(field).allSatisfy { $0.utf8.count <= 76 })
        #expect(MIMEEncodedWordDecoder.decodeHeaderField(field)?.value == value)
    }

    @Test("Text that looks like an encoded-word is encoded so it cannot be misread")
    func lookalikeEncodedWord() throws {
        let value = "Price =?UTF-8?B?5YWN6LS5?= today"
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: value)
        #expect(!field.contains("5YWN6LS5?= today"))
        #expect(MIMEEncodedWordDecoder.decodeHeaderField(field)?.value == value)
    }

    @Test("Grapheme clusters are never split across encoded-words")
    func graphemesKeptWhole() throws {
        // Family emoji: 7 scalars, 25 octets; flags: 8 octets each.
        let family = "👨‍👩‍👧‍👦"
        let value = String(repeating: family + "🇨🇳", count: 8)
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: value)
        for word in encodedWords(field) {
            let octets = try #require(MIMEEncodedWord(parsing: word)).octets
            let text = try #require(validUTF8(octets))
            #expect(text.allSatisfy { $0 == Character(family) || $0 == "🇨🇳" })
            #expect(word.count <= 75)
        }
        #expect(MIMEEncodedWordDecoder.decodeHeaderField(field)?.value == value)
        #expect(physicalLines(field).allSatisfy { $0.utf8.count <= 76 })
    }

    @Test("A grapheme larger than one word is split between scalars only")
    func oversizedGrapheme() throws {
        let value = "e" + String(repeating: "\u{0301}", count: 40)  // 81 octets, one Character
        let field = try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: value)
        for word in encodedWords(field) {
            let octets = try #require(MIMEEncodedWord(parsing: word)).octets
            #expect(validUTF8(octets) != nil)
        }
        #expect(MIMEEncodedWordDecoder.decodeHeaderField(field)?.value == value)
    }

    @Test("A very long field name pushes the first word to the next line")
    func longFieldName() throws {
        let name = "X-" + String(repeating: "N", count: 70)
        let field = try MIMEHeaderEncoding.encodeHeader(name: name, value: "王小明")
        #expect(physicalLines(field)[0] == name + ":")
        #expect(physicalLines(field).dropFirst().allSatisfy { $0.utf8.count <= 76 })
        #expect(MIMEEncodedWordDecoder.decodeHeaderField(field)?.value == "王小明")
    }

    @Test("CR or LF in a value, or a bad field name, is refused")
    func injection() {
        #expect(throws: MailFormatError.lineBreakInHeader(field: "Subject")) {
            try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: "Hi\r\nBcc: victim@example.com")
        }
        #expect(throws: MailFormatError.lineBreakInHeader(field: "Subject")) {
            try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: "Hi\nthere")
        }
        #expect(throws: MailFormatError.invalidFieldName("Sub ject")) {
            try MIMEHeaderEncoding.encodeHeader(name: "Sub ject", value: "x")
        }
        #expect(throws: MailFormatError.invalidFieldName("")) {
            try MIMEHeaderEncoding.encodeHeader(name: "", value: "x")
        }
    }
}

@Suite("Mailbox display names")
struct MailboxFormattingTests {
    @Test("Plain atoms, quoted-strings with escapes, encoded-words for non-ASCII")
    func forms() throws {
        #expect(try MIMEHeaderEncoding.formatMailbox(MailMailbox(address: "a@example.com")) == "<a@example.com>")
        #expect(try MIMEHeaderEncoding.formatMailbox(MailMailbox(displayName: "Wang Xiaoming", address: "w@example.com"))
            == "Wang Xiaoming <w@example.com>")
        #expect(try MIMEHeaderEncoding.formatMailbox(MailMailbox(displayName: "Example Trading Co., Ltd.", address: "t@example.com"))
            == "\"Example Trading Co., Ltd.\" <t@example.com>")
        #expect(try MIMEHeaderEncoding.formatMailbox(MailMailbox(displayName: #"Li "Harbor" Studio\Design"#, address: "l@example.org"))
            == #""Li \"Harbor\" Studio\\Design" <l@example.org>"#)
        #expect(try MIMEHeaderEncoding.formatMailbox(MailMailbox(displayName: "王小明", address: "w@example.com"))
            == "=?UTF-8?B?546L5bCP5piO?= <w@example.com>")
    }

    @Test("To header with several mailboxes folds between words and decodes back")
    func toHeader() throws {
        let mailboxes = [
            MailMailbox(displayName: "王小明", address: "wang.xiaoming@example.com"),
            MailMailbox(displayName: "Li, Hua", address: "li.hua@example.org"),
            MailMailbox(address: "zhang.wei@example.net"),
            MailMailbox(displayName: "陈静 Chen Jing 的很长很长很长很长很长的显示名称", address: "chen.jing@example.com"),
        ]
        let field = try MIMEHeaderEncoding.encodeAddressHeader(name: "To", mailboxes: mailboxes)
        #expect(physicalLines(field).allSatisfy { $0.utf8.count <= 76 })
        #expect(field == "To: =?UTF-8?B?546L5bCP5piO?= <wang.xiaoming@example.com>, \"Li, Hua\"\r\n"
            + " <li.hua@example.org>, <zhang.wei@example.net>,\r\n"
            + " =?UTF-8?B?6ZmI6Z2ZIENoZW4gSmluZyDnmoTlvojplb/lvojplb/lvojplb/lvojplb8=?=\r\n"
            + " =?UTF-8?B?5b6I6ZW/55qE5pi+56S65ZCN56ew?= <chen.jing@example.com>\r\n")
        let decoded = try #require(MIMEEncodedWordDecoder.decodeHeaderField(field)).value
        #expect(decoded == "王小明 <wang.xiaoming@example.com>, \"Li, Hua\" <li.hua@example.org>, <zhang.wei@example.net>, 陈静 Chen Jing 的很长很长很长很长很长的显示名称 <chen.jing@example.com>")
    }

    @Test("Bad addresses and CR/LF in display names are refused")
    func refusals() {
        for address in ["no-at-sign", "a@b@c", "@example.com", "a@", "a b@example.com", "a<b@example.com",
                        "a@example.com>\r\nRCPT TO:<x@y>", "王@example.com"] {
            #expect(throws: MailFormatError.invalidAddress(address)) {
                try MIMEHeaderEncoding.formatMailbox(MailMailbox(address: address))
            }
        }
        #expect(throws: MailFormatError.lineBreakInHeader(field: "From")) {
            try MIMEHeaderEncoding.encodeAddressHeader(name: "From", mailboxes: [MailMailbox(displayName: "A\r\nB", address: "a@example.com")])
        }
    }
}

@Suite("RFC 2047 decoding")
struct EncodedWordDecoderTests {
    @Test("C06: a character split across two Q-words is rejoined")
    func c06SplitMidChar() throws {
        let raw = try Fixture.string("C06-subject-split-midchar.eml")
        let field = try #require(MIMEEncodedWordDecoder.decodeHeaderField(raw))
        #expect(field.name == "Subject")
        #expect(field.value == "新品上市，会员专享八折")
        // Each word alone is not valid UTF-8 — the reason joining is needed.
        let words = encodedWords(raw).map { MIMEEncodedWord(parsing: $0) }
        #expect(words.count == 2)
        #expect(words.allSatisfy { $0 != nil && $0?.decodedText == nil })
    }

    @Test("B and Q, whitespace between words dropped, whitespace next to text kept")
    func mixed() {
        #expect(MIMEEncodedWordDecoder.decode("=?UTF-8?B?546L?= =?utf-8?q?=E5=B0=8F?=\r\n =?UTF-8?B?5piO?=") == "王小明")
        #expect(MIMEEncodedWordDecoder.decode("Hello =?UTF-8?Q?w=C3=B6rld_again?= !") == "Hello wörld again !")
        #expect(MIMEEncodedWordDecoder.decode("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard")
        #expect(MIMEEncodedWordDecoder.decode("=?UTF-8*en?B?aGk=?=") == "hi")
        #expect(MIMEEncodedWordDecoder.decode("=?UTF-8?B?aGk?=") == "hi")  // missing padding tolerated
    }

    @Test("Chinese legacy charsets used by bounce senders decode")
    func legacyCharsets() {
        // "你好" in GB2312 is C4 E3 BA C3.
        #expect(MIMEEncodedWordDecoder.decode("=?GB2312?B?xOO6ww==?=") == "你好")
        #expect(MIMEEncodedWordDecoder.decode("=?gbk?Q?=C4=E3=BA=C3?=") == "你好")
    }

    @Test("Malformed or unknown words are left as written")
    func malformed() {
        #expect(MIMEEncodedWordDecoder.decode("=?UTF-8?X?abc?=") == "=?UTF-8?X?abc?=")
        #expect(MIMEEncodedWordDecoder.decode("=?UTF-8?B?not base64?=") == "=?UTF-8?B?not base64?=")
        #expect(MIMEEncodedWordDecoder.decode("=?x-unknown?B?aGk=?=") == "=?x-unknown?B?aGk=?=")
        #expect(MIMEEncodedWordDecoder.decode("a =? b ?= c") == "a =? b ?= c")
    }

    @Test("Unfolding removes CRLF before whitespace only")
    func unfolding() {
        #expect(MIMEEncodedWordDecoder.unfold("Subject: a\r\n b\r\n\tc\r\n") == "Subject: a b\tc")
        #expect(MIMEEncodedWordDecoder.unfold("a\n b") == "a b")
    }
}
