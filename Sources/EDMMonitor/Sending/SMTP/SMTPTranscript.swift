import EDMMonitorCore

/// What the client is writing, read back from the octets for stage bookkeeping and logs.
///
/// The conversation hands out octets only; which step they are follows from their verb, and from
/// the reply before them: after 354 they are the message payload (RFC 5321 §4.1.1.4), after 334
/// an AUTH LOGIN response (RFC 4954 §4).
enum SMTPTranscript {
    /// The stage whose reply the write of `octets` awaits.
    static func stage(of octets: [UInt8], after previousCode: Int?) -> SMTPConversationStage {
        if previousCode == 354 { return .payload }
        if previousCode == 334 { return .auth }
        let verb = String(decoding: octets.prefix(9).prefix { $0 != 0x20 && $0 != 0x0D && $0 != 0x3A }, as: UTF8.self)
        switch verb.uppercased() {
        case "EHLO": return .ehlo
        case "HELO": return .helo
        case "STARTTLS": return .startTLS
        case "AUTH": return .auth
        case "RSET": return .reset
        case "MAIL": return .mailFrom
        case "RCPT": return .rcptTo
        case "DATA": return .data
        case "QUIT": return .quit
        default: return .idle
        }
    }

    /// A log line for the write of `octets` at `stage`: the command without CRLF, with
    /// credentials replaced by `<redacted>` (everything after `AUTH <mechanism>`, and every
    /// AUTH LOGIN response) and the payload by its size. Never returns a password.
    static func logLine(_ octets: [UInt8], stage: SMTPConversationStage) -> String {
        switch stage {
        case .payload:
            return "<message payload, \(octets.count) octets>"
        case .auth:
            let words = String(decoding: octets.prefix(64), as: UTF8.self).split(separator: " ", maxSplits: 2)
            guard words.first?.uppercased() == "AUTH", words.count >= 2 else { return "<redacted>" }
            let mechanism = words[1].prefix { !$0.isWhitespace }
            return words.count > 2 ? "AUTH \(mechanism) <redacted>" : "AUTH \(mechanism)"
        default:
            var line = octets
            while let last = line.last, last == 0x0A || last == 0x0D { line.removeLast() }
            return String(decoding: line.prefix(512), as: UTF8.self)
        }
    }
}
