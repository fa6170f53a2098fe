/// A MIME Content-Transfer-Encoding (RFC 2045 §6.1), spelled as in the header.
public enum MIMETransferEncoding: String, Sendable, Equatable, CaseIterable {
    /// US-ASCII text, lines ≤ 998 octets, no NUL (RFC 2045 §2.7).
    case sevenBit = "7bit"
    /// Any octets but NUL, lines ≤ 998 octets; needs the server's 8BITMIME (RFC 6152) and
    /// `BODY=8BITMIME` on MAIL FROM (RFC 2045 §2.8).
    case eightBit = "8bit"
    /// RFC 2045 §6.7; 7bit-safe, readable for mostly-ASCII text.
    case quotedPrintable = "quoted-printable"
    /// RFC 2045 §6.8; 7bit-safe, 4/3 the size for any content.
    case base64 = "base64"
}

/// A body encoded for the wire: the transfer encoding to declare and the octets to write.
public struct MIMEEncodedBody: Sendable, Equatable {
    /// What goes in `Content-Transfer-Encoding`.
    public var transferEncoding: MIMETransferEncoding
    /// The encoded octets, CRLF line ends only. For 7bit/8bit they are the normalized text, with
    /// no line break added; for quoted-printable a missing final line break stays missing;
    /// base64 lines are joined by CRLF with none after the last.
    public var octets: [UInt8]

    public init(transferEncoding: MIMETransferEncoding, octets: [UInt8]) {
        self.transferEncoding = transferEncoding
        self.octets = octets
    }
}

/// Why an encoded body could not be decoded.
public enum MIMEDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An `=` in quoted-printable is followed by neither two hex digits nor a line break
    /// (RFC 2045 §6.7 rules 1 and 5). `offset` is its position in the input, in octets.
    case invalidQuotedPrintableEscape(offset: Int)
    /// The base64 text has characters outside the alphabet or a wrong length (RFC 2045 §6.8).
    case invalidBase64

    public var description: String {
        switch self {
        case .invalidQuotedPrintableEscape(let offset):
            return "invalid quoted-printable escape at octet \(offset)"
        case .invalidBase64:
            return "invalid base64 text"
        }
    }
}

/// Body encoding for outgoing mail: line-end normalization, the choice of
/// Content-Transfer-Encoding, quoted-printable and base64.
///
/// Line lengths are always measured in octets of the encoded form (`utf8.count` of text), never
/// in `Character`s: a line of 488 CJK characters is 1352 octets (case C07).
public enum MIMEBodyEncoding {
    /// Maximum line length in octets, CRLF excluded, for 7bit/8bit data (RFC 5321 §4.5.3.1.6,
    /// RFC 2045 §2.7–2.8).
    public static let maxLineOctets = 998
    /// Maximum encoded line length, CRLF excluded, for quoted-printable and base64 (RFC 2045
    /// §6.7 rule 5, §6.8).
    public static let maxEncodedLineLength = 76

    /// Rewrites every line end as CRLF: CRLF stays, a bare LF or bare CR becomes CRLF
    /// (RFC 5321 §2.3.8: bare CR and LF must never reach the wire).
    public static func normalizeLineEndings(_ octets: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(octets.count + octets.count / 32)
        var previousWasCR = false
        for byte in octets {
            if byte == 0x0A {
                if !previousWasCR { out.append(0x0D) }
                out.append(0x0A)
                previousWasCR = false
            } else {
                if previousWasCR { out.append(0x0A) }
                if byte == 0x0D {
                    out.append(0x0D)
                    previousWasCR = true
                } else {
                    out.append(byte)
                    previousWasCR = false
                }
            }
        }
        if previousWasCR { out.append(0x0A) }
        return out
    }

    /// Chooses the transfer encoding for CRLF-normalized octets:
    /// 1. `7bit` when all octets are ASCII, none is NUL and every line is ≤ 998 octets;
    /// 2. else `8bit` when `eightBitMIME` (the server advertised 8BITMIME) and there is no NUL and
    ///    every line is ≤ 998 octets;
    /// 3. else `quoted-printable` when at most one octet in six needs an `=XX` escape (then QP is
    ///    no larger than base64, since QP costs 2 extra characters per escaped octet and base64
    ///    1/3 extra on every octet), so mostly-ASCII text stays readable;
    /// 4. else `base64` (e.g. CJK or emoji-heavy text without 8BITMIME, or with over-long lines).
    public static func chooseTransferEncoding(normalized octets: [UInt8], eightBitMIME: Bool) -> MIMETransferEncoding {
        var allASCII = true
        var hasNUL = false
        var longestLine = 0
        var currentLine = 0
        var escapes = 0
        var index = 0
        while index < octets.count {
            let byte = octets[index]
            if byte == 0x0D, index + 1 < octets.count, octets[index + 1] == 0x0A {
                longestLine = max(longestLine, currentLine)
                currentLine = 0
                index += 2
                continue
            }
            currentLine += 1
            if byte >= 0x80 { allASCII = false }
            if byte == 0 { hasNUL = true }
            if !isQuotedPrintableLiteral(byte) && byte != 0x20 && byte != 0x09 { escapes += 1 }
            index += 1
        }
        longestLine = max(longestLine, currentLine)
        let linesFit = longestLine <= maxLineOctets && !hasNUL
        if allASCII && linesFit { return .sevenBit }
        if eightBitMIME && linesFit { return .eightBit }
        return escapes * 6 <= octets.count ? .quotedPrintable : .base64
    }

