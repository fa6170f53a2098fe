/// A mailbox for From/To headers: an optional display name and an `addr-spec`.
///
/// `address` is `local@domain` in printable US-ASCII (see `MIMEHeaderEncoding.validateAddress`);
/// internationalised addresses (RFC 6531/6532) are not produced by this encoder.
public struct MailMailbox: Sendable, Equatable, Hashable {
    /// The human-readable name, any Unicode text without CR/LF; `nil` or empty writes the bare
    /// `<address>` form.
    public var displayName: String?
    /// The address, e.g. `wang.xiaoming@example.com`.
    public var address: String

    public init(displayName: String? = nil, address: String) {
        self.displayName = displayName
        self.address = address
    }

    /// The domain part (after the last `@`), lower-cased; `nil` when there is no `@`.
    public var domain: String? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        let domain = address[address.index(after: at)...]
        return domain.isEmpty ? nil : domain.lowercased()
    }
}

/// Header-field encoding for outgoing mail: RFC 2047 encoded-words, RFC 5322 folding and
/// display-name quoting.
///
/// Every function returns a complete header field ending in CRLF, folded with CRLF followed by one
/// space (RFC 5322 §2.2.3), so unfolding (deleting each CRLF) gives back the field exactly.
///
/// Choices:
/// - Non-ASCII text is written as B-encoded (base64) `=?UTF-8?B?...?=` words. B gives a length
///   that does not depend on the text (4 characters per 3 octets), which makes the 75/76 limits
///   easy to honour; Q would only be shorter for mostly-Latin text.
/// - A value that needs encoding is encoded whole (spaces included), one encoded-word per line,
///   each word packed greedily with whole grapheme clusters (a grapheme larger than one word is
///   split between Unicode scalars, never inside a scalar), so each word decodes alone to valid
///   UTF-8 and renders without broken characters.
/// - Plain ASCII values are folded before whitespace when a line would pass 78 characters
///   (RFC 5322 §2.1.1 "SHOULD"); if an unbreakable run would push a line past 998 octets
///   (the "MUST"), the value is encoded instead, since encoded-words can be split anywhere.
public enum MIMEHeaderEncoding {
    /// Maximum length of one encoded-word in characters (RFC 2047 §2).
    public static let maxEncodedWordLength = 75
    /// Maximum length of a header line holding an encoded-word, CRLF excluded (RFC 2047 §2).
    public static let maxEncodedLineLength = 76
    /// Recommended maximum header line length, CRLF excluded (RFC 5322 §2.1.1).
    public static let preferredLineLength = 78
    /// Hard maximum header line length in octets, CRLF excluded (RFC 5322 §2.1.1).
    public static let maxLineLength = 998

    /// `=?UTF-8?B?` plus `?=`: the fixed overhead of one encoded-word, in characters.
    static let encodedWordOverhead = 12
    static let encodedWordPrefix = "=?UTF-8?B?"

    // MARK: Unstructured fields

    /// Renders one unstructured header field (`Subject`, `X-...`, `List-Unsubscribe`, ...) as
    /// `Name: value\r\n`, folded.
    ///
    /// - ASCII-only values stay plain text, folded before whitespace when a line would exceed 78
    ///   characters.
    /// - Values with non-ASCII or control characters, or with text that a reader would take for
    ///   an encoded-word (`=?`), become a sequence of encoded-words (RFC 2047 §2, §5(1)), each ≤ 75
    ///   characters, one per line, every line ≤ 76 characters.
    /// - Throws: `MailFormatError.invalidFieldName` for a bad name,
    ///   `MailFormatError.lineBreakInHeader` when `value` contains CR or LF.
    public static func encodeHeader(name: String, value: String) throws(MailFormatError) -> String {
        try validateFieldName(name)
        try rejectLineBreaks(value, field: name)
        if !needsEncoding(value), let plain = foldPlain(name: name, value: value) {
            return plain
        }
        return foldEncodedWords(name: name, text: value)
    }

    // MARK: Address fields

    /// Renders an address-list header (`From`, `To`, `Cc`, `Reply-To`) such as
    /// `To: "Li, Hua" <li.hua@example.org>, =?UTF-8?B?546L5bCP5piO?= <w@example.com>\r\n`.
    ///
    /// Mailboxes are separated by `, ` and folded between words so each line stays ≤ 76
    /// characters (the RFC 2047 limit, applied to every address line for simplicity). A token
    /// longer than a line (only possible with a very long address) is kept whole on its own line.
    /// - Parameter internationalized: allow UTF-8 in addresses (RFC 6532 §3.2), for a message
    ///   that is sent only with SMTPUTF8 (RFC 6531).
    /// - Throws: `MailFormatError.invalidFieldName`, `.lineBreakInHeader` (display name with
    ///   CR/LF) or `.invalidAddress`.
    public static func encodeAddressHeader(name: String, mailboxes: [MailMailbox],
                                           internationalized: Bool = false) throws(MailFormatError) -> String {
        try validateFieldName(name)
        var tokens: [String] = []
        for (index, mailbox) in mailboxes.enumerated() {
            var mailboxTokens = try mailboxTokens(mailbox, field: name, internationalized: internationalized)
            if index < mailboxes.count - 1, let last = mailboxTokens.popLast() {
                mailboxTokens.append(last + ",")
            }
            tokens += mailboxTokens
        }
        return foldTokens(firstLine: name + ":", tokens: tokens, limit: maxEncodedLineLength)
    }

