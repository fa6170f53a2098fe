import Foundation
import Vapor

/// Why a task cannot be created, found or changed (``TaskService``).
public enum TaskError: DomainError, Equatable {
    /// 400 `validation_failed`: every bad field or recipient row at once (nothing is written).
    /// `message` says what kind of problem it is. On the CLI these are values the command line
    /// gave (flags, rows of the `--csv` file): exit 2.
    case invalid(message: String, details: [APIErrorDetail])
    /// 400 `validation_failed`: the recipients as a whole cannot be read (the CSV is not UTF-8
    /// text, has no `email` column, is empty…). On the CLI this is bad data in a file: exit 1.
    case unreadableRecipients(message: String, details: [APIErrorDetail])
    /// 404 `not_found`.
    case notFound(UUID)
    /// 409 `conflict`: the task is still being imported.
    case stillImporting
    /// 409 `conflict`: `control` is not allowed from the task's status `from`.
    case notAllowed(control: String, from: String)
    /// 409 `conflict`: the status changed between reading and writing it.
    case changedMeanwhile

    public var status: HTTPResponseStatus {
        switch self {
        case .invalid, .unreadableRecipients: .badRequest
        case .notFound: .notFound
        case .stillImporting, .notAllowed, .changedMeanwhile: .conflict
        }
    }

    public var code: APIErrorCode {
        switch self {
        case .invalid, .unreadableRecipients: .validationFailed
        case .notFound: .notFound
        case .stillImporting, .notAllowed, .changedMeanwhile: .conflict
        }
    }

    public var message: String {
        switch self {
        case .invalid(let message, _), .unreadableRecipients(let message, _): message
        case .notFound(let id): "no task with id \(id)"
        case .stillImporting: "the task is still being imported; try again when it is queued"
        case .notAllowed(let control, let from): "cannot \(control) a task that is \(from)"
        case .changedMeanwhile: "the task changed state meanwhile; read it again"
        }
    }

    public var details: [APIErrorDetail] {
        switch self {
        case .invalid(_, let details), .unreadableRecipients(_, let details): details
        default: []
        }
    }

    /// 1 for bad data (a recipient row of the file or list is invalid or duplicated: the
    /// command line was fine), 2 when only values the command line gave are wrong.
    public var exitStatus: Int32 {
        guard case .invalid(_, let details) = self else { return 1 }
        let aboutRecipients = details.contains { $0.field == "recipients" || $0.field.hasPrefix("row ") || $0.field.hasPrefix("recipients[") }
        return aboutRecipients ? 1 : 2
    }
}
