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
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    // references
    @Parent(key: "task_id") public var task: TaskRecord

    // data
    @Field(key: "recipient_email") public var recipientEmail: String
    @Field(key: "status") public var status: Status

    public init() {}

    /// Creates a subtask of `taskID`; `id` is generated on save when `nil`.
    public init(id: UUID? = nil, taskID: UUID, recipientEmail: String, status: Status = .pending) {
        self.id = id
        self.$task.id = taskID
        self.recipientEmail = recipientEmail
        self.status = status
    }
}
