import Foundation
import Testing
import EDMMonitorCore

/// Rows of a reference-case TSV after its header: (address, expected, third column).
private func rows(_ fixture: String) -> [TSVRow] {
    guard let text = try? Fixture.string(fixture) else { return [] }
    return text.split(separator: "\n").dropFirst().map { line in
        let cells = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        return TSVRow(address: cells[0], expected: cells[1], note: cells.count > 2 ? cells[2] : "")
    }
}

struct TSVRow: Sendable, CustomTestStringConvertible {
    var address: String
    var expected: String
    var note: String
    var testDescription: String { address }
}

@Suite("Addresses: reference cases C04 (local parts) and C05 (domains, IDN)")
struct AddressReferenceCaseTests {
    @Test("the fixtures are there") func fixturesPresent() {
        #expect(rows("C04-local-parts.tsv").count == 17)
        #expect(rows("C05-domains.tsv").count == 16)
    }

    /// C04: `rfc5321_valid` yes → accepted, or for a quoted local part refused with its own
    /// code ("not supported"); no → refused with another code.
    @Test("C04 local-part rules", arguments: rows("C04-local-parts.tsv"))
    func c04(_ row: TSVRow) {
        let result = EmailAddress.validate(row.address)
        switch (row.expected, result) {
        case ("yes", .success(let address)):
            #expect(!row.address.hasPrefix("\""))
            #expect(address.address == row.address)
            #expect(address.smtpAddress == row.address, "plus tags and case are kept")
        case ("yes", .failure(let problem)):
            #expect(row.address.hasPrefix("\"") && problem == .quotedLocalPart, "\(row.note): \(problem)")
            #expect(problem.message.hasPrefix("quoted local part not supported"))
        case ("no", .failure(let problem)):
            #expect(problem != .quotedLocalPart, "\(row.note): a malformed address must not be called a supported-syntax refusal")
        default:
            Issue.record("\(row.address): expected \(row.expected) (\(row.note)), got \(result)")
        }
    }

    /// C05: the SMTP (A-label) form of each valid domain, the refusal of each invalid one, and
    /// the policy refusals of `localhost` and address literals.
    @Test("C05 domain rules and IDN", arguments: rows("C05-domains.tsv"))
    func c05(_ row: TSVRow) throws {
        let result = EmailAddress.validate(row.address)
        switch row.expected {
        case "yes":
            let address = try result.get()
            if row.note.hasPrefix("same mailbox domain as ") {
                let other = try EmailAddress.validate(String(row.note.dropFirst("same mailbox domain as ".count))).get()
                #expect(address.dedupKey == other.dedupKey)
                #expect(address.smtpAddress == other.smtpAddress)
            } else {
                // Column 3 is the SMTP form when it is an address, else a note on a form kept as written.
                let smtpForm = String(row.note.prefix { $0 != " " })
                #expect(address.smtpAddress == (smtpForm.contains("@") ? smtpForm : row.address))
            }
            #expect(!address.requiresSMTPUTF8)
        case "only with SMTPUTF8":
            let address = try result.get()
            #expect(address.requiresSMTPUTF8)
            #expect(address.localPart == "用户", "never punycode a local part")
            #expect(address.smtpAddress == "用户@xn--fsqu00a.xn--4rr70v")
        case "syntax yes":
            guard case .failure(let problem) = result else { Issue.record("\(row.address) must be refused by policy"); return }
            #expect([.singleLabelDomain, .addressLiteral].contains(problem))
            #expect(problem.message.contains("marketing"))
        default:
            guard case .failure = result else { Issue.record("\(row.address) must be refused: \(row.note)"); return }
        }
    }

    @Test("the two spellings of one IDN are one recipient")
    func idnDedup() throws {
        let unicode = try EmailAddress.validate("user@Bücher.example").get()
        #expect(unicode.address == "user@bücher.example")
        #expect(unicode.asciiDomain == "xn--bcher-kva.example")
        #expect(unicode.dedupKey == "user@xn--bcher-kva.example")
    }

    @Test("quoted local parts: valid ones are 'not supported', malformed ones are malformed")
    func quoted() {
        #expect(EmailAddress.validate("\"john doe\"@example.org") == .failure(.quotedLocalPart))
        #expect(EmailAddress.validate("\"a\"b\"@example.org") == .failure(.malformedQuotedLocalPart))
        #expect(EmailAddress.validate("\"test\".\"test\"@example.org") == .failure(.malformedQuotedLocalPart))
        #expect(EmailAddress.validate("\"unclosed@example.org") == .failure(.malformedQuotedLocalPart))
        #expect(EmailAddress.validate("\"ok\"@localhost") == .failure(.singleLabelDomain))
        #expect(EmailAddressProblem.quotedLocalPart.rawValue != EmailAddressProblem.malformedQuotedLocalPart.rawValue)
    }
}

@Suite("Punycode (RFC 3492) and IDNA A-labels")
struct PunycodeTests {
    @Test(arguments: [
        ("bücher", "bcher-kva"), ("例子", "fsqu00a"), ("广告", "4rr70v"), ("中国", "fiqs8s"),
        ("münchen", "mnchen-3ya"),
        // RFC 3492 §7.1 (A) Arabic (Egyptian) and (B) Chinese (simplified).
        ("\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}",
         "egbpdaj6bu4bxfgehfvwxn"),
        ("\u{4ED6}\u{4EEC}\u{4E3A}\u{4EC0}\u{4E48}\u{4E0D}\u{8BF4}\u{4E2D}\u{6587}", "ihqwcrb4cv8a8dqg056pqjye"),
    ])
    func encode(_ input: String, _ expected: String) {
        #expect(Punycode.encode(input) == expected)
    }

    @Test func domains() {
        #expect(IDNA.toASCII("Bücher.Example") == "xn--bcher-kva.example")
        #expect(IDNA.toASCII("例子。广告") == "xn--fsqu00a.xn--4rr70v", "ideographic full stop separates labels (UTS #46)")
        #expect(IDNA.toASCII("example.com") == "example.com")
    }
}
