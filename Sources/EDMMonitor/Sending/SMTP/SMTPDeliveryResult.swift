import EDMMonitorCore

/// What happened to one `SMTPMailer.send(_:)`.
///
/// Classification follows RFC 5321 §4.2.1 for replies (4yz transient, 5yz permanent) and treats
/// every connection-level problem (refused, reset, closed, timed out, TLS handshake or
/// certificate failure, garbled replies) as transient: the same message may succeed later or on
/// another connection. Check `SMTPDeliveryFailure.mayHaveBeenDelivered` before retrying a
/// transient failure: the message may already be queued.
public enum SMTPDeliveryResult: Sendable, Equatable, CustomStringConvertible {
    /// The server accepted the message: its final 250 reply to the payload (RFC 5321 §4.1.1.4).
    /// `queueIdentifier` gives the server's queue id when the reply has the usual
    /// `queued as <id>` wording; the reply text is the record otherwise.
    case sent(SMTPReply)
    /// Not delivered, worth retrying later: a 4yz reply, or a connection, timeout or TLS problem.
    case transientFailure(SMTPDeliveryFailure)
    /// Not delivered, and sending it unchanged will fail again: a 5yz reply, or the client
    /// refused it (message too large for the server, 8BITMIME needed but not offered, an unsafe
    /// address, no usable AUTH mechanism, STARTTLS required but not offered).
    case permanentFailure(SMTPDeliveryFailure)

    /// True for `.sent`.
    public var isSent: Bool {
        if case .sent = self { return true }
        return false
    }

    /// The queue id from a `.sent` reply of the form `250 2.0.0 Ok: queued as 4F2B1C3D`.
    public var queueIdentifier: String? {
        if case .sent(let reply) = self { return reply.queueIdentifier }
        return nil
    }

    /// The failure of `.transientFailure` or `.permanentFailure`; `nil` for `.sent`.
    public var failure: SMTPDeliveryFailure? {
        switch self {
        case .sent: return nil
        case .transientFailure(let failure), .permanentFailure(let failure): return failure
        }
    }

    public var description: String {
        switch self {
        case .sent(let reply): return "sent (\(reply))"
        case .transientFailure(let failure): return "transient failure: \(failure)"
        case .permanentFailure(let failure): return "permanent failure: \(failure)"
        }
    }

    /// The result for a conversation outcome: replies by their category, local refusals as
    /// permanent.
    init(_ outcome: SMTPDeliveryOutcome) {
        switch outcome {
        case .sent(let reply):
            self = .sent(reply)
        case .transientFailure(let reply, let stage):
            self = .transientFailure(SMTPDeliveryFailure(reason: .reply(reply), stage: stage))
        case .permanentFailure(let reply, let stage):
            self = .permanentFailure(SMTPDeliveryFailure(reason: .reply(reply), stage: stage))
        case .localFailure(let error):
            self = .permanentFailure(SMTPDeliveryFailure(reason: .refusedLocally(error), stage: Self.stage(of: error)))
        }
    }

    /// The set-up step a local refusal belongs to; `.idle` for refusals of the message itself.
    private static func stage(of error: SMTPConversationError) -> SMTPConversationStage {
        switch error {
        case .startTLSNotOffered: return .startTLS
        case .authRequiresTLS, .noSupportedAuthMechanism: return .auth
        case .unexpectedReply, .notReady, .eightBitMIMENotOffered, .messageTooLarge, .invalidArgument: return .idle
        }
    }
}

/// Why a send did not succeed, and where.
public struct SMTPDeliveryFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public var reason: SMTPFailureReason
    /// The step whose reply was awaited: `.greeting` covers connecting and implicit TLS,
    /// `.startTLS` the STARTTLS handshake, `.payload` the wait after the message was written;
    /// `.idle` for refusals made before any command was sent.
    public var stage: SMTPConversationStage

    /// A failure of `reason` while the reply to `stage` was awaited.
    public init(reason: SMTPFailureReason, stage: SMTPConversationStage) {
        self.reason = reason
        self.stage = stage
    }

    /// True when the whole message was written but its final reply never came (the connection
    /// closed or timed out at `.payload`): the server may have queued it (RFC 1047). Retrying
    /// then risks a duplicate, which EDM Monitor treats as worse than a missing mail.
    public var mayHaveBeenDelivered: Bool {
        guard stage == .payload else { return false }
        if case .reply = reason { return false }
        return true
    }

    public var description: String { "\(reason) at \(stage.rawValue)" }
}

/// The kinds of failure a send can end in.
public enum SMTPFailureReason: Sendable, Equatable, CustomStringConvertible {
    /// The server answered 4yz or 5yz (or a code the step does not allow).
    case reply(SMTPReply)
    /// The client refused before (or instead of) asking the server; see `SMTPConversationError`.
    case refusedLocally(SMTPConversationError)
    /// No TCP connection could be made: refused, unreachable, name not resolved, or no answer
    /// within `connectTimeout`.
    case connectionFailed(String)
    /// The server closed or reset the connection while a reply was awaited.
    case connectionClosed
    /// No reply within `commandTimeout` (or `dataTimeout` after the payload).
    case timedOut
    /// The TLS handshake failed, including certificate verification.
    case tlsFailed(String)
    /// The server's output was not SMTP (unparseable reply, reply out of turn, or plain-text
    /// octets after the STARTTLS 220, which RFC 3207 §5 treats as an injection attempt).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .reply(let reply): return "server replied \(reply)"
        case .refusedLocally(let error): return "refused by client: \(error)"
        case .connectionFailed(let reason): return "connection failed: \(reason)"
        case .connectionClosed: return "connection closed by server"
        case .timedOut: return "timed out waiting for reply"
        case .tlsFailed(let reason): return "TLS failed: \(reason)"
        case .protocolViolation(let reason): return "protocol violation: \(reason)"
        }
    }
}
