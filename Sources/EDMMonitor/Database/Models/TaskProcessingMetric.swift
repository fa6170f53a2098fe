import EDMMonitorCore
import FluentKit
import Foundation

/// A row of `task_processing_metrics`: one task lifecycle event.
public final class TaskProcessingMetric: Model, @unchecked Sendable {
    public static let schema = "task_processing_metrics"

    /// The kind of event.
    public enum MetricType: String, Codable, CaseIterable, Sendable {
        case created
        case firstSent = "first_sent"
        case progress
        case completed
        case failed
    }

    // managed
    @ID(key: .id) public var id: UUID?
    /// When the row was written (from the injected clock).
    @OptionalField(key: "created_at") public var createdAt: Date?

    // references
    @Parent(key: "task_id") public var task: TaskRecord
    @Parent(key: "user_id") public var user: User

    // data
    @Field(key: "metric_type") public var metricType: MetricType
    /// When the event happened (UTC).
    @Field(key: "timestamp") public var timestamp: Date
    /// Subtasks sent so far, ≥ 0.
    @Field(key: "subtasks_sent") public var subtasksSent: Int
    /// Subtasks in the task, ≥ 0.
    @Field(key: "total_subtasks") public var totalSubtasks: Int
    /// Seconds from eligibility to the first email (only on `first_sent`), ≥ 0.
    @OptionalField(key: "wait_time_seconds") public var waitTimeSeconds: Double?
    /// Emails per hour, ≥ 0.
    @OptionalField(key: "throughput_per_hour") public var throughputPerHour: Double?
    /// Free-form details (failure reason, duration…).
    @OptionalField(key: "metadata") public var metadata: [String: JSONValue]?
    /// The id an external scheduler gave the event (unique); `nil` for our own events.
    @OptionalField(key: "event_id") public var eventID: String?

    public init() {}

    /// Creates an event row; `id` is generated on save when `nil`.
    public init(
        id: UUID? = nil, taskID: UUID, userID: UUID, metricType: MetricType, timestamp: Date,
        subtasksSent: Int = 0, totalSubtasks: Int = 0, waitTimeSeconds: Double? = nil,
        throughputPerHour: Double? = nil, metadata: [String: JSONValue]? = nil
    ) {
        self.id = id
        self.$task.id = taskID
        self.$user.id = userID
        self.metricType = metricType
        self.timestamp = timestamp
        self.subtasksSent = subtasksSent
        self.totalSubtasks = totalSubtasks
        self.waitTimeSeconds = waitTimeSeconds
        self.throughputPerHour = throughputPerHour
        self.metadata = metadata
        self.createdAt = timestamp
    }
}
