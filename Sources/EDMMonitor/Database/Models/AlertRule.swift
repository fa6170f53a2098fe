import EDMMonitorCore
import FluentKit
import Foundation

/// A row of `alert_rules`: a condition on a metric and who to tell.
public final class AlertRule: Model, @unchecked Sendable {
    public static let schema = "alert_rules"

    /// How the metric is judged.
    public enum ConditionType: String, Codable, CaseIterable, Sendable {
        case threshold, rate, absence
    }

    /// How urgent an alert of this rule is.
    public enum Severity: String, Codable, CaseIterable, Sendable {
        case info, warning, critical
    }

    // managed
    @ID(key: .id) public var id: UUID?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    // data
    @Field(key: "name") public var name: String
    @OptionalField(key: "description") public var ruleDescription: String?
    @Field(key: "metric_name") public var metricName: String
    @Field(key: "condition_type") public var conditionType: ConditionType
    @OptionalField(key: "threshold_value") public var thresholdValue: Double?
    /// How the value is compared with the threshold (the evaluator's own operator type).
    @OptionalField(key: "comparison_operator") public var comparisonOperator: AlertComparisonOperator?
    /// Window length in minutes, > 0.
    @Field(key: "time_window_minutes") public var timeWindowMinutes: Int
    @Field(key: "severity") public var severity: Severity
    /// Channel settings (JSON array).
    @Field(key: "notification_channels") public var notificationChannels: [JSONValue]
    @Field(key: "is_active") public var isActive: Bool

    public init() {}
}
