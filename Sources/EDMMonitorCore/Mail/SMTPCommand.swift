/// The SMTP service extensions a server advertised in its EHLO reply (RFC 5321 §4.1.1.1).
public struct SMTPCapabilities: Sendable, Equatable {
    /// Every advertised keyword, upper-cased, with its parameters as written. The first line of
    /// the reply (the server's domain and greeting) is not a keyword and is not included.
    public var extensions: [String: [String]]

    /// Capabilities of a server that only answered HELO: no extensions at all.
    public static let empty = SMTPCapabilities(extensions: [:])

    public init(extensions: [String: [String]]) {
        self.extensions = extensions
    }

    /// Reads the EHLO reply: lines after the first are `keyword *(SP param)`, keywords compared
    /// case-insensitively. Also accepts the legacy `AUTH=LOGIN PLAIN` form some servers send.
    public init(ehloReply: SMTPReply) {
        var extensions: [String: [String]] = [:]
        for line in ehloReply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard var keyword = words.first?.uppercased() else { continue }
            var parameters = Array(words.dropFirst())
            if keyword.hasPrefix("AUTH=") {
                parameters.insert(String(keyword.dropFirst(5)), at: 0)
                keyword = "AUTH"
            }
            extensions[keyword, default: []] += parameters
        }
        self.extensions = extensions
    }

    /// True when `keyword` (any case) was advertised.
    public func supports(_ keyword: String) -> Bool { extensions[keyword.uppercased()] != nil }

    /// 8BITMIME (RFC 6152): `BODY=8BITMIME` may be used.
    public var eightBitMIME: Bool { supports("8BITMIME") }
    /// SMTPUTF8 (RFC 6531): UTF-8 addresses and headers may be used.
    public var smtpUTF8: Bool { supports("SMTPUTF8") }
    /// STARTTLS (RFC 3207).
    public var startTLS: Bool { supports("STARTTLS") }
    /// PIPELINING (RFC 2920).
    public var pipelining: Bool { supports("PIPELINING") }
    /// SIZE (RFC 1870) was advertised, with or without a limit.
    public var size: Bool { supports("SIZE") }
    /// The SIZE limit in octets; `nil` when SIZE is absent, has no number, or is 0 (RFC 1870 §4:
    /// 0 means no fixed maximum).
    public var maxMessageSize: Int? {
        guard let value = extensions["SIZE"]?.first.flatMap({ Int($0) }), value > 0 else { return nil }
        return value
    }
    /// SASL mechanisms offered by AUTH (RFC 4954), upper-cased, in the server's order, no repeats.
    public var authMechanisms: [String] {
        var seen: Set<String> = []
        return (extensions["AUTH"] ?? []).map { $0.uppercased() }.filter { seen.insert($0).inserted }
    }
}

/// Why an SMTP command could not be formatted.
public enum SMTPCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An address or argument contains CR, LF, another control character, whitespace or an angle
    /// bracket; sending it would let it end the command and inject another (command injection).
    case unsafeArgument(String)
    /// A non-ASCII address without SMTPUTF8 (RFC 6531 §3.4 requires the server's SMTPUTF8 and the
    /// SMTPUTF8 parameter on MAIL FROM).
    case nonASCIIAddressWithoutSMTPUTF8(String)
    /// A SASL PLAIN identity or password contains NUL, its field separator (RFC 4616 §2).
    case nulInCredentials

    public var description: String {
        switch self {
        case .unsafeArgument(let argument):
            return "unsafe SMTP argument \(argument.debugDescription) (CR, LF, control, space or angle bracket)"
        case .nonASCIIAddressWithoutSMTPUTF8(let address):
            return "address \(address.debugDescription) is not ASCII and SMTPUTF8 is not in use"
        case .nulInCredentials:
            return "SASL PLAIN credentials must not contain NUL"
        }
    }
}

/// One SMTP command line, ready to write: its exact octets, CRLF included (RFC 5321 §4.1).
///
/// Built only through the static factories, which validate every argument, so holding an
/// `SMTPCommand` means its bytes are one well-formed line.
public struct SMTPCommand: Sendable, Equatable, CustomStringConvertible {
    /// The octets to write, ending in CRLF.
    public let octets: [UInt8]
    /// True for commands that carry credentials; their `description` is redacted.
    public let isSensitive: Bool

    private init(_ line: String, sensitive: Bool = false) {
        octets = Array(line.utf8) + [0x0D, 0x0A]
        isSensitive = sensitive
    }

    /// The line without CRLF, with credentials replaced by `<redacted>` for logs.
    public var description: String {
        if isSensitive {
            let verb = String(decoding: octets.prefix { $0 != 0x0D }, as: UTF8.self)
            if verb.hasPrefix("AUTH ") { return verb.split(separator: " ").prefix(2).joined(separator: " ") + " <redacted>" }
            return "<redacted>"
        }
        return String(decoding: octets.dropLast(2), as: UTF8.self)
    }