    /// The unfolded text of one mailbox: `<addr>`, `Name <addr>`, `"Name, Inc." <addr>` or
    /// `=?UTF-8?B?...?= <addr>`.
    ///
    /// Display names are written (RFC 5322 §3.2.5 `phrase`, RFC 2047 §5(3)):
    /// - as atoms when they are ASCII atext words separated by single spaces;
    /// - as a quoted-string (RFC 5322 §3.2.4, `"` and `\` escaped with `\`) when they hold
    ///   specials such as `,` `.` `"` `(`, or irregular spacing;
    /// - as encoded-words when they hold non-ASCII or control characters, look like an
    ///   encoded-word, or would not fit on one line as a quoted-string.
    /// - Throws: `MailFormatError.lineBreakInHeader`, `.invalidAddress`.
    public static func formatMailbox(_ mailbox: MailMailbox) throws(MailFormatError) -> String {
        try mailboxTokens(mailbox, field: "mailbox").joined(separator: " ")
    }

    /// Checks that `address` is an `addr-spec` this encoder writes: exactly one `@` with a
    /// non-empty local part and domain, printable US-ASCII only, and none of whitespace,
    /// `<` `>` `(` `)` `[` `]` `,` `;` `:` `\` `"` (RFC 5322 §3.4.1 dot-atom form; quoted local parts
    /// and domain literals are refused rather than half-supported).
    /// - Throws: `MailFormatError.invalidAddress`.
    /// With `internationalized`, UTF-8 octets (≥ 0x80) are allowed too (RFC 6532 §3.2).
    public static func validateAddress(_ address: String, internationalized: Bool = false) throws(MailFormatError) {
        let forbidden: Set<UInt8> = Set("<>()[],;:\\\"".utf8)
        var atCount = 0
        for byte in address.utf8 {
            if byte == UInt8(ascii: "@") { atCount += 1; continue }
            if internationalized && byte >= 0x80 { continue }
            guard byte > 0x20, byte < 0x7F, !forbidden.contains(byte) else {
                throw .invalidAddress(address)
            }
        }
        guard atCount == 1, !address.hasPrefix("@"), !address.hasSuffix("@") else {
            throw .invalidAddress(address)
        }
    }

    // MARK: Internals shared with the message builder

    /// Throws unless `name` is non-empty printable ASCII without `:` (RFC 5322 §3.6.8).
    static func validateFieldName(_ name: String) throws(MailFormatError) {
        guard !name.isEmpty,
              name.utf8.allSatisfy({ $0 >= 33 && $0 <= 126 && $0 != UInt8(ascii: ":") })
        else { throw .invalidFieldName(name) }
    }

