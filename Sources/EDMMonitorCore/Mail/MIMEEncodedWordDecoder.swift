import Foundation

/// One parsed RFC 2047 encoded-word, `=?charset?encoding?encoded-text?=`, with its text already
/// turned back into octets (still in `charset`).
public struct MIMEEncodedWord: Sendable, Equatable {
    /// The charset name as written, without an RFC 2231 `*language` suffix (e.g. `UTF-8`).
    public var charset: String
    /// The RFC 2231 §5 language tag after `*`, if any.
    public var language: String?
    /// `B` (base64, RFC 2047 §4.1) or `Q` (RFC 2047 §4.2), upper-cased.
    public var encoding: Character
    /// The decoded octets of the encoded-text.
    public var octets: [UInt8]
    /// The word exactly as it appeared, kept so an undecodable word can be shown as-is
    /// (RFC 2047 §6.3).
    public var source: String

    /// Parses one whole token such as `=?UTF-8?B?546L?=`. Returns `nil` when the token is not a
    /// well-formed encoded-word: wrong delimiters, empty charset, encoding other than B/Q,
    /// whitespace or `?` in the text, or base64 that does not decode.
    public init?(parsing token: Substring) {
        let bytes = Array(token.utf8)
        guard let (word, end) = MIMEEncodedWord.parse(bytes, at: 0), end == bytes.count else { return nil }
        self = word
    }

    /// The octets decoded from `charset` to text, or `nil` when the charset is unknown or the
    /// octets are not valid in it. Never inserts replacement characters.
    public var decodedText: String? {
        MIMEEncodedWordDecoder.decodeStrictly(octets, charset: charset)
    }

    init(charset: String, language: String?, encoding: Character, octets: [UInt8], source: String) {
        self.charset = charset
        self.language = language
        self.encoding = encoding
        self.octets = octets
        self.source = source
    }

    /// Parses an encoded-word starting at `start`; returns it and the index after `?=`.
    static func parse(_ bytes: [UInt8], at start: Int) -> (MIMEEncodedWord, Int)? {
        let question = UInt8(ascii: "?")
        guard start + 1 < bytes.count, bytes[start] == UInt8(ascii: "="), bytes[start + 1] == question else {
            return nil
        }
        func isTokenByte(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F && byte != question }
        // charset[*language]
        var index = start + 2
        let charsetStart = index
        while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
        guard index < bytes.count, bytes[index] == question, index > charsetStart else { return nil }
        let charsetField = String(decoding: bytes[charsetStart..<index], as: UTF8.self)
        index += 1
        // encoding
        guard index + 1 < bytes.count, bytes[index + 1] == question else { return nil }
        let encoding: Character
        switch bytes[index] {
        case UInt8(ascii: "B"), UInt8(ascii: "b"): encoding = "B"
        case UInt8(ascii: "Q"), UInt8(ascii: "q"): encoding = "Q"
        default: return nil
        }
        index += 2
        // encoded-text up to "?="
        let textStart = index
        while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
        guard index + 1 < bytes.count, bytes[index] == question, bytes[index + 1] == UInt8(ascii: "=") else {
            return nil
        }
        let text = Array(bytes[textStart..<index])
        let end = index + 2
        let octets: [UInt8]
        if encoding == "B" {
            guard let decoded = MIMEBodyEncoding.base64Decode(text) else { return nil }
            octets = decoded
        } else {
            octets = MIMEEncodedWord.decodeQ(text)
        }
        let parts = charsetField.split(separator: "*", maxSplits: 1, omittingEmptySubsequences: false)
        guard let charset = parts.first, !charset.isEmpty else { return nil }
        let language = parts.count > 1 ? String(parts[1]) : nil
        let source = String(decoding: bytes[start..<end], as: UTF8.self)
        return (MIMEEncodedWord(charset: String(charset), language: language, encoding: encoding,
                                octets: octets, source: source), end)
    }

    /// RFC 2047 §4.2: `_` is 0x20, `=XX` is the octet XX; a malformed `=` is kept literally
    /// (lenient, as inbound bounce headers are often sloppy).
    static func decodeQ(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var index = 0
        while index < text.count {
            let byte = text[index]
            if byte == UInt8(ascii: "_") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "="), index + 2 < text.count,
                      let high = mailHexDigitValue(text[index + 1]), let low = mailHexDigitValue(text[index + 2]) {
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }
}

/// Hex digit value (either case), or `nil`.
func mailHexDigitValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    default: return nil
    }
}

