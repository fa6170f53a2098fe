import Logging
import Vapor

/// An error of the domain (tasks, email services, users…) that knows how it is answered.
///
/// Services throw these; they never build HTTP responses. ``APIErrorMiddleware`` turns one into
/// the status, the stable `code` and the body `{"error":{"code","message","details"}}`, and logs
/// it at ``logLevel``; the CLI (``EDMMonitorCLI/main(arguments:)``) turns it into one line on
/// standard error and the exit status ``exitStatus``. A new domain error is an enum conforming
/// to this protocol; nothing else needs to learn about it.
public protocol DomainError: Error, Sendable {
    /// The HTTP status of the answer (4xx for the client's mistakes).
    var status: HTTPResponseStatus { get }
    /// The stable `error.code` clients branch on.
    var code: APIErrorCode { get }
    /// What went wrong, for a person.
    var message: String { get }
    /// Each bad field with its reason (`[]` when the error is not about fields).
    var details: [APIErrorDetail] { get }
    /// How loud the server log is about it: `.debug` for a client's mistake (default),
    /// higher when an operator should look.
    var logLevel: Logger.Level { get }
    /// The CLI's exit status: 1 for bad data, a conflict or a missing row (default), 2 for a
    /// malformed command line (a value given by a flag).
    var exitStatus: Int32 { get }
}

extension DomainError {
    public var details: [APIErrorDetail] { [] }
    public var logLevel: Logger.Level { status.code >= 500 ? .error : .debug }
    public var exitStatus: Int32 { 1 }

    /// The same error as the API's one error value.
    public var apiError: APIError { APIError(status, code, message, details: details) }

    /// One CLI line: `message: field: reason; field: reason`, at most ten fields.
    public var commandLineMessage: String {
        let shown = details.prefix(10).map { "\($0.field): \($0.reason)" }.joined(separator: "; ")
        let more = details.count > 10 ? " (and \(details.count - 10) more)" : ""
        return shown.isEmpty ? message : "\(message): \(shown)\(more)"
    }
}
