import FluentKit
import Foundation

/// A row of `sub_tasks`: one recipient of a task.
public final class SubTaskRecord: Model, @unchecked Sendable {
    public static let schema = "sub_tasks"

    /// Lifecycle of one recipient's message.
    public enum Status: String, Codable, CaseIterable, Sendable {
        case pending, sending, sent, failed
    }

    // managed
    @ID(key: .id) public var id: UUID?
    /// Set from the injected clock by the code that creates the row (not Fluent's `Date()`),
    /// so time-based behaviour is testable.
    @OptionalField(key: "created_at") public var createdAt: Date?
    @OptionalField(key: "updated_at") public var updatedAt: Date?

    // references
    @Parent(key: "task_id") public var task: TaskRecord
    @OptionalParent(key: "service_id") public var service: EmailService?

    // data
    @Field(key: "recipient_email") public var recipientEmail: String
    /// De-duplication key (trimmed, lower-cased address); unique within a task.
    @Field(key: "recipient_key") public var recipientKey: String
    @OptionalField(key: "recipient_name") public var recipientName: String?
    /// Template variables of this recipient.
    @Field(key: "variables") public var variables: [String: String]
    /// Position in the import: FIFO order within the task.
    @Field(key: "sequence") public var sequence: Int
    @Field(key: "status") public var status: Status
    /// The instance that claimed it, and until when its claim holds.
    @OptionalField(key: "claimed_by") public var claimedBy: String?
    @OptionalField(key: "lease_expires_at") public var leaseExpiresAt: Date?
    @Field(key: "attempts") public var attempts: Int
    @OptionalField(key: "next_attempt_at") public var nextAttemptAt: Date?
    @OptionalField(key: "last_error") public var lastError: String?
    @OptionalField(key: "provider_message_id") public var providerMessageID: String?
    @OptionalField(key: "sent_at") public var sentAt: Date?

    public init() {}

    /// Creates a pending subtask of `taskID`.
    public init(id: UUID? = nil, taskID: UUID, recipientEmail: String, recipientKey: String, recipientName: String? = nil, variables: [String: String] = [:], sequence: Int, status: Status = .pending) {
        self.id = id
        self.$task.id = taskID
        self.recipientEmail = recipientEmail
        self.recipientKey = recipientKey
        self.recipientName = recipientName
        self.variables = variables
        self.sequence = sequence
        self.status = status
        self.attempts = 0
    }
}
