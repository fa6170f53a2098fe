import Foundation

/// A recipient address that passed `EmailAddress.validate(_:)`.
///
/// Only the ASCII `addr-spec` subset we can deliver without SMTP extensions is accepted:
/// a dot-atom local part (RFC 5322 §3.2.3, §3.4.1) and a host-name domain (RFC 5321 §4.1.2,
/// RFC 1035 §2.3.1 LDH labels). Lengths follow RFC 5321 §4.5.3.1 as corrected by errata 1690:
/// local part ≤ 64 octets, domain ≤ 255 octets, and the whole address ≤ 254 octets because a
/// `Path` (`<` + address + `>`) is limited to 256.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The local part exactly as written (case kept: RFC 5321 §2.4 lets the receiving host
    /// treat it case-sensitively, so we never rewrite it).
    public let localPart: String
    /// The domain, lower-cased (domains are case-insensitive, RFC 5321 §2.4).
    public let domain: String

    /// `localPart@domain`: the normalized address to store and send to.
    public var address: String { "\(localPart)@\(domain)" }

    /// The key under which two addresses count as the same recipient: the whole normalized
    /// address lower-cased (reference case C03). This is a product choice, not RFC 5321 (which
    /// leaves local-part case to the receiver): practically every mailbox provider ignores it,
    /// and sending the same campaign twice is worse than merging. `+tag` and dots are kept,
    /// so `carol+spring@` and `carol@` stay different.
    public var dedupKey: String { address.lowercased() }

    public var description: String { address }

    /// Validates `raw` after trimming surrounding Unicode whitespace (the White_Space property,
    /// which includes U+00A0 NO-BREAK SPACE and U+3000 IDEOGRAPHIC SPACE), the usual paste
    /// artefacts. Whitespace inside the address is not removed and makes it invalid.
    /// - Returns: the address with its domain lower-cased, or the first problem found.
    public static func validate(_ raw: String) -> Result<EmailAddress, EmailAddressProblem> {
        Result { () throws(EmailAddressProblem) -> EmailAddress in try EmailAddress(validating: raw) }
    }

    /// Throwing form of `validate(_:)`.
    /// - Throws: `EmailAddressProblem` naming the first rule `raw` breaks.
    public init(validating raw: String) throws(EmailAddressProblem) {
        let trimmed = ImportWhitespace.trim(raw)
        if trimmed.isEmpty { throw .empty }
        let bytes = Array(trimmed.utf8)
        if bytes.contains(where: { $0 >= 0x80 }) { throw .nonASCII }
        if bytes.first == UInt8(ascii: "\"") { throw .quotedLocalPart }

        guard let at = bytes.firstIndex(of: UInt8(ascii: "@")) else { throw .missingAt }
        if bytes[(at + 1)...].contains(UInt8(ascii: "@")) { throw .multipleAt }

        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]

        if local.isEmpty { throw .emptyLocalPart }
        if local.count > 64 { throw .localPartTooLong }
        if local.first == UInt8(ascii: ".") || local.last == UInt8(ascii: ".")
            || zip(local, local.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }) {
            throw .localPartDots
        }
        if !local.allSatisfy({ $0 == UInt8(ascii: ".") || Self.isAtext($0) }) {
            throw .invalidLocalPartCharacter
        }

        if domain.isEmpty { throw .emptyDomain }
        if domain.first == UInt8(ascii: "[") { throw .addressLiteral }
        if domain.count > 255 { throw .domainTooLong }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
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
        if bytes.count > 254 { throw .addressTooLong }

        self.localPart = String(decoding: local, as: UTF8.self)
        self.domain = String(decoding: domain, as: UTF8.self).lowercased()
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
    /// Any byte ≥ 0x80. Internationalized addresses (RFC 6531 SMTPUTF8 local parts, IDN
    /// domains) need server support end to end that we do not implement, so they are refused
    /// rather than sent and bounced.
    case nonASCII = "non_ascii"
    /// `"john doe"@example.com` is valid RFC 5322 but rare in marketing lists and usually a
    /// paste error; refusing it keeps the local-part rules to dot-atom only.
    case quotedLocalPart = "quoted_local_part"
    case missingAt = "missing_at"
    case multipleAt = "multiple_at"
    case emptyLocalPart = "empty_local_part"
    case localPartTooLong = "local_part_too_long"
    case localPartDots = "local_part_dots"
    case invalidLocalPartCharacter = "invalid_local_part_character"
    case emptyDomain = "empty_domain"
    /// `user@[192.0.2.1]` (RFC 5321 §4.1.3) is legal but not a real recipient.
    case addressLiteral = "address_literal"
    case domainTooLong = "domain_too_long"
    case emptyDomainLabel = "empty_domain_label"
    case domainLabelTooLong = "domain_label_too_long"
    case invalidDomainCharacter = "invalid_domain_character"
    case domainLabelHyphen = "domain_label_hyphen"
    case singleLabelDomain = "single_label_domain"
    /// RFC 3696 §2: a top-level domain is never all digits, so `a@1.2.3.4` is an IP address
    /// written without the address-literal brackets.
    case numericTopLevelDomain = "numeric_top_level_domain"
    case addressTooLong = "address_too_long"

    /// A short English explanation, fit for an import report.
    public var message: String {
        switch self {
        case .empty: return "the address is empty"
        case .nonASCII: return "non-ASCII addresses need SMTPUTF8, not supported"
        case .quotedLocalPart: return "quoted local parts (\"…\"@domain) are not supported"
        case .missingAt: return "there is no @"
        case .multipleAt: return "there is more than one @"
        case .emptyLocalPart: return "nothing before the @"
        case .localPartTooLong: return "the part before the @ is longer than 64 characters"
        case .localPartDots: return "the part before the @ starts or ends with a dot or has two dots in a row"
        case .invalidLocalPartCharacter: return "the part before the @ has a character not allowed there (such as a space, comma or bracket)"
        case .emptyDomain: return "nothing after the @"
        case .addressLiteral: return "IP address literals ([…]) are not accepted as a domain"
        case .domainTooLong: return "the domain is longer than 255 characters"
        case .emptyDomainLabel: return "the domain starts or ends with a dot or has two dots in a row"
        case .domainLabelTooLong: return "a part of the domain is longer than 63 characters"
        case .invalidDomainCharacter: return "the domain may only contain letters, digits, hyphens and dots"
        case .domainLabelHyphen: return "a part of the domain starts or ends with a hyphen"
        case .singleLabelDomain: return "the domain has no dot (such as example.com)"
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
