import EDMMonitorCore
import FluentKit
import Foundation

/// A row of `alert_histories`: one alert episode.
public final class AlertHistory: Model, @unchecked Sendable {
    public static let schema = "alert_histories"

    /// Where the episode stands.
    public enum Status: String, Codable, CaseIterable, Sendable {
        case active, acknowledged, resolved, suppressed
    }

    // managed
    @ID(key: .id) public var id: UUID?
    @OptionalField(key: "created_at") public var createdAt: Date?
    @OptionalField(key: "updated_at") public var updatedAt: Date?

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
    /// Identity of the (rule, series) instance: FNV-1a fingerprint of the rule id and series tags.
    @Field(key: "fingerprint") public var fingerprint: String
    /// The series tags.
    @Field(key: "tags") public var tags: [String: String]
    @OptionalField(key: "last_value") public var lastValue: Double?
    @OptionalField(key: "acknowledged_by") public var acknowledgedBy: String?
    @OptionalField(key: "acknowledged_at") public var acknowledgedAt: Date?

    public init() {}
}
