import Foundation

/// A recipient address that passed `EmailAddress.validate(_:)`.
///
/// Accepted: a dot-atom local part (RFC 5322 §3.2.3, §3.4.1), which may hold non-ASCII
/// characters (RFC 6531 §3.3 `UTF8-non-ascii`; such an address is sent only to a server offering
/// SMTPUTF8), and a host-name domain (RFC 5321 §4.1.2, RFC 1035 §2.3.1 LDH labels), which may
/// be an internationalized domain name checked and sent in its A-label form (`IDNA.toASCII`,
/// reference case C05). Lengths follow RFC 5321 §4.5.3.1 as corrected by errata 1690, on the
/// SMTP form: local part ≤ 64 octets, domain ≤ 253 octets (RFC 1035's 255 on the wire), and
/// the whole address ≤ 254 octets because a `Path` (`<` + address + `>`) is limited to 256.
///
/// Refused although valid RFC 5321 syntax, each with its own code (reference case C04/C05): a
/// quoted local part (`.quotedLocalPart`, "not supported", distinct from a malformed one),
/// an address literal and a single-label domain such as `localhost` (policy: not a marketing
/// recipient).
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The local part exactly as written (case kept: RFC 5321 §2.4 lets the receiving host
    /// treat it case-sensitively, so we never rewrite it).
    public let localPart: String
    /// The domain as written, normalized (NFKC) and lower-cased (domains are case-insensitive,
    /// RFC 5321 §2.4); Unicode for an IDN written in Unicode.
    public let domain: String
    /// The domain in A-label form (`xn--bcher-kva.example`), equal to `domain` for ASCII domains.
    public let asciiDomain: String

    /// `localPart@domain`: the normalized address to store and show.
    public var address: String { "\(localPart)@\(domain)" }

    /// `localPart@asciiDomain`: the address for `RCPT TO` and the message header.
    public var smtpAddress: String { "\(localPart)@\(asciiDomain)" }

    /// True when the local part is not ASCII: only a server offering SMTPUTF8 (RFC 6531) can
    /// take it; its domain is never what makes this true (IDNs have an A-label form).
    public var requiresSMTPUTF8: Bool { localPart.utf8.contains { $0 >= 0x80 } }

    /// The key under which two addresses count as the same recipient: the SMTP form lower-cased
    /// (reference cases C03, C05: `bücher.example` and `XN--BCHER-KVA.example` are one domain).
    /// Lower-casing the local part is a product choice, not RFC 5321 (which leaves local-part
    /// case to the receiver): practically every mailbox provider ignores it, and sending the
    /// same campaign twice is worse than merging. `+tag` and dots are kept, so `carol+spring@`
    /// and `carol@` stay different.
    public var dedupKey: String { smtpAddress.lowercased() }

    public var description: String { address }

    /// Validates `raw` after trimming surrounding Unicode whitespace (the White_Space property,
    /// which includes U+00A0 NO-BREAK SPACE and U+3000 IDEOGRAPHIC SPACE), the usual paste
    /// artefacts. Whitespace inside the address is not removed and makes it invalid.
    /// - Returns: the address with its domain normalized, or the first problem found.
    public static func validate(_ raw: String) -> Result<EmailAddress, EmailAddressProblem> {
        Result { () throws(EmailAddressProblem) -> EmailAddress in try EmailAddress(validating: raw) }
    }

    /// Throwing form of `validate(_:)`.
    /// - Throws: `EmailAddressProblem` naming the first rule `raw` breaks.
    public init(validating raw: String) throws(EmailAddressProblem) {
        let trimmed = ImportWhitespace.trim(raw)
        if trimmed.isEmpty { throw .empty }
        let bytes = Array(trimmed.utf8)
        if bytes.first == UInt8(ascii: "\"") {
            // Parsed to tell a valid quoted local part (refused by choice) from a malformed one.
            let domainStart = try Self.endOfQuotedLocalPart(bytes) + 1
            if bytes[domainStart...].contains(UInt8(ascii: "@")) { throw .multipleAt }
            if domainStart - 1 > 64 { throw .localPartTooLong }
            _ = try Self.checkDomain(bytes[domainStart...], whole: domainStart)
            throw .quotedLocalPart
        }

        guard let at = bytes.firstIndex(of: UInt8(ascii: "@")) else {
            // A full-width or small at sign (U+FF20, U+FE6B) from a CJK keyboard.
            if trimmed.contains("\u{FF20}") || trimmed.contains("\u{FE6B}") { throw .nonASCII }
            throw .missingAt
        }
        if bytes[(at + 1)...].contains(UInt8(ascii: "@")) { throw .multipleAt }

        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]

        if local.isEmpty { throw .emptyLocalPart }
        if local.count > 64 { throw .localPartTooLong }
        if local.first == UInt8(ascii: ".") || local.last == UInt8(ascii: ".")
            || zip(local, local.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }) {
            throw .localPartDots
        }
        let localText = String(decoding: local, as: UTF8.self)
        guard localText.unicodeScalars.allSatisfy({ $0.isASCII ? ($0 == "." || Self.isAtext(UInt8($0.value))) : Self.isUTF8Atext($0) }) else {
            throw .invalidLocalPartCharacter
        }

        let (written, ascii) = try Self.checkDomain(domain, whole: local.count + 1)
        self.localPart = localText
        self.domain = written
        self.asciiDomain = ascii
    }

    /// The index of the closing quote of the quoted local part at the start of `bytes`, which
    /// must be followed by `@` (RFC 5321 §4.1.2 `Quoted-string`: `qtextSMTP` is printable ASCII
    /// but `"` and `\`, and a quoted pair is `\` then any printable ASCII).
    /// - Throws: `.malformedQuotedLocalPart` for an unclosed string, a bad character, or
    ///   anything between the closing quote and the `@` (`"a"b"@…`, `"test"."test"@…`).
    private static func endOfQuotedLocalPart(_ bytes: [UInt8]) throws(EmailAddressProblem) -> Int {
        var index = 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count, (0x20...0x7E).contains(bytes[index + 1]) else { throw .malformedQuotedLocalPart }
                index += 2
                continue
            }
            if byte == UInt8(ascii: "\"") {
                guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "@") else { throw .malformedQuotedLocalPart }
                return index + 1
            }
            guard (0x20...0x7E).contains(byte) else { throw .malformedQuotedLocalPart }
            index += 1
        }
        throw .malformedQuotedLocalPart
    }

    /// Checks a domain (`whole` octets come before it) and returns it as written (normalized,
    /// lower-cased) and in A-label form; the rules apply to the A-label form.
    private static func checkDomain(_ domain: ArraySlice<UInt8>, whole prefixOctets: Int) throws(EmailAddressProblem) -> (String, String) {
        if domain.isEmpty { throw .emptyDomain }
        if domain.first == UInt8(ascii: "[") { throw .addressLiteral }
        let text = String(decoding: domain, as: UTF8.self)
        let written: String
        let ascii: String
        if domain.allSatisfy({ $0 < 0x80 }) {
            written = text.lowercased()
            ascii = written
        } else {
            written = text.precomposedStringWithCompatibilityMapping.lowercased()
            guard let encoded = IDNA.toASCII(text) else { throw .invalidDomainCharacter }
            ascii = encoded
        }
        let octets = Array(ascii.utf8)
        if octets.count > 253 { throw .domainTooLong }
        let labels = octets.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for label in labels {
            if label.isEmpty { throw .emptyDomainLabel }
            if label.count > 63 { throw .domainLabelTooLong }
            if !label.allSatisfy({ Self.isLetterDigit($0) || $0 == UInt8(ascii: "-") }) {
                throw .invalidDomainCharacter
            }
            if label.first == UInt8(ascii: "-") || label.last == UInt8(ascii: "-") {
                throw .domainLabelHyphen
            }
        }
        if labels.count < 2 { throw .singleLabelDomain }
        if let top = labels.last, top.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            throw .numericTopLevelDomain
        }
        if prefixOctets + octets.count > 254 { throw .addressTooLong }
        return (written, ascii)
    }

    /// RFC 6531 §3.3 `UTF8-non-ascii` in a local part, less what cannot be typed or seen:
    /// white space, controls, format characters (zero-width), unassigned and private-use code
    /// points, and look-alikes of the at sign.
    private static func isUTF8Atext(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.properties.isWhitespace || scalar == "\u{FF20}" || scalar == "\u{FE6B}" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// RFC 5322 §3.2.3 `atext`: ALPHA / DIGIT / the listed specials.
    private static func isAtext(_ byte: UInt8) -> Bool {
        if isLetterDigit(byte) { return true }
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"),
             UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
             UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "?"),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "{"),
             UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func isLetterDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// Why a string is not an address we accept for a recipient. The raw value is a stable