    /// `EHLO domain` (§4.1.1.1). `domain` is the client's host name or an address literal such as
    /// `[192.0.2.1]`. - Throws: `.unsafeArgument`.
    public static func ehlo(_ domain: String) throws(SMTPCommandError) -> SMTPCommand {
        try checkArgument(domain, allowEmpty: false)
        return SMTPCommand("EHLO \(domain)")
    }

    /// `HELO domain` (§4.1.1.1), the fallback when EHLO is refused. - Throws: `.unsafeArgument`.
    public static func helo(_ domain: String) throws(SMTPCommandError) -> SMTPCommand {
        try checkArgument(domain, allowEmpty: false)
        return SMTPCommand("HELO \(domain)")
    }

    /// `MAIL FROM:<address>` (§4.1.1.2) plus optional parameters, in this order:
    /// `SIZE=n` (RFC 1870, message size in octets), `BODY=8BITMIME` (RFC 6152), `SMTPUTF8`
    /// (RFC 6531). An empty address gives the null reverse-path `<>` used for bounces.
    /// - Throws: `.unsafeArgument`, `.nonASCIIAddressWithoutSMTPUTF8`.
    public static func mailFrom(_ address: String, size: Int? = nil, eightBitMIME: Bool = false,
                                smtpUTF8: Bool = false) throws(SMTPCommandError) -> SMTPCommand {
        try checkAddress(address, smtpUTF8: smtpUTF8, allowEmpty: true)
        var line = "MAIL FROM:<\(address)>"
        if let size { line += " SIZE=\(max(0, size))" }
        if eightBitMIME { line += " BODY=8BITMIME" }
        if smtpUTF8 { line += " SMTPUTF8" }
        return SMTPCommand(line)
    }

    /// `RCPT TO:<address>` (§4.1.1.3). - Throws: `.unsafeArgument`, `.nonASCIIAddressWithoutSMTPUTF8`.
    public static func rcptTo(_ address: String, smtpUTF8: Bool = false) throws(SMTPCommandError) -> SMTPCommand {
        try checkAddress(address, smtpUTF8: smtpUTF8, allowEmpty: false)
        return SMTPCommand("RCPT TO:<\(address)>")
    }

    /// `DATA` (§4.1.1.4).
    public static let data = SMTPCommand("DATA")
    /// `RSET` (§4.1.1.5): abort the current transaction, keep the connection.
    public static let rset = SMTPCommand("RSET")
    /// `NOOP` (§4.1.1.9).
    public static let noop = SMTPCommand("NOOP")
    /// `QUIT` (§4.1.1.10).
    public static let quit = SMTPCommand("QUIT")
    /// `STARTTLS` (RFC 3207 §4).
    public static let startTLS = SMTPCommand("STARTTLS")
    /// `AUTH LOGIN` (the LOGIN mechanism, draft-murchison-sasl-login): the server answers 334 and
    /// expects `authLoginResponse(username)`, then 334 again and `authLoginResponse(password)`.
    public static let authLogin = SMTPCommand("AUTH LOGIN")

    /// `AUTH PLAIN <base64("authzid\0user\0pass")>` with the initial response on the same line
    /// (RFC 4954 §4, RFC 4616 §2), UTF-8 encoded. `authorizationIdentity` is normally empty.
    /// - Throws: `.nulInCredentials`.
    public static func authPlain(username: String, password: String,
                                 authorizationIdentity: String = "") throws(SMTPCommandError) -> SMTPCommand {
        guard ![username, password, authorizationIdentity].contains(where: { $0.utf8.contains(0) }) else {
            throw .nulInCredentials
        }
        let message = Array(authorizationIdentity.utf8) + [0] + Array(username.utf8) + [0] + Array(password.utf8)
        return SMTPCommand("AUTH PLAIN " + String(decoding: MIMEBodyEncoding.base64(message), as: UTF8.self),
                           sensitive: true)
    }

    /// One step of AUTH LOGIN: the base64 of `text` (UTF-8) on its own line (RFC 4954 §4).
    public static func authLoginResponse(_ text: String) -> SMTPCommand {
        SMTPCommand(String(decoding: MIMEBodyEncoding.base64(Array(text.utf8)), as: UTF8.self), sensitive: true)
    }

    /// Refuses CR, LF, other controls, DEL, space, TAB and angle brackets (and emptiness unless
    /// allowed): each could end the command line or the `<...>` path early.
    static func checkArgument(_ argument: String, allowEmpty: Bool) throws(SMTPCommandError) {
        guard allowEmpty || !argument.isEmpty,
              !argument.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") })
        else { throw .unsafeArgument(argument) }
    }

    static func checkAddress(_ address: String, smtpUTF8: Bool, allowEmpty: Bool) throws(SMTPCommandError) {
        try checkArgument(address, allowEmpty: allowEmpty)
        if !smtpUTF8 && address.utf8.contains(where: { $0 >= 0x80 }) {
            throw .nonASCIIAddressWithoutSMTPUTF8(address)
        }
    }
}
