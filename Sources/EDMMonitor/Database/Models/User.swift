import FluentKit
import Foundation

/// A row of `users`: an owner of tasks.
public final class User: Model, @unchecked Sendable {
    public static let schema = "users"

    // managed
    @ID(key: .id) public var id: UUID?
    /// Set from the injected clock by the code that creates the row (not Fluent's `Date()`),
    /// so time-based behaviour is testable.
    @OptionalField(key: "created_at") public var createdAt: Date?

    // data
    @Field(key: "name") public var name: String
    @Field(key: "email") public var email: String
    /// When a subtask of this user was last claimed (the scheduler's round-robin order).
    @OptionalField(key: "last_dispatched_at") public var lastDispatchedAt: Date?

    public init() {}

    /// Creates a user; `id` is generated on save when `nil`.
    public init(id: UUID? = nil, name: String, email: String) {
        self.id = id
        self.name = name
        self.email = email
    }
}