    /// Normalizes `text` to CRLF, chooses the transfer encoding (see `chooseTransferEncoding`) and
    /// encodes it.
    public static func encode(_ text: String, eightBitMIME: Bool) -> MIMEEncodedBody {
        let normalized = normalizeLineEndings(text.utf8)
        let encoding = chooseTransferEncoding(normalized: normalized, eightBitMIME: eightBitMIME)
        return MIMEEncodedBody(transferEncoding: encoding, octets: encode(normalized: normalized, as: encoding))
    }

    /// Encodes CRLF-normalized octets with the given transfer encoding. For `7bit`/`8bit` the
    /// octets are returned unchanged: call `chooseTransferEncoding` first to know they are valid.
    public static func encode(normalized octets: [UInt8], as encoding: MIMETransferEncoding) -> [UInt8] {
        switch encoding {
        case .sevenBit, .eightBit: return octets
        case .quotedPrintable: return quotedPrintableEncode(octets)
        case .base64: return base64Lines(octets)
        }
    }

    // MARK: Quoted-printable

    /// RFC 2045 §6.7 literal octets: `!` through `~` except `=`.
    static func isQuotedPrintableLiteral(_ byte: UInt8) -> Bool {
        byte >= 33 && byte <= 126 && byte != UInt8(ascii: "=")
    }

