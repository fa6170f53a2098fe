import Foundation

/// One extra header field for a message, e.g. `List-Unsubscribe` or `X-EDM-Task-ID`.
public struct MailHeaderField: Sendable, Equatable, Hashable {
    /// Field name, printable ASCII without `:` (RFC 5322 §3.6.8).
    public var name: String
    /// Unstructured value; encoded with RFC 2047 when not plain ASCII. No CR/LF.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// An outgoing RFC 5322 message before rendering: who, what, and the body texts.
public struct MailMessage: Sendable, Equatable {
    /// The author; its domain also names the Message-ID (`<token@domain>`).
    public var from: MailMailbox
    /// The recipients shown in `To` (at least one). The envelope recipient is separate
    /// (`SMTPEnvelope.recipient`).
    public var to: [MailMailbox]
    /// The rendered subject text, any Unicode without CR/LF (RFC 2047-encoded when needed).
    public var subject: String
    /// The text/plain body, any line ends (normalized to CRLF on rendering).
    public var textBody: String
    /// The text/html alternative; when set the message is `multipart/alternative`.
    public var htmlBody: String?
    /// Extra header fields, written in order after MIME-Version.
    public var extraHeaders: [MailHeaderField]

    public init(from: MailMailbox, to: [MailMailbox], subject: String, textBody: String,
                htmlBody: String? = nil, extraHeaders: [MailHeaderField] = []) {
        self.from = from
        self.to = to
        self.subject = subject
        self.textBody = textBody
        self.htmlBody = htmlBody
        self.extraHeaders = extraHeaders
    }

    /// Header names the renderer writes itself; supplying them as extra headers is an error.
    public static let reservedHeaderNames: Set<String> = [
        "date", "from", "to", "subject", "message-id", "mime-version",
        "content-type", "content-transfer-encoding",
    ]

    /// Renders the whole message with CRLF line ends.
    ///
    /// Layout (RFC 5322 §3.6, RFC 2045, RFC 2046 §5.1.4):
    /// `Date`, `From`, `To`, `Subject`, `Message-ID`, `MIME-Version: 1.0`, the extra headers, then
    /// - text only: `Content-Type: text/plain; charset=utf-8` and its transfer encoding, a blank
    ///   line, the body;
    /// - with HTML: `Content-Type: multipart/alternative; boundary="..."`, a blank line, the text
    ///   part, the HTML part (least to most preferred, §5.1.4), the close delimiter.
    ///
    /// Each body's transfer encoding comes from `MIMEBodyEncoding.chooseTransferEncoding`.
    /// The boundary is `=_edm_<boundaryToken>`: `=_` can never occur in quoted-printable or base64
    /// output, and if a 7bit/8bit part contains it a `_<n>` suffix is added until none does.
    /// - Throws: `MailFormatError` for bad addresses, header names/values, tokens, reserved extra
    ///   headers, or no recipients.
    public func render(_ options: MailRenderOptions) throws(MailFormatError) -> RenderedMailMessage {
        guard !to.isEmpty else { throw .noRecipients }
        try MIMEHeaderEncoding.validateAddress(from.address)
        guard let domain = from.domain else { throw .invalidAddress(from.address) }
        try MailRenderOptions.validateToken(options.messageIDLocalPart)
        try MailRenderOptions.validateToken(options.boundaryToken)
        for field in extraHeaders where MailMessage.reservedHeaderNames.contains(field.name.lowercased()) {
            throw .reservedField(field.name)
        }

        let messageID = "<\(options.messageIDLocalPart)@\(domain)>"
        var head = ""
        head += "Date: " + MailDateFormat.rfc5322(options.date, utcOffsetMinutes: options.utcOffsetMinutes) + "\r\n"
        head += try MIMEHeaderEncoding.encodeAddressHeader(name: "From", mailboxes: [from])
        head += try MIMEHeaderEncoding.encodeAddressHeader(name: "To", mailboxes: to, internationalized: options.internationalizedRecipients)
        head += try MIMEHeaderEncoding.encodeHeader(name: "Subject", value: subject)
        head += "Message-ID: " + messageID + "\r\n"
        head += "MIME-Version: 1.0\r\n"
        for field in extraHeaders {
            head += try MIMEHeaderEncoding.encodeHeader(name: field.name, value: field.value)
        }

        let text = MIMEBodyEncoding.encode(textBody, eightBitMIME: options.eightBitMIME)
        var octets: [UInt8]
        var uses8Bit = text.transferEncoding == .eightBit
        if let htmlBody {
            let html = MIMEBodyEncoding.encode(htmlBody, eightBitMIME: options.eightBitMIME)
            uses8Bit = uses8Bit || html.transferEncoding == .eightBit
            let boundary = MailMessage.boundary(token: options.boundaryToken, avoiding: [text.octets, html.octets])
            head += "Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"\r\n"
            octets = Array(head.utf8)
            octets += [0x0D, 0x0A]
            for (part, mediaType) in [(text, "text/plain"), (html, "text/html")] {
                octets += Array("--\(boundary)\r\n".utf8)
                octets += Array("Content-Type: \(mediaType); charset=utf-8\r\n".utf8)
                octets += Array("Content-Transfer-Encoding: \(part.transferEncoding.rawValue)\r\n\r\n".utf8)
                octets += part.octets
                // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
                octets += [0x0D, 0x0A]
            }
            octets += Array("--\(boundary)--\r\n".utf8)
        } else {
            head += "Content-Type: text/plain; charset=utf-8\r\n"
            head += "Content-Transfer-Encoding: \(text.transferEncoding.rawValue)\r\n"
            octets = Array(head.utf8)
            octets += [0x0D, 0x0A]
            octets += text.octets
        }
        return RenderedMailMessage(octets: octets, messageID: messageID, requires8BitMIME: uses8Bit)
    }

