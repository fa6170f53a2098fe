import FluentKit
import Foundation

/// A row of `system_performance_metrics`: one time-series point.
public final class SystemPerformanceMetric: Model, @unchecked Sendable {
    public static let schema = "system_performance_metrics"

    // managed
    @ID(custom: "id", generatedBy: .database) public var id: Int?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?

    // data
    /// Prometheus-style name, e.g. `edm_system_cpu_usage_percent` (1…100 characters).
    @Field(key: "metric_name") public var metricName: String
    /// The value (IEEE 754 binary64).
    @Field(key: "metric_value") public var metricValue: Double
    /// Unit, e.g. `percent`, `bytes`, `seconds` (1…20 characters).
    @Field(key: "metric_unit") public var metricUnit: String
    /// Series labels.
    @Field(key: "tags") public var tags: [String: String]
    /// When the value was observed (UTC).
    @Field(key: "timestamp") public var timestamp: Date

    public init() {}

    /// Creates a point.
    public init(metricName: String, metricValue: Double, metricUnit: String, tags: [String: String] = [:], timestamp: Date) {
        self.metricName = metricName
        self.metricValue = metricValue
        self.metricUnit = metricUnit
        self.tags = tags
        self.timestamp = timestamp
    }
}
