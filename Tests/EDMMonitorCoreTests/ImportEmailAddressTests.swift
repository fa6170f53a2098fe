import Foundation
import Testing
import EDMMonitorCore

@Suite("Import: email address validation")
struct ImportEmailAddressTests {
    private static let label63 = String(repeating: "a", count: 63)
    private static let local64 = String(repeating: "l", count: 64)

    @Test(arguments: [
        // (input, normalized address)
        ("alice@example.com", "alice@example.com"),
        ("Alice.Wang@Example.COM", "Alice.Wang@example.com"),           // local case kept, domain lowered
        ("  bob@example.org\t", "bob@example.org"),                      // ASCII whitespace trimmed
        ("dave@example.net\u{00A0}", "dave@example.net"),                // NO-BREAK SPACE trimmed
        ("\u{3000}eve@example.com", "eve@example.com"),                  // IDEOGRAPHIC SPACE trimmed
        ("carol+spring@example.com", "carol+spring@example.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~@example.com"),  // every atext special
        ("first.middle.last@mail.example.co.uk", "first.middle.last@mail.example.co.uk"),
        ("x@a-b.c0", "x@a-b.c0"),
        ("1234@123.example", "1234@123.example"),
        ("\(local64)@example.com", "\(local64)@example.com"),            // local part at 64
        ("a@\(label63).com", "a@\(label63).com"),                        // label at 63
    ])
    func valid(input: String, normalized: String) throws {
        let address = try EmailAddress.validate(input).get()
        #expect(address.address == normalized)
        #expect(address.dedupKey == normalized.lowercased())
    }

    @Test(arguments: [
        ("", EmailAddressProblem.empty),
        ("  \u{00A0} ", .empty),
        ("王小明@example.com", nil as EmailAddressProblem?),                 // RFC 6531 local part: accepted, sent only with SMTPUTF8
        ("user@例子.中国", nil),                                           // IDN: accepted, sent as user@xn--fsqu00a.xn--fiqs8s
        ("user@xn--fsqu00a.xn--fiqs8s", nil),                            // punycode IDN is plain ASCII: accepted
        ("user＠example.com", .nonASCII),                                  // full-width at sign
        ("\"john doe\"@example.com", .quotedLocalPart),
        ("alice.example.com", .missingAt),
        ("alice@@example.com", .multipleAt),
        ("a@b@example.com", .multipleAt),
        ("@example.com", .emptyLocalPart),
        ("\(local64)l@example.com", .localPartTooLong),
        (".alice@example.com", .localPartDots),
        ("alice.@example.com", .localPartDots),
        ("al..ice@example.com", .localPartDots),
        ("al ice@example.com", .invalidLocalPartCharacter),
        ("alice,bob@example.com", .invalidLocalPartCharacter),
        ("<alice@example.com>", .invalidLocalPartCharacter),
        ("alice@", .emptyDomain),
        ("alice@[192.0.2.1]", .addressLiteral),
        ("alice@example..com", .emptyDomainLabel),
        ("alice@.example.com", .emptyDomainLabel),
        ("alice@example.com.", .emptyDomainLabel),
        ("a@\(label63)a.com", .domainLabelTooLong),
        ("alice@exa_mple.com", .invalidDomainCharacter),
        ("alice@example.com>", .invalidDomainCharacter),
        ("alice@-example.com", .domainLabelHyphen),
        ("alice@example-.com", .domainLabelHyphen),
        ("alice@localhost", .singleLabelDomain),
        ("alice@192.0.2.1", .numericTopLevelDomain),
    ])
    func invalid(input: String, problem: EmailAddressProblem?) {
        switch EmailAddress.validate(input) {
        case let .success(address):
            #expect(problem == nil, "accepted \(address)")
        case let .failure(found):
            #expect(found == problem)
        }
    }

    @Test func lengthLimitsFollowRFC5321Errata1690() {
        // 64 + 1 + 189 = 254 octets: the longest accepted address.
        let domain189 = [String(repeating: "d", count: 63), String(repeating: "d", count: 63),
                         String(repeating: "d", count: 61)].joined(separator: ".")
        #expect(domain189.utf8.count == 189)
        let longest = "\(Self.local64)@\(domain189)"
        #expect(longest.utf8.count == 254)
        #expect((try? EmailAddress.validate(longest).get()) != nil)

        let tooLong = "\(Self.local64)@\(domain189)d"
        #expect(tooLong.utf8.count == 255)
        #expect(EmailAddress.validate(tooLong) == .failure(.addressTooLong))

        let domain256 = Array(repeating: String(repeating: "d", count: 63), count: 4).joined(separator: ".") + ".d"
        #expect(domain256.utf8.count == 257)
        #expect(EmailAddress.validate("a@\(domain256)") == .failure(.domainTooLong))
    }

    @Test func nonASCIIMessageIsTheDocumentedOne() {
        #expect(EmailAddressProblem.nonASCII.message == "the @ is a full-width or small at sign (＠ or ﹫); type the ASCII @")
        for problem in EmailAddressProblem.allCases {
            #expect(!problem.message.isEmpty)
        }
    }

    @Test func throwingInitializerMatchesValidate() {
        #expect(throws: EmailAddressProblem.missingAt) { try EmailAddress(validating: "nobody") }
        #expect((try? EmailAddress(validating: "A@B.CO"))?.address == "A@b.co")
    }
}