    /// `=_edm_<token>`, with `_1`, `_2`, ... appended while it occurs in any of `parts`.
    static func boundary(token: String, avoiding parts: [[UInt8]]) -> String {
        let base = "=_edm_" + token
        var candidate = base
        var suffix = 0
        while parts.contains(where: { $0.containsSubsequence(Array(candidate.utf8)) }) {
            suffix += 1
            candidate = base + "_\(suffix)"
        }
        return candidate
    }
}

/// Inputs to rendering that vary per send, injected so tests are deterministic.
public struct MailRenderOptions: Sendable, Equatable {
    /// The `Date` header's instant.
    public var date: Date
    /// The zone offset written in `Date`, in minutes east of UTC (0 writes `+0000`).
    public var utcOffsetMinutes: Int
    /// The part before `@` in `Message-ID`; random in production (see `randomToken()`).
    public var messageIDLocalPart: String
    /// The random part of the multipart boundary.
    public var boundaryToken: String
    /// True when the server advertised 8BITMIME, so bodies may go out as `8bit`.
    public var eightBitMIME: Bool
    /// Allow UTF-8 recipient addresses in `To` (RFC 6532 §3.2). Such a message may only be sent
    /// with SMTPUTF8 (RFC 6531), which `SMTPClientConversation` requires for a non-ASCII
    /// envelope address.
    public var internationalizedRecipients = false

    public init(date: Date, utcOffsetMinutes: Int = 0, messageIDLocalPart: String = MailRenderOptions.randomToken(),
                boundaryToken: String = MailRenderOptions.randomToken(), eightBitMIME: Bool) {
        self.date = date
        self.utcOffsetMinutes = utcOffsetMinutes
        self.messageIDLocalPart = messageIDLocalPart
        self.boundaryToken = boundaryToken
        self.eightBitMIME = eightBitMIME
    }

    /// 32 lower-case hex digits from a random UUID (122 random bits): unique enough for a
    /// Message-ID (RFC 5322 §3.6.4) and a boundary.
    public static func randomToken() -> String {
        UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    static func validateToken(_ token: String) throws(MailFormatError) {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8)
        guard (1...60).contains(token.utf8.count),
              token.utf8.allSatisfy(allowed.contains),
              !token.hasPrefix("."), !token.hasSuffix("."), !token.contains("..")
        else { throw .invalidToken(token) }
    }
}

/// A rendered message.
public struct RenderedMailMessage: Sendable, Equatable {
    /// The whole message, headers and body, CRLF line ends, not dot-stuffed.
    public var octets: [UInt8]
    /// The `Message-ID` value including angle brackets, e.g. `<abc@example.com>`.
    public var messageID: String
    /// True when some part is `8bit`, so MAIL FROM must carry `BODY=8BITMIME` (RFC 6152).
    public var requires8BitMIME: Bool

    public init(octets: [UInt8], messageID: String, requires8BitMIME: Bool) {
        self.octets = octets
        self.messageID = messageID
        self.requires8BitMIME = requires8BitMIME
    }

    /// The octets to send after DATA's 354 reply: dot-stuffed, ending in CRLF `.` CRLF
    /// (see `SMTPDataPayload.encode`).
    public var dataPayload: [UInt8] { SMTPDataPayload.encode(octets) }
}

/// RFC 5322 §3.3 date-time text.
public enum MailDateFormat {
    static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Formats `date` as `Mon, 09 Mar 2026 10:05:00 +0000` (RFC 5322 §3.3): English names,
    /// two-digit day, seconds truncated, the local time at `utcOffsetMinutes` east of UTC and
    /// that offset as `+hhmm`/`-hhmm`. Computed with proleptic Gregorian arithmetic, so it does
    /// not depend on the process locale or time zone.
    public static func rfc5322(_ date: Date, utcOffsetMinutes: Int = 0) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + utcOffsetMinutes * 60
        let days = seconds.floorDiv(86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civilDate(daysSince1970: days)
        let weekday = weekdays[(days + 4).floorMod(7)]  // 1970-01-01 was a Thursday
        let sign = utcOffsetMinutes < 0 ? "-" : "+"
        let offset = abs(utcOffsetMinutes)
        return "\(weekday), \(pad(day)) \(months[month - 1]) \(year) "
            + "\(pad(secondOfDay / 3600)):\(pad(secondOfDay % 3600 / 60)):\(pad(secondOfDay % 60)) "
            + "\(sign)\(pad(offset / 60))\(pad(offset % 60))"
    }

    static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// Days since 1970-01-01 to (year, month 1...12, day 1...31); Howard Hinnant's
    /// `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms").
    static func civilDate(daysSince1970 days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = z.floorDiv(146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}

extension Int {
    fileprivate func floorDiv(_ divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    fileprivate func floorMod(_ divisor: Int) -> Int { self - floorDiv(divisor) * divisor }
}

extension Array where Element == UInt8 {
    /// True when `needle` occurs contiguously in the array.
    fileprivate func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        for start in 0...(count - needle.count) where self[start] == needle[0] {
            if self[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