/// RFC 2047 decoding of header values, for tests of our own output and for reading inbound
/// headers (bounces, DSNs).
///
/// Rules:
/// - Unfolding first (RFC 5322 §2.2.3): each CRLF (or bare LF) followed by whitespace is removed.
/// - Linear whitespace between two adjacent encoded-words is dropped (RFC 2047 §6.2); whitespace
///   next to ordinary text is kept.
/// - Adjacent encoded-words with the same charset (case-insensitive) have their octets joined
///   before charset decoding. RFC 2047 §5 forbids splitting a character across words, but real
///   senders do it (case C06-subject-split-midchar), and joining is harmless for correct input.
/// - Encoded-words are recognised anywhere, even touching other text; real mailers do not always
///   put the whitespace RFC 2047 §5 asks for.
/// - Known charsets: UTF-8, US-ASCII, ISO-8859-1, Windows-1252, GB2312/GBK/GB18030 (all read as
///   GB18030, their superset), Big5, Shift_JIS, EUC-JP, ISO-2022-JP, EUC-KR, UTF-16. A run in an
///   unknown charset is left as its original encoded-words (RFC 2047 §6.3); octets invalid in a
///   known charset become U+FFFD for UTF-8, or are left encoded for the others.
/// - Raw UTF-8 outside encoded-words (RFC 6532) passes through.
public enum MIMEEncodedWordDecoder {
    /// Removes folding: every CRLF or LF that is followed by SP or TAB is deleted
    /// (RFC 5322 §2.2.3). A final line break is removed too.
    public static func unfold(_ text: String) -> String {
        var bytes = Array(text.utf8)
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            let breakLength: Int
            if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A {
                breakLength = 2
            } else if byte == 0x0A {
                breakLength = 1
            } else {
                breakLength = 0
            }
            if breakLength > 0, index + breakLength < bytes.count,
               bytes[index + breakLength] == 0x20 || bytes[index + breakLength] == 0x09 {
                index += breakLength
                continue
            }
            out.append(byte)
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes all encoded-words in a header value (folded or not) to text.
    /// Never throws: anything malformed is kept as literal text.
    public static func decode(_ value: String) -> String {
        enum Segment { case text([UInt8]), words([MIMEEncodedWord]) }
        let bytes = Array(unfold(value).utf8)
        var segments: [Segment] = []
        var text: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if let (word, end) = MIMEEncodedWord.parse(bytes, at: index) {
                let onlySpaceSinceWord = text.allSatisfy { $0 == 0x20 || $0 == 0x09 }
                if case .words(var run)? = segments.last, onlySpaceSinceWord {
                    // RFC 2047 §6.2: whitespace between adjacent encoded-words is not displayed.
                    run.append(word)
                    segments[segments.count - 1] = .words(run)
                } else {
                    if !text.isEmpty { segments.append(.text(text)) }
                    segments.append(.words([word]))
                }
                text = []
                index = end
            } else {
                text.append(bytes[index])
                index += 1
            }
        }
        if !text.isEmpty { segments.append(.text(text)) }

        var result = ""
        for segment in segments {
            switch segment {
            case .text(let octets):
                result += String(decoding: octets, as: UTF8.self)
            case .words(let run):
                result += decodeRun(run)
            }
        }
        return result
    }

    /// Splits a raw header field (`Name: value`, possibly folded) into its name and decoded value,
    /// with the single space after the colon removed. `nil` when there is no colon.
    public static func decodeHeaderField(_ field: String) -> (name: String, value: String)? {
        let unfolded = unfold(field)
        guard let colon = unfolded.firstIndex(of: ":") else { return nil }
        let name = String(unfolded[..<colon])
        var value = unfolded[unfolded.index(after: colon)...]
        while value.first == " " || value.first == "\t" { value = value.dropFirst() }
        return (name, decode(String(value)))
    }

    /// Joins same-charset neighbours and decodes each group.
    static func decodeRun(_ run: [MIMEEncodedWord]) -> String {
        var result = ""
        var groupStart = 0
        while groupStart < run.count {
            var groupEnd = groupStart + 1
            let charset = run[groupStart].charset.lowercased()
            while groupEnd < run.count, run[groupEnd].charset.lowercased() == charset { groupEnd += 1 }
            let group = run[groupStart..<groupEnd]
            let octets = group.flatMap(\.octets)
            if let text = decodeStrictly(octets, charset: charset) {
                result += text
            } else if isUTF8(charset) {
                result += String(decoding: octets, as: UTF8.self)
            } else {
                result += group.map(\.source).joined(separator: " ")
            }
            groupStart = groupEnd
        }
        return result
    }

    static func isUTF8(_ charset: String) -> Bool {
        let lower = charset.lowercased()
        return lower == "utf-8" || lower == "utf8"
    }

    /// Decodes `octets` in `charset`, or `nil` if the charset is unknown or the octets invalid.
    static func decodeStrictly(_ octets: [UInt8], charset: String) -> String? {
        let lower = charset.lowercased()
        if isUTF8(lower) || lower == "us-ascii" || lower == "ascii" {
            if lower != "utf-8" && lower != "utf8" && octets.contains(where: { $0 >= 0x80 }) { return nil }
            // Round-trip check instead of String(validating:), which needs macOS 15.
            let text = String(decoding: octets, as: UTF8.self)
            return text.utf8.elementsEqual(octets) ? text : nil
        }
        if lower == "iso-8859-1" || lower == "latin1" || lower == "iso_8859-1" {
            // Latin-1 octets are exactly the first 256 Unicode scalars.
            return String(String.UnicodeScalarView(octets.map { Unicode.Scalar($0) }))
        }
        guard let encoding = foundationEncoding(lower) else { return nil }
        return String(bytes: octets, encoding: encoding)
    }

    /// IANA charset names mapped to Foundation encodings (CFStringEncoding values for the CJK
    /// ones that have no named constant).
    static func foundationEncoding(_ lowercasedName: String) -> String.Encoding? {
        switch lowercasedName {
        case "windows-1252", "cp1252": return .windowsCP1252
        case "gb2312", "gbk", "gb18030", "cp936", "euc-cn": return String.Encoding(rawValue: 0x8000_0632)
        case "big5": return String.Encoding(rawValue: 0x8000_0A03)
        case "euc-kr": return String.Encoding(rawValue: 0x8000_0940)
        case "shift_jis", "shift-jis", "sjis": return .shiftJIS
        case "euc-jp": return .japaneseEUC
        case "iso-2022-jp": return .iso2022JP
        case "utf-16": return .utf16
        case "utf-16be": return .utf16BigEndian
        case "utf-16le": return .utf16LittleEndian
        default: return nil
        }
    }
}
