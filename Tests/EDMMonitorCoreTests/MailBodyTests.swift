import Foundation
import Testing
import EDMMonitorCore

/// Lines of CRLF-separated octets (CRLF removed).
private func crlfLines(_ octets: [UInt8]) -> [[UInt8]] {
    var lines: [[UInt8]] = [[]]
    var index = 0
    while index < octets.count {
        if octets[index] == 0x0D, index + 1 < octets.count, octets[index + 1] == 0x0A {
            lines.append([])
            index += 2
        } else {
            lines[lines.count - 1].append(octets[index])
            index += 1
        }
    }
    return lines
}

/// True when every CR is followed by LF and every LF preceded by CR.
private func hasOnlyCRLF(_ octets: [UInt8]) -> Bool {
    for (index, byte) in octets.enumerated() {
        if byte == 0x0D && (index + 1 >= octets.count || octets[index + 1] != 0x0A) { return false }
        if byte == 0x0A && (index == 0 || octets[index - 1] != 0x0D) { return false }
    }
    return true
}

@Suite("MIME body encoding and DATA payload")
struct MailBodyEncodingTests {
    @Test("C07: 8bit body with dot-stuffing is byte-equal to the expected DATA body")
    func c07DataBody() throws {
        let body = try Fixture.string("C07-body-rendered.txt")
        let expected = Array(try Fixture.data("C07-expected-data-body.txt"))
        let encoded = MIMEBodyEncoding.encode(body, eightBitMIME: true)
        #expect(encoded.transferEncoding == .eightBit)
        let payload = SMTPDataPayload.encode(encoded.octets)
        #expect(payload == expected)
        #expect(hasOnlyCRLF(payload))
    }

    @Test("C07: without 8BITMIME the same body is not sent as 7bit/8bit")
    func c07WithoutEightBitMIME() throws {
        let body = try Fixture.string("C07-body-rendered.txt")
        let encoded = MIMEBodyEncoding.encode(body, eightBitMIME: false)
        #expect(encoded.transferEncoding == .base64)
        let decoded = try #require(MIMEBodyEncoding.base64Decode(encoded.octets))
        #expect(decoded == MIMEBodyEncoding.normalizeLineEndings(body.utf8))
    }

    @Test("C07: 488-Character line of 1352 octets goes out as QP/base64 and round-trips")
    func c07LongLine() throws {
        let data = try Fixture.data("C07-long-line.html")
        let html = try Fixture.string("C07-long-line.html")
        let line = try #require(html.split(separator: "\n").first)
        #expect(line.count == 488)
        #expect(line.utf8.count == 1352)

        for eightBitMIME in [true, false] {
            let encoded = MIMEBodyEncoding.encode(html, eightBitMIME: eightBitMIME)
            #expect(encoded.transferEncoding == .base64, "CJK-heavy text: base64 by the 1-in-6 rule")
            #expect(crlfLines(encoded.octets).allSatisfy { $0.count <= 76 })
            #expect(encoded.octets.allSatisfy { $0 < 0x80 })
            let decoded = try #require(MIMEBodyEncoding.base64Decode(encoded.octets))
            #expect(decoded == MIMEBodyEncoding.normalizeLineEndings(data))
        }

        // Quoted-printable of the same bytes: lines ≤ 76, no split triplets, exact round trip.
        let normalized = MIMEBodyEncoding.normalizeLineEndings(data)
        let qp = MIMEBodyEncoding.quotedPrintableEncode(normalized)
        let qpLines = crlfLines(qp)
        #expect(qpLines.allSatisfy { $0.count <= 76 })
        for qpLine in qpLines {
            // A soft break "=" is the last character; any other "=" starts a full triplet.
            var index = 0
            while index < qpLine.count {
                if qpLine[index] == UInt8(ascii: "=") {
                    #expect(index == qpLine.count - 1 || index + 2 < qpLine.count)
                    index += 3
                } else {
                    index += 1
                }
            }
        }
        #expect(try MIMEBodyEncoding.quotedPrintableDecode(qp) == normalized)
        #expect(Array(data) == Array(line.utf8) + [0x0A])
    }

    @Test("Line length is measured in octets: 998 octets fit, 999 do not")
    func octetLimit() {
        let fits = String(repeating: "a", count: 998)
        #expect(MIMEBodyEncoding.encode(fits, eightBitMIME: false).transferEncoding == .sevenBit)
        let over = String(repeating: "a", count: 999)
        #expect(MIMEBodyEncoding.encode(over, eightBitMIME: true).transferEncoding == .quotedPrintable)
        let cjkFits = String(repeating: "汉", count: 332) + "ab"  // 998 octets, 334 Characters
        #expect(MIMEBodyEncoding.encode(cjkFits, eightBitMIME: true).transferEncoding == .eightBit)
        let cjkOver = String(repeating: "汉", count: 333) + "a"  // 1000 octets, 334 Characters
        #expect(MIMEBodyEncoding.encode(cjkOver, eightBitMIME: true).transferEncoding == .base64)
    }