    static func rejectLineBreaks(_ text: String, field: String) throws(MailFormatError) {
        if text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) {
            throw .lineBreakInHeader(field: field)
        }
    }

    /// True when `text` cannot go out as plain header text: non-ASCII, controls other than TAB,
    /// DEL, or a `=?` that a reader could decode as an encoded-word (RFC 2047 §5(1)).
    static func needsEncoding(_ text: String) -> Bool {
        if text.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 >= 0x7F }) { return true }
        return text.contains("=?")
    }

    /// Plain folding of an ASCII value: `Name: value`, with CRLF inserted before a whitespace
    /// run whenever the line would pass 78 characters. `nil` when some line would still exceed
    /// 998 octets (an unbreakable run), so the caller must encode instead.
    static func foldPlain(name: String, value: String) -> String? {
        var lines = [name + ": "]
        for segment in whitespaceSegments(value) {
            let current = lines[lines.count - 1]
            let startsWithSpace = segment.first == " " || segment.first == "\t"
            let hasWord = segment.contains { $0 != " " && $0 != "\t" }
            // Fold only before whitespace that is followed by a word, so no line is all
            // whitespace (RFC 5322 §3.2.2) and unfolding restores the value exactly.
            if current.utf8.count + segment.utf8.count > preferredLineLength,
               startsWithSpace, hasWord, current.utf8.count > name.utf8.count + 2 {
                lines.append(segment)
            } else {
                lines[lines.count - 1] += segment
            }
        }
        guard lines.allSatisfy({ $0.utf8.count <= maxLineLength }) else { return nil }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Splits `text` into runs of (leading whitespace + following non-whitespace).
    static func whitespaceSegments(_ text: String) -> [String] {
        var segments: [String] = []
        var current = ""
        var inWord = false
        for character in text {
            let isSpace = character == " " || character == "\t"
            if isSpace && inWord {
                segments.append(current)
                current = ""
                inWord = false
            }
            if !isSpace { inWord = true }
            current.append(character)
        }
        if !current.isEmpty { segments.append(current) }
        return segments
    }

    /// The field as encoded-words, one per line; the first word sized to fit after `Name: `.
    static func foldEncodedWords(name: String, text: String) -> String {
        let firstColumns = name.utf8.count + 2
        let firstCapacity = octetCapacity(lineColumnsBeforeWord: firstColumns)
        let nextCapacity = octetCapacity(lineColumnsBeforeWord: 1)
        let chunks = utf8Chunks(text, firstCapacity: firstCapacity, nextCapacity: nextCapacity)
        let words = chunks.filter { !$0.isEmpty }.map(encodedWord)
        guard let firstWord = words.first else { return name + ": \r\n" }
        var lines: [String]
        if chunks[0].isEmpty {
            // The name is too long for any word after it: the words start on the next line.
            lines = [name + ":", " " + firstWord]
        } else {
            lines = [name + ": " + firstWord]
        }
        lines += words.dropFirst().map { " " + $0 }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Octets of UTF-8 that fit in one B-encoded word placed after `columns` characters of line:
    /// the word may take `min(75, 76 - columns)` characters, 12 of them overhead, and base64
    /// writes 4 characters per 3 octets.
    static func octetCapacity(lineColumnsBeforeWord columns: Int) -> Int {
        let wordLength = min(maxEncodedWordLength, maxEncodedLineLength - columns)
        let payload = wordLength - encodedWordOverhead
        return payload < 4 ? 0 : (payload / 4) * 3
    }

    /// `=?UTF-8?B?<base64>?=` for the given octets.
    static func encodedWord(_ octets: [UInt8]) -> String {
        encodedWordPrefix + String(decoding: MIMEBodyEncoding.base64(octets), as: UTF8.self) + "?="
    }

    /// Packs the UTF-8 of `text` into chunks of at most `firstCapacity` (first chunk) and
    /// `nextCapacity` octets, breaking only between grapheme clusters, or between scalars inside a
    /// grapheme too large for one chunk. The first chunk is empty when not even one unit fits in
    /// `firstCapacity`.
    static func utf8Chunks(_ text: String, firstCapacity: Int, nextCapacity: Int) -> [[UInt8]] {
        var units: [[UInt8]] = []
        for character in text {
            let bytes = Array(character.utf8)
            if bytes.count <= nextCapacity {
                units.append(bytes)
            } else {
                for scalar in character.unicodeScalars { units.append(Array(String(scalar).utf8)) }
            }
        }
        var chunks: [[UInt8]] = [[]]
        var capacity = firstCapacity
        for unit in units {
            if chunks[chunks.count - 1].count + unit.count > capacity {
                chunks.append([])
                capacity = nextCapacity
            }
            chunks[chunks.count - 1] += unit
        }
        return chunks
    }

    /// Display name (as phrase tokens) followed by `<address>`.
    static func mailboxTokens(_ mailbox: MailMailbox, field: String, internationalized: Bool = false) throws(MailFormatError) -> [String] {
        try validateAddress(mailbox.address, internationalized: internationalized)
        let angle = "<" + mailbox.address + ">"
        guard let name = mailbox.displayName, !name.isEmpty else { return [angle] }
        try rejectLineBreaks(name, field: field)
        return phraseTokens(name) + [angle]
    }

    /// RFC 5322 §3.2.5 phrase for a display name; see `formatMailbox` for the three forms.
    static func phraseTokens(_ name: String) -> [String] {
        if !needsEncoding(name) {
            let words = name.split(separator: " ", omittingEmptySubsequences: false)
            let regularSpacing = words.allSatisfy { !$0.isEmpty }
            if regularSpacing && words.allSatisfy({ $0.utf8.allSatisfy(isAtext) }) {
                return words.map(String.init)
            }
            var quoted = "\""
            for character in name {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            quoted.append("\"")
            // Longer quoted strings would need folding inside the quotes; encoded-words split
            // cleanly instead.
            if quoted.utf8.count <= maxEncodedLineLength - 1 { return [quoted] }
        }
        let capacity = octetCapacity(lineColumnsBeforeWord: 1)
        return utf8Chunks(name, firstCapacity: capacity, nextCapacity: capacity)
            .filter { !$0.isEmpty }
            .map(encodedWord)
    }

    /// RFC 5322 §3.2.3 atext: ALPHA / DIGIT and ``!#$%&'*+-/=?^_`{|}~``.
    static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
        }
    }

    /// Joins tokens with single spaces after `firstLine`, folding (CRLF + space) before a token
    /// that would push the line past `limit` characters.
    static func foldTokens(firstLine: String, tokens: [String], limit: Int) -> String {
        var lines = [firstLine]
        for token in tokens {
            let current = lines[lines.count - 1]
            let overflow = current.utf8.count + 1 + token.utf8.count > limit
            let bareFirstLine = lines.count == 1
                && current.utf8.count == firstLine.utf8.count
            // A token too long for any line stays after the field name rather than leaving
            // "Name:" alone on a line for nothing.
            if overflow && (!bareFirstLine || 1 + token.utf8.count <= limit) {
                lines.append(" " + token)
            } else {
                lines[lines.count - 1] += " " + token
            }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
