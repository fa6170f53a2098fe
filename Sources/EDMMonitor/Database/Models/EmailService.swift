import FluentKit
import Foundation

/// A row of `email_services`: an SMTP relay or HTTP sending API.
public final class EmailService: Model, @unchecked Sendable {
    public static let schema = "email_services"

    /// How messages leave through this service.
    public enum Provider: String, Codable, CaseIterable, Sendable {
        case smtp
        case http
        case dryRun = "dry_run"
    }

    // managed
    @ID(key: .id) public var id: UUID?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    // data
    @Field(key: "name") public var name: String
    @Field(key: "provider") public var provider: Provider
    @Field(key: "is_enabled") public var isEnabled: Bool

    public init() {}

    /// Creates a service; `id` is generated on save when `nil`.
    public init(id: UUID? = nil, name: String, provider: Provider, isEnabled: Bool = true) {
        self.id = id
        self.name = name
        self.provider = provider
        self.isEnabled = isEnabled
    }
}