    @Test("Transfer encoding choice: NUL forbids 7bit/8bit; mostly-ASCII non-ASCII text picks QP")
    func choice() {
        #expect(MIMEBodyEncoding.encode("Hello\nWorld", eightBitMIME: false).transferEncoding == .sevenBit)
        #expect(MIMEBodyEncoding.encode("Hello\u{0}", eightBitMIME: true).transferEncoding == .quotedPrintable)
        #expect(MIMEBodyEncoding.encode("Vielen Dank für Ihre Bestellung, wir melden uns bald wieder.", eightBitMIME: false).transferEncoding == .quotedPrintable)
        #expect(MIMEBodyEncoding.encode("王小明您好", eightBitMIME: false).transferEncoding == .base64)
        #expect(MIMEBodyEncoding.encode("王小明您好", eightBitMIME: true).transferEncoding == .eightBit)
    }

    @Test("Line-end normalization: LF, CR and CRLF all become CRLF")
    func normalization() {
        #expect(MIMEBodyEncoding.normalizeLineEndings(Array("a\nb\rc\r\nd\r".utf8)) == Array("a\r\nb\r\nc\r\nd\r\n".utf8))
        #expect(MIMEBodyEncoding.normalizeLineEndings(Array("\r\r\n\n".utf8)) == Array("\r\n\r\n\r\n".utf8))
    }

    @Test("Quoted-printable: exact bytes for escapes, trailing space, soft breaks")
    func quotedPrintableExact() throws {
        let input = Array("a=b \r\nc\t\r\nGrüß".utf8)
        #expect(MIMEBodyEncoding.quotedPrintableEncode(input) == Array("a=3Db=20\r\nc=09\r\nGr=C3=BC=C3=9F".utf8))

        // 80 x's: 75 then soft break then 5.
        let long = Array(repeating: UInt8(ascii: "x"), count: 80)
        let expectedLong = Array((String(repeating: "x", count: 75) + "=\r\n" + String(repeating: "x", count: 5)).utf8)
        #expect(MIMEBodyEncoding.quotedPrintableEncode(long) == expectedLong)

        // Exactly 76 characters need no soft break.
        let exact = Array(repeating: UInt8(ascii: "y"), count: 76)
        #expect(MIMEBodyEncoding.quotedPrintableEncode(exact) == exact)

        // A triplet that would cross column 75 moves whole to the next line.
        let triplet = Array(repeating: UInt8(ascii: "z"), count: 74) + [0xFF, UInt8(ascii: "z")]
        let expectedTriplet = Array((String(repeating: "z", count: 74) + "=\r\n=FFz").utf8)
        #expect(MIMEBodyEncoding.quotedPrintableEncode(triplet) == expectedTriplet)
        #expect(try MIMEBodyEncoding.quotedPrintableDecode(expectedTriplet) == triplet)
    }

    @Test("Quoted-printable decoding: soft breaks, lower-case hex, transport whitespace, errors")
    func quotedPrintableDecode() throws {
        #expect(try MIMEBodyEncoding.quotedPrintableDecode(Array("ab=\r\ncd=e9  \r\nx".utf8)) == Array("abcd".utf8) + [0xE9] + Array("\r\nx".utf8))
        #expect(throws: MIMEDecodingError.invalidQuotedPrintableEscape(offset: 1)) {
            try MIMEBodyEncoding.quotedPrintableDecode(Array("a=ZZ".utf8))
        }
        #expect(throws: MIMEDecodingError.invalidQuotedPrintableEscape(offset: 1)) {
            try MIMEBodyEncoding.quotedPrintableDecode(Array("a=4".utf8))
        }
    }

    @Test("Base64: 76-character lines joined by CRLF, same as Foundation")
    func base64Lines() {
        let octets = (0..<200).map { UInt8($0 % 256) }
        let ours = MIMEBodyEncoding.base64Lines(octets)
        let foundation = Data(octets).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        #expect(ours == Array(foundation.utf8))
        #expect(MIMEBodyEncoding.base64Decode(ours) == octets)
        #expect(MIMEBodyEncoding.base64(Array("f".utf8)) == Array("Zg==".utf8))
        #expect(MIMEBodyEncoding.base64(Array("fo".utf8)) == Array("Zm8=".utf8))
        #expect(MIMEBodyEncoding.base64Decode(Array("Zg=a".utf8)) == nil)
        #expect(MIMEBodyEncoding.base64Decode(Array("Z".utf8)) == nil)
    }

    @Test("DATA payload: stuffing, final CRLF added once, empty message, bare CR/LF fixed")
    func dataPayload() {
        #expect(SMTPDataPayload.encode(Array("a\r\n.\r\n".utf8)) == Array("a\r\n..\r\n.\r\n".utf8))
        #expect(SMTPDataPayload.encode(Array(".a".utf8)) == Array("..a\r\n.\r\n".utf8))
        #expect(SMTPDataPayload.encode([UInt8]()) == Array(".\r\n".utf8))
        #expect(SMTPDataPayload.encode(Array("x\ry\n.z".utf8)) == Array("x\r\ny\r\n..z\r\n.\r\n".utf8))
        #expect(SMTPDataPayload.encode(Array("a.b\r\n".utf8)) == Array("a.b\r\n.\r\n".utf8))
    }
}
