import Foundation

/// What a failed send means for the recipient, the message and the service: the reply
/// classification of reference case C09, shared by the SMTP and HTTP mailers.
public enum DeliveryFailureClass: Sendable, Equatable {
    /// The session ended (SMTP 421, RFC 5321 §3.8, or a 4yz during session set-up): nothing is
    /// wrong with the recipient; requeue without spending an attempt and reconnect later.
    case session
    /// Temporary for this recipient or message (4yz, HTTP 408/429/5xx): retry, no sooner than
    /// `retryAfterSeconds` when the server said so.
    case temporary(retryAfterSeconds: Double?)
    /// The mailbox or its domain does not exist (RFC 3463 X.1.1, X.1.2, X.1.6, X.1.10 in a 5yz
    /// reply): fail the recipient and let the deliverability work suppress the address.
    case hardBounce
    /// Permanent, but not a statement about the mailbox (policy 5.7.x, content, syntax, HTTP
    /// 4xx): fail the recipient, do not suppress the address.
    case permanent
    /// The service's own settings are wrong (SMTP 530/535 or a 5yz while setting the session up,
    /// HTTP 401): pause the service, never fail the recipient.
    case serviceConfiguration
}

/// Sorts SMTP replies into `DeliveryFailureClass` (reference case C09).
public enum SMTPReplyClassification {
    /// Enhanced status codes (RFC 3463 §3.2) that say the address itself is dead: bad
    /// destination mailbox (X.1.1), bad destination system (X.1.2), mailbox moved (X.1.6), and
    /// no mail accepted by the domain (X.1.10, RFC 7505 null MX).
    static let hardBounceStatuses: Set<SMTPEnhancedStatusCode> = [
        SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 1),
        SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 2),
        SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 6),
        SMTPEnhancedStatusCode(statusClass: 5, subject: 1, detail: 10),
    ]

    /// The class of a failure `reply` received at `stage`.
    ///
    /// - 421 anywhere, and any 4yz before a transaction (greeting, EHLO, STARTTLS, AUTH, RSET):
    ///   `.session`.
    /// - 530 and 535 (RFC 4954 §6: authentication required / credentials invalid), and any 5yz
    ///   before a transaction: `.serviceConfiguration`.
    /// - Other 4yz: `.temporary`, with the delay of a "retry in N seconds/minutes" text.
    /// - 5yz with a hard-bounce enhanced status: `.hardBounce`; other 5yz: `.permanent`. Without
    ///   an enhanced status code a 5yz is never taken for a hard bounce (a policy refusal must not
    ///   suppress an address).
    public static func classify(_ reply: SMTPReply, at stage: SMTPConversationStage) -> DeliveryFailureClass {
        let setUp: Set<SMTPConversationStage> = [.greeting, .ehlo, .helo, .startTLS, .auth, .reset]
        if reply.code == 421 { return .session }
        if reply.code == 530 || reply.code == 535 { return .serviceConfiguration }
        if reply.isTransientFailure {
            return setUp.contains(stage) ? .session : .temporary(retryAfterSeconds: retryHint(in: reply.text))
        }
        if setUp.contains(stage) { return .serviceConfiguration }
        if let status = reply.enhancedStatus, hardBounceStatuses.contains(status) { return .hardBounce }
        return .permanent
    }

    /// The delay a server asks for in words, in seconds: "retry in 300 seconds", "try again in
    /// 5 minutes", "retry after 2 min" (case-insensitive); `nil` when the text names none.
    public static func retryHint(in text: String) -> Double? {
        let words = text.lowercased().split { !$0.isLetter && !$0.isNumber }
        for index in words.indices where words[index] == "in" || words[index] == "after" {
            guard index > words.startIndex, ["retry", "again"].contains(words[index - 1]),
                  index + 2 < words.endIndex, let amount = Double(words[index + 1]) else { continue }
            switch words[index + 2] {
            case "s", "sec", "secs", "second", "seconds": return amount
            case "m", "min", "mins", "minute", "minutes": return amount * 60
            case "h", "hour", "hours": return amount * 3600
            default: continue
            }
        }
        return nil
    }
}
