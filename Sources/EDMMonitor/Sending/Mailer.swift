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

/// What became of one send attempt (RFC 5321 §4.2.1 reply classes; HTTP status classes).
public enum MailerOutcome: Sendable, Equatable {
    /// Accepted by the provider; `messageID` is its id for the message when it gave one.
    case sent(messageID: String?)
    /// Worth retrying later: SMTP 4xx, connection or TLS error, timeout, HTTP 429 or 5xx.
    case transientFailure(String)
    /// Never worth retrying: SMTP 5xx, HTTP 4xx other than 429.
    case permanentFailure(String)
    /// This recipient's message cannot be built (e.g. an address the protocol cannot carry):
    /// the recipient fails, but the service is not at fault and its failure streak is untouched.
    case invalidMessage(String)
}

/// Sends messages through one email service. One message in flight at a time per mailer; a
/// mailer may keep a connection open between sends (SMTP) and must be closed when dropped.
public protocol Mailer: Sendable {
    /// Sends `email`. Never throws: every failure is classified into the outcome.
    func send(_ email: OutgoingEmail) async -> MailerOutcome
    /// Releases connections (SMTP QUIT).
    func close() async
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