/// snake_case code for the API; `message` is for people.
public enum EmailAddressProblem: String, Error, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case empty = "empty"
    /// A full-width at sign (U+FF20) or small at sign (U+FE6B) instead of `@`, a CJK keyboard
    /// artefact. (Non-ASCII local parts and IDN domains are accepted; see `EmailAddress`.)
    case nonASCII = "non_ascii"
    /// `"john doe"@example.com` is valid RFC 5321 but rare in marketing lists and usually a
    /// paste error: refused by choice, with a code of its own so it is not mistaken for a
    /// malformed address (reference case C04).
    case quotedLocalPart = "quoted_local_part"
    /// A local part that starts with `"` but is not one well-formed quoted string directly
    /// followed by `@` (`"a"b"@…`, `"test"."test"@…`, unclosed quotes).
    case malformedQuotedLocalPart = "malformed_quoted_local_part"
    case missingAt = "missing_at"
    case multipleAt = "multiple_at"
    case emptyLocalPart = "empty_local_part"
    case localPartTooLong = "local_part_too_long"
    case localPartDots = "local_part_dots"
    case invalidLocalPartCharacter = "invalid_local_part_character"
    case emptyDomain = "empty_domain"
    /// `user@[192.0.2.1]` (RFC 5321 §4.1.3) is legal but not a real recipient (policy).
    case addressLiteral = "address_literal"
    case domainTooLong = "domain_too_long"
    case emptyDomainLabel = "empty_domain_label"
    case domainLabelTooLong = "domain_label_too_long"
    case invalidDomainCharacter = "invalid_domain_character"
    case domainLabelHyphen = "domain_label_hyphen"
    /// `user@localhost` is legal syntax but not a marketing recipient (policy).
    case singleLabelDomain = "single_label_domain"
    /// RFC 3696 §2: a top-level domain is never all digits, so `a@1.2.3.4` is an IP address
    /// written without the address-literal brackets.
    case numericTopLevelDomain = "numeric_top_level_domain"
    case addressTooLong = "address_too_long"

    /// Whether the address is valid syntax, refused only by this product's policy for marketing
    /// sends (quoted local part, IP literal, single-label domain such as `localhost`; reference
    /// cases C04, C05): reported as "not supported", never as a malformed address.
    public var isPolicyRefusal: Bool {
        switch self {
        case .quotedLocalPart, .addressLiteral, .singleLabelDomain: return true
        default: return false
        }
    }

    /// A short English explanation, fit for an import report.
    public var message: String {
        switch self {
        case .empty: return "the address is empty"
        case .nonASCII: return "the @ is a full-width or small at sign (＠ or ﹫); type the ASCII @"
        case .quotedLocalPart: return "quoted local part not supported: \"…\"@domain is a valid address, but this product does not send to it"
        case .malformedQuotedLocalPart: return "the quoted part before the @ is not closed properly or has text after its closing quote"
        case .missingAt: return "there is no @"
        case .multipleAt: return "there is more than one @"
        case .emptyLocalPart: return "nothing before the @"
        case .localPartTooLong: return "the part before the @ is longer than 64 characters"
        case .localPartDots: return "the part before the @ starts or ends with a dot or has two dots in a row"
        case .invalidLocalPartCharacter: return "the part before the @ has a character not allowed there (such as a space, comma or bracket)"
        case .emptyDomain: return "nothing after the @"
        case .addressLiteral: return "IP address literals ([…]) are valid syntax but not accepted for marketing sends"
        case .domainTooLong: return "the domain is longer than 253 characters"
        case .emptyDomainLabel: return "the domain starts or ends with a dot or has two dots in a row"
        case .domainLabelTooLong: return "a part of the domain is longer than 63 characters"
        case .invalidDomainCharacter: return "the domain may only contain letters, digits, hyphens and dots"
        case .domainLabelHyphen: return "a part of the domain starts or ends with a hyphen"
        case .singleLabelDomain: return "the domain has no dot (such as example.com); single-label domains like localhost are not accepted for marketing sends"
        case .numericTopLevelDomain: return "the domain ends in a number; IP addresses are not accepted"
        case .addressTooLong: return "the address is longer than 254 characters"
        }
    }

    public var description: String { message }
}

/// The one whitespace rule of the import: what counts as "surrounding whitespace".
///
/// Whitespace is the Unicode White_Space property, judged per scalar: ASCII space, tab, CR,
/// LF, U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE and the other Zs spaces. Zero-width
/// characters such as U+200B or U+FEFF are not White_Space and are kept. (Per scalar rather
/// than per `Character` so that a trailing CRLF and a space carrying a combining mark are
/// judged the same way everywhere, and so the common case costs two scalar look-ups.)
enum ImportWhitespace {
    /// `text` without leading and trailing White_Space scalars.
    static func trim(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let start = scalars.firstIndex(where: { !isWhitespace($0) }),
              let last = scalars.lastIndex(where: { !isWhitespace($0) }) else { return "" }
        if start == scalars.startIndex, scalars.index(after: last) == scalars.endIndex {
            return text
        }
        return String(scalars[start...last])
    }

    /// The White_Space property, answering ASCII from a table because the property lookup
    /// dominates the cost of importing large files.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            return scalar == " " || (scalar.value >= 0x09 && scalar.value <= 0x0D)
        }
        return scalar.properties.isWhitespace
    }

    /// Whether `text` is empty or White_Space only.
    static func isBlank(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy(isWhitespace)
    }
}
