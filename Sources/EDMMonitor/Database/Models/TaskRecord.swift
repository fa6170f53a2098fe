import FluentKit
import Foundation

/// A row of `tasks`: one bulk email campaign. Named `TaskRecord` so it never shadows Swift's
/// `Task`.
public final class TaskRecord: Model, @unchecked Sendable {
    public static let schema = "tasks"

    /// Lifecycle of a task. `completed` when every subtask is terminal and at least one was
    /// sent; `failed` when all failed.
    public enum Status: String, Codable, CaseIterable, Sendable {
        case queued, sending, paused, completed, failed, cancelled

        /// Whether the task can still send.
        public var isActive: Bool { self == .queued || self == .sending }
        /// Whether the task has ended for good.
        public var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }
    }

    // managed
    @ID(key: .id) public var id: UUID?
    /// Set from the injected clock by the code that creates the row (not Fluent's `Date()`),
    /// so time-based behaviour is testable.
    @OptionalField(key: "created_at") public var createdAt: Date?
    @OptionalField(key: "updated_at") public var updatedAt: Date?

    // references
    @Parent(key: "user_id") public var user: User

    // data
    @Field(key: "name") public var name: String
    @Field(key: "status") public var status: Status
    /// Why the task failed or was cancelled.
    @OptionalField(key: "status_reason") public var statusReason: String?
    /// Mustache templates: subject, text body, optional HTML body.
    @Field(key: "subject_template") public var subjectTemplate: String
    @Field(key: "text_template") public var textTemplate: String
    @OptionalField(key: "html_template") public var htmlTemplate: String?
    /// Send not before this instant.
    @OptionalField(key: "scheduled_at") public var scheduledAt: Date?
    @Field(key: "total_count") public var totalCount: Int
    @Field(key: "sent_count") public var sentCount: Int
    @Field(key: "failed_count") public var failedCount: Int
    /// When the first email went out.
    @OptionalField(key: "started_at") public var startedAt: Date?
    @OptionalField(key: "completed_at") public var completedAt: Date?

    public init() {}

    /// Creates a task owned by `userID`; `id` is generated on save when `nil`.
    public init(id: UUID? = nil, userID: UUID, name: String, subjectTemplate: String = "(no subject)", textTemplate: String = "", htmlTemplate: String? = nil, scheduledAt: Date? = nil, status: Status = .queued) {
        self.id = id
        self.$user.id = userID
        self.name = name
        self.status = status
        self.subjectTemplate = subjectTemplate
        self.textTemplate = textTemplate
        self.htmlTemplate = htmlTemplate
        self.scheduledAt = scheduledAt
        self.totalCount = 0
        self.sentCount = 0
        self.failedCount = 0
    }
}
