import FluentKit
import Foundation

/// A row of `tasks`: one bulk email campaign. Named `TaskRecord` so it never shadows Swift's
/// `Task`.
public final class TaskRecord: Model, @unchecked Sendable {
    public static let schema = "tasks"

    /// Lifecycle of a task.
    public enum Status: String, Codable, CaseIterable, Sendable {
        case queued, sending, paused, completed, failed, cancelled
    }

    // managed
    @ID(key: .id) public var id: UUID?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    // references
    @Parent(key: "user_id") public var user: User

    // data
    @Field(key: "name") public var name: String
    @Field(key: "status") public var status: Status

    public init() {}

    /// Creates a task owned by `userID`; `id` is generated on save when `nil`.
    public init(id: UUID? = nil, userID: UUID, name: String, status: Status = .queued) {
        self.id = id
        self.$user.id = userID
        self.name = name
        self.status = status
    }
}
