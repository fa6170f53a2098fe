import EDMMonitorCore
import FluentKit
import Foundation

/// A row of `alert_histories`: one alert episode.
public final class AlertHistory: Model, @unchecked Sendable {
    public static let schema = "alert_histories"

    /// Where the episode stands.
    public enum Status: String, Codable, CaseIterable, Sendable {
        case active, resolved, suppressed
    }

    // managed
    @ID(key: .id) public var id: UUID?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    // references
    @Parent(key: "rule_id") public var rule: AlertRule

    // data
    @Field(key: "triggered_at") public var triggeredAt: Date
    /// Never before `triggeredAt` (a database constraint).
    @OptionalField(key: "resolved_at") public var resolvedAt: Date?
    @Field(key: "status") public var status: Status
    @OptionalField(key: "trigger_value") public var triggerValue: Double?
    @Field(key: "message") public var message: String
    @OptionalField(key: "metadata") public var metadata: [String: JSONValue]?

    public init() {}
}
