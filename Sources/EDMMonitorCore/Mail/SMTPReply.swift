/// What an SMTP reply code's first digit says (RFC 5321 §4.2.1).
public enum SMTPReplyCategory: Sendable, Equatable {
    /// 2yz: the command succeeded.
    case positiveCompletion
    /// 3yz: accepted, more input expected (354 after DATA, 334 during AUTH).
    case positiveIntermediate
    /// 4yz: not done, but the condition is temporary: retry later.
    case transientNegative
    /// 5yz: not done, and repeating the same command will fail again.
    case permanentNegative
}

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.1.1` (bad destination
/// mailbox) or `4.7.1` (delivery not authorized, often greylisting or rate limiting).
public struct SMTPEnhancedStatusCode: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    public var statusClass: Int
    /// 0...999.
    public var subject: Int
    /// 0...999.
    public var detail: Int

    public init(statusClass: Int, subject: Int, detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `2.0.0`-style text (RFC 3463 §2: class 2/4/5, then 1–3 digits twice, no leading
    /// zeros required). `nil` for anything else.
    public init?(_ text: Substring) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              parts.allSatisfy({ (1...3).contains($0.count) && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
              parts[0].count == 1,
              let statusClass = Int(parts[0]), [2, 4, 5].contains(statusClass),
              let subject = Int(parts[1]), let detail = Int(parts[2])
        else { return nil }
        self.init(statusClass: statusClass, subject: subject, detail: detail)
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }
}

/// One complete SMTP reply, single- or multi-line (RFC 5321 §4.2).
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    /// The three-digit reply code, 200...559.
    public var code: Int
    /// The enhanced status code from the start of the first line's text (RFC 2034 §4), when
    /// present and of the same class as `code`.
    public var enhancedStatus: SMTPEnhancedStatusCode?
    /// The text of each line after `code` and its separator, with a leading enhanced status code
    /// (and the space after it) removed from every line that carries one. At least one element
    /// (possibly empty).
    public var lines: [String]

    public init(code: Int, enhancedStatus: SMTPEnhancedStatusCode? = nil, lines: [String]) {
        self.code = code
        self.enhancedStatus = enhancedStatus
        self.lines = lines.isEmpty ? [""] : lines
    }

    /// The category from the first digit (RFC 5321 §4.2.1).
    public var category: SMTPReplyCategory {
        switch code / 100 {
        case 2: return .positiveCompletion
        case 3: return .positiveIntermediate
        case 4: return .transientNegative
        default: return .permanentNegative
        }
    }

    /// 2yz.
    public var isPositiveCompletion: Bool { category == .positiveCompletion }
    /// 4yz: worth retrying later.
    public var isTransientFailure: Bool { category == .transientNegative }
    /// 5yz: do not retry unchanged.
    public var isPermanentFailure: Bool { category == .permanentNegative }

    /// All lines joined with a space, for logs and failure reasons.
    public var text: String { lines.joined(separator: " ") }

    public var description: String {
        if let enhancedStatus { return "\(code) \(enhancedStatus) \(text)" }
        return "\(code) \(text)"
    }
}

/// Why server output could not be read as SMTP replies. After any of these the connection's
/// framing is lost and it should be closed.
public enum SMTPReplyParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A line does not start with a three-digit code 2xx–5xx followed by `-`, space or the end of
    /// the line (RFC 5321 §4.2: `Reply-code [ SP textstring ] CRLF`).
    case malformedLine(String)
    /// A continuation line's code differs from the first line's (RFC 5321 §4.2.1: all lines of a
    /// multi-line reply carry the same code).
    case inconsistentCode(expected: Int, found: Int)
    /// A line grew past `SMTPReplyParser.maxLineOctets` without a line break.
    case lineTooLong(octets: Int)
    /// A reply grew past `SMTPReplyParser.maxLinesPerReply` lines.
    case tooManyLines(Int)

    public var description: String {
        switch self {
        case .malformedLine(let line): return "malformed SMTP reply line \(line.debugDescription)"
        case .inconsistentCode(let expected, let found):
            return "multi-line SMTP reply changed code from \(expected) to \(found)"
        case .lineTooLong(let octets): return "SMTP reply line longer than \(octets) octets"
        case .tooManyLines(let count): return "SMTP reply with more than \(count) lines"
        }
    }
}

/// Incremental SMTP reply reader: feed it octets as they arrive, get complete replies back.
///
/// Lines end in CRLF; a bare LF is accepted too (lenient reading, RFC 5321 §4.5.3.1.5 spirit of
/// robustness) and a CR before it is dropped. `250-text` continues a reply and `250 text` or `250`
/// ends it (§4.2.1). Text is read as UTF-8 with invalid octets replaced (servers may send
/// 8-bit text in replies).
public struct SMTPReplyParser: Sendable {
    /// Longest line accepted before a line break, in octets. RFC 5321 §4.5.3.1.5 allows 512
    /// including CRLF; real servers exceed it a little, so the limit only guards memory.
    public static let maxLineOctets = 4096
    /// Most lines accepted in one reply (guards memory against a server that never ends a reply).
    public static let maxLinesPerReply = 1000

    private var buffer: [UInt8] = []
    private var pendingCode: Int?
    private var pendingLines: [(text: String, enhanced: SMTPEnhancedStatusCode?)] = []

    public init() {}

    /// True when octets of an incomplete line or reply are held.
    public var hasPartialReply: Bool { !buffer.isEmpty || pendingCode != nil }

    /// Appends `octets` and returns every reply they complete, in order (several with PIPELINING).
    /// - Throws: `SMTPReplyParseError`; the parser must not be used afterwards.
    public mutating func feed(_ octets: some Sequence<UInt8>) throws(SMTPReplyParseError) -> [SMTPReply] {
        buffer.append(contentsOf: octets)
        var replies: [SMTPReply] = []
        var lineStart = 0
        while let newline = buffer[lineStart...].firstIndex(of: 0x0A) {
            var lineEnd = newline
            if lineEnd > lineStart, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = Array(buffer[lineStart..<lineEnd])
            lineStart = newline + 1
            if let reply = try consume(line: line) { replies.append(reply) }
        }
        buffer.removeFirst(lineStart)
        if buffer.count > SMTPReplyParser.maxLineOctets { throw .lineTooLong(octets: SMTPReplyParser.maxLineOctets) }
        return replies
    }

    private mutating func consume(line: [UInt8]) throws(SMTPReplyParseError) -> SMTPReply? {
        let display = String(decoding: line, as: UTF8.self)
        if line.count > SMTPReplyParser.maxLineOctets { throw .lineTooLong(octets: SMTPReplyParser.maxLineOctets) }
        guard line.count >= 3,
              (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(line[0]),
              (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[1]),
              (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[2])
        else { throw .malformedLine(display) }
        let code = Int(line[0] - 0x30) * 100 + Int(line[1] - 0x30) * 10 + Int(line[2] - 0x30)
        var isLast = true
        if line.count > 3 {
            switch line[3] {
            case UInt8(ascii: " "): isLast = true
            case UInt8(ascii: "-"): isLast = false
            default: throw .malformedLine(display)
            }
        }
        if let pendingCode, pendingCode != code { throw .inconsistentCode(expected: pendingCode, found: code) }
        pendingCode = code
        let text = line.count > 4 ? String(decoding: line[4...], as: UTF8.self) : ""
        pendingLines.append(SMTPReplyParser.splitEnhanced(text, code: code))
        if pendingLines.count > SMTPReplyParser.maxLinesPerReply {
            throw .tooManyLines(SMTPReplyParser.maxLinesPerReply)
        }
        guard isLast else { return nil }
        let reply = SMTPReply(code: code, enhancedStatus: pendingLines.first?.enhanced,
                              lines: pendingLines.map(\.text))
        pendingCode = nil
        pendingLines = []
        return reply
    }

    /// Separates a leading enhanced status code whose class matches the reply's first digit
    /// (RFC 2034 §4), so `250 2.1.0 Ok` gives (`Ok`, 2.1.0) but an EHLO line such as `250 8BITMIME`
    /// or a 250 reply starting `5.0 ...` is left alone.
    static func splitEnhanced(_ text: String, code: Int) -> (text: String, enhanced: SMTPEnhancedStatusCode?) {
        let token = text.prefix { $0 != " " }
        guard let status = SMTPEnhancedStatusCode(token), status.statusClass == code / 100 else {
            return (text, nil)
        }
        return (String(text.dropFirst(token.count).drop { $0 == " " }), status)
    }
}