    static let upperHex: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Quoted-printable encoding of text (RFC 2045 §6.7).
    ///
    /// Each CRLF in the input is a hard line break and is written as CRLF. Octets other than
    /// `!`…`~` (minus `=`), SPACE and TAB become `=XX` (upper-case hex); SPACE/TAB at the end of a
    /// line become `=20`/`=09` (rule 3). Lines longer than 76 characters get soft breaks (`=` CRLF,
    /// rule 5) placed so no `=XX` triplet is split. A bare CR or LF (not possible after
    /// `normalizeLineEndings`) is escaped. A missing final line break stays missing.
    /// - Returns: ASCII octets, every line ≤ 76 characters.
    public static func quotedPrintableEncode(_ octets: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(octets.count + octets.count / 2)
        var lineStart = 0
        var index = 0
        func flushLine(_ line: ArraySlice<UInt8>) {
            // Tokens are 1 literal character or a 3-character escape.
            var tokens: [[UInt8]] = []
            tokens.reserveCapacity(line.count)
            for (offset, byte) in zip(line.indices, line) {
                let isLast = offset == line.index(before: line.endIndex)
                let literal = isQuotedPrintableLiteral(byte) || ((byte == 0x20 || byte == 0x09) && !isLast)
                if literal {
                    tokens.append([byte])
                } else {
                    tokens.append([UInt8(ascii: "="), upperHex[Int(byte >> 4)], upperHex[Int(byte & 0x0F)]])
                }
            }
            var column = 0
            for (position, token) in tokens.enumerated() {
                let isLastToken = position == tokens.count - 1
                // The final token may use column 76; others must leave room for the soft-break "=".
                let limit = isLastToken ? maxEncodedLineLength : maxEncodedLineLength - 1
                if column + token.count > limit {
                    out += [UInt8(ascii: "="), 0x0D, 0x0A]
                    column = 0
                }
                out += token
                column += token.count
            }
        }
        while index < octets.count {
            if octets[index] == 0x0D, index + 1 < octets.count, octets[index + 1] == 0x0A {
                flushLine(octets[lineStart..<index])
                out += [0x0D, 0x0A]
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        if lineStart < octets.count { flushLine(octets[lineStart..<octets.count]) }
        return out
    }

    /// Decodes quoted-printable (RFC 2045 §6.7): `=XX` gives octet XX (either hex case), `=` at the
    /// end of a line is a soft break and is removed with its line break, whitespace at the end of
    /// an encoded line is dropped (rule 3: transports may add it), CRLF or LF is a hard break and
    /// comes out as CRLF.
    /// - Throws: `MIMEDecodingError.invalidQuotedPrintableEscape` for `=` followed by anything else.
    public static func quotedPrintableDecode(_ encoded: some Collection<UInt8>) throws(MIMEDecodingError) -> [UInt8] {
        let input = Array(encoded)
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var lineStart = 0
        while lineStart <= input.count {
            // Find this line's end and the length of its line break.
            var lineEnd = lineStart
            while lineEnd < input.count, input[lineEnd] != 0x0A { lineEnd += 1 }
            let hasBreak = lineEnd < input.count
            var contentEnd = lineEnd
            if hasBreak, contentEnd > lineStart, input[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            while contentEnd > lineStart, input[contentEnd - 1] == 0x20 || input[contentEnd - 1] == 0x09 {
                contentEnd -= 1
            }
            var index = lineStart
            var softBreak = false
            while index < contentEnd {
                let byte = input[index]
                if byte == UInt8(ascii: "=") {
                    if index == contentEnd - 1 {
                        softBreak = true
                        index += 1
                        continue
                    }
                    guard index + 2 < contentEnd,
                          let high = mailHexDigitValue(input[index + 1]), let low = mailHexDigitValue(input[index + 2])
                    else { throw .invalidQuotedPrintableEscape(offset: index) }
                    out.append(high << 4 | low)
                    index += 3
                } else {
                    out.append(byte)
                    index += 1
                }
            }
            if hasBreak && !softBreak { out += [0x0D, 0x0A] }
            if !hasBreak { break }
            lineStart = lineEnd + 1
        }
        return out
    }

    // MARK: Base64

    static let base64Alphabet: [UInt8] =
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Base64 of `octets` on one line, padded with `=` (RFC 2045 §6.8 alphabet).
    public static func base64(_ octets: some Collection<UInt8>) -> [UInt8] {
        let input = Array(octets)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var index = 0
        while index < input.count {
            let b0 = input[index]
            let b1 = index + 1 < input.count ? input[index + 1] : 0
            let b2 = index + 2 < input.count ? input[index + 2] : 0
            out.append(base64Alphabet[Int(b0 >> 2)])
            out.append(base64Alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < input.count ? base64Alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < input.count ? base64Alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return out
    }

    /// Base64 body text: lines of 76 characters joined by CRLF, no CRLF after the last line
    /// (RFC 2045 §6.8).
    public static func base64Lines(_ octets: some Collection<UInt8>) -> [UInt8] {
        let flat = base64(octets)
        var out: [UInt8] = []
        out.reserveCapacity(flat.count + flat.count / maxEncodedLineLength * 2)
        var index = 0
        while index < flat.count {
            if index > 0 { out += [0x0D, 0x0A] }
            let end = min(index + maxEncodedLineLength, flat.count)
            out += flat[index..<end]
            index = end
        }
        return out
    }

    /// Decodes base64 text, skipping CR, LF, SPACE and TAB; accepts missing `=` padding.
    /// Returns `nil` for characters outside the alphabet, data after padding, or a length that
    /// leaves a single dangling character.
    public static func base64Decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.count)
        var padding = 0
        for byte in text {
            switch byte {
            case 0x0D, 0x0A, 0x20, 0x09: continue
            case UInt8(ascii: "="): padding += 1; continue
            default: break
            }
            guard padding == 0 else { return nil }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            values.append(value)
        }
        guard values.count % 4 != 1, padding <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index + 1 < values.count {
            out.append(values[index] << 2 | values[index + 1] >> 4)
            if index + 2 < values.count { out.append(values[index + 1] << 4 | values[index + 2] >> 2) }
            if index + 3 < values.count { out.append(values[index + 2] << 6 | values[index + 3]) }
            index += 4
        }
        return out
    }
}

/// The SMTP DATA payload (RFC 5321 §4.1.1.4, §4.5.2).
public enum SMTPDataPayload {
    /// Turns a message into the octets to send after the server's 354 reply:
    /// line ends normalized to CRLF (no bare CR or LF reaches the wire), every line starting with
    /// `.` gets one more `.` (transparency, §4.5.2), a CRLF is added after the last line if it is
    /// missing, then the terminator `.` CRLF. An empty message gives just `.` CRLF.
    public static func encode(_ message: some Collection<UInt8>) -> [UInt8] {
        let normalized = MIMEBodyEncoding.normalizeLineEndings(message)
        var out: [UInt8] = []
        out.reserveCapacity(normalized.count + normalized.count / 64 + 5)
        var atLineStart = true
        for byte in normalized {
            if atLineStart && byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out.append(byte)
            atLineStart = byte == 0x0A
        }
        if !out.isEmpty && !atLineStart { out += [0x0D, 0x0A] }
        out += [UInt8(ascii: "."), 0x0D, 0x0A]
        return out
    }
}
