import EDMMonitorCore
import FluentKit
import Foundation

/// A condition on one series tag: `key = value` or `key != value` (a missing tag counts as "").
public struct TagMatcher: Codable, Sendable, Hashable {
    public enum Op: String, Codable, Sendable { case equal = "=", notEqual = "!=" }
    public var key: String
    public var op: Op
    public var value: String

    public init(key: String, op: Op, value: String) {
        self.key = key
        self.op = op
        self.value = value
    }

    /// Whether `tags` satisfies this matcher.
    public func matches(_ tags: [String: String]) -> Bool {
        let actual = tags[key] ?? ""
        return op == .equal ? actual == value : actual != value
    }
}

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
    @OptionalField(key: "created_at") public var createdAt: Date?
    @OptionalField(key: "updated_at") public var updatedAt: Date?

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
    @Field(key: "notification_channels") public var storedChannels: JSONList<JSONValue>
    /// Channel settings (a JSON array).
    public var notificationChannels: [JSONValue] {
        get { storedChannels.elements }
        set { storedChannels = JSONList(newValue) }
    }
    /// The channels as typed values; entries that are not channels (validation refuses them)
    /// are left out.
    public var channels: [AlertChannel] { notificationChannels.compactMap(AlertChannel.init) }
    @Field(key: "is_active") public var isActive: Bool
    @Field(key: "tag_matchers") public var storedMatchers: JSONList<TagMatcher>
    /// Series tag matchers, all of which must hold.
    public var tagMatchers: [TagMatcher] {
        get { storedMatchers.elements }
        set { storedMatchers = JSONList(newValue) }
    }
    /// Window aggregation of threshold rules: last, avg, min, max, sum, count, p95.
    @Field(key: "aggregation") public var aggregation: String
    /// How long the condition must hold before firing (Prometheus `for`), minutes ≥ 0.
    @Field(key: "for_minutes") public var forMinutes: Double
    /// Hysteresis: once firing, resolve only when the value crosses this level.
    @OptionalField(key: "resolve_threshold") public var resolveThreshold: Double?
    /// Stay firing this long after the condition turns false (Prometheus `keep_firing_for`), minutes ≥ 0.
    @Field(key: "keep_firing_minutes") public var keepFiringMinutes: Double
    /// Reminder interval while firing, minutes > 0; `nil`: no reminders.
    @OptionalField(key: "repeat_interval_minutes") public var repeatIntervalMinutes: Double?
    /// `ok`, `alerting` or `keep_last`.
    @Field(key: "no_data") public var noData: String
    /// Extra labels of every alert of this rule.
    @Field(key: "labels") public var labels: [String: String]
    /// Mustache templates: `{{value}}`, `{{threshold}}`, `{{labels.KEY}}`, `{{rule.name}}`.
    @OptionalField(key: "summary_template") public var summaryTemplate: String?
    @OptionalField(key: "description_template") public var descriptionTemplate: String?

    public init() {}
}
