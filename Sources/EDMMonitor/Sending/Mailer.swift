import EDMMonitorCore
import Foundation

/// One rendered message for one recipient, ready for a mailer.
public struct OutgoingEmail: Sendable, Equatable {
    /// Envelope sender and From address.
    public var fromAddress: String
    public var fromName: String?
    /// Envelope recipient and To address.
    public var toAddress: String
    public var toName: String?
    public var subject: String
    public var textBody: String
    public var htmlBody: String?
    /// Extra header fields, e.g. `X-EDM-Task-ID`.
    public var headers: [String: String]
    /// Identifiers for providers that echo them back (HTTP body templates).
    public var taskID: UUID
    public var subtaskID: UUID
    /// The recipient's template variables (CSV columns), for HTTP body templates.
    public var variables: [String: String] = [:]
}

/// What became of one send attempt, classified as reference case C09 says (RFC 5321 §4.2.1 and
/// RFC 3463 for SMTP replies; HTTP status classes). The scheduler applies each case in
/// `QueueScheduler.apply`.
public enum MailerOutcome: Sendable, Equatable {
    /// Accepted by the provider; `messageID` is its id for the message when it gave one.
    case sent(messageID: String?)
    /// Worth retrying later, with the usual backoff: SMTP 4xx, connection or TLS error, timeout,
    /// HTTP 408, 429 or 5xx without a retry hint. Spends an attempt.
    case transientFailure(String)
    /// Worth retrying, but not before `afterSeconds`: the server said when (HTTP `Retry-After`,
    /// SMTP "retry in 300 seconds"). Spends an attempt; the next one is no sooner than the hint.
    case retryLater(String, afterSeconds: Double)
    /// The session ended under the message (SMTP 421 at a fresh connection, RFC 5321 §3.8): not
    /// the recipient's fault. Requeued without spending an attempt; counts against the
    /// service's health (failure streak, pacing).
    case sessionFailure(String)
    /// Never worth retrying, and not a statement that the mailbox is dead: policy refusals
    /// (5.7.1), content, syntax, HTTP 4xx. The address is not suppressed.
    case permanentFailure(String)
    /// The mailbox or its domain does not exist (5.1.1, 5.1.2, 5.1.6, 5.1.10): fail the
    /// recipient; the only outcome after which an address may be suppressed.
    case hardBounce(String)
    /// The service's own settings are wrong (SMTP 530/535, no usable TLS or AUTH, HTTP 401): the
    /// service is paused with this reason and the subtask returns to pending without spending an
    /// attempt; the recipient is never failed for it.
    case serviceConfigurationFailure(String)
    /// This recipient's message cannot be built (e.g. an address the protocol cannot carry):
    /// the recipient fails, but the service is not at fault and its failure streak is untouched.
    case invalidMessage(String)
    /// The message was never handed to a connection (the scheduler stopped taking messages of
    /// its batch at shutdown): nothing went out. Requeued without spending an attempt; says
    /// nothing about the service or the recipient.
    case withdrawn(String)

    /// The reason text of every case but `.sent`.
    public var failureReason: String? {
        switch self {
        case .sent: return nil
        case .transientFailure(let reason), .retryLater(let reason, _), .sessionFailure(let reason), .permanentFailure(let reason),
             .hardBounce(let reason), .serviceConfigurationFailure(let reason), .invalidMessage(let reason), .withdrawn(let reason):
            return reason
        }
    }

    /// The outcome for a failed send classified as `failure`, with `reason` as its text.
    public init(_ failure: DeliveryFailureClass, reason: String) {
        switch failure {
        case .session: self = .sessionFailure(reason)
        case .temporary(let hint?): self = .retryLater(reason, afterSeconds: hint)
        case .temporary(nil): self = .transientFailure(reason)
        case .hardBounce: self = .hardBounce(reason)
        case .permanent: self = .permanentFailure(reason)
        case .serviceConfiguration: self = .serviceConfigurationFailure(reason)
        }
    }
}

/// Sends messages through one email service. `send` may be called concurrently: a mailer runs
/// up to its service's connection limit at once (SMTP: pooled connections; HTTP: requests in
/// flight) and queues the rest. It may keep connections open between sends and must be closed
/// when dropped.
public protocol Mailer: Sendable {
    /// Sends `email`. Never throws: every failure is classified into the outcome.
    func send(_ email: OutgoingEmail) async -> MailerOutcome
    /// Releases connections (SMTP QUIT).
    func close() async
    /// Ends the connections no send is using (SMTP QUIT), keeping the mailer usable: called when
    /// another instance holds the service's reservation, so that only the holder keeps
    /// connections open and `max_connections` holds at the relay across instances.
    func closeIdleConnections() async
}

extension Mailer {
    /// Nothing to end: the mailer keeps no connection of its own (HTTP requests go through the
    /// shared AsyncHTTPClient pool; dry run).
    public func closeIdleConnections() async {}
}

/// The `dry_run` provider: accepts every message and sends nothing; the message id is
/// `dry-run-<subtask id>`. For demos and for trying rules safely.
public struct DryRunMailer: Mailer {
    public init() {}

    public func send(_ email: OutgoingEmail) async -> MailerOutcome {
        .sent(messageID: "dry-run-\(email.subtaskID.uuidString.lowercased())")
    }

    public func close() async {}
}
