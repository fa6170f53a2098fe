import FluentKit
import SQLKit

/// `task_processing_metrics`: one row per task lifecycle event (created, first email sent,
/// throttled progress, completed, failed). Columns and constraints are the seed's.
struct CreateTaskProcessingMetrics: AsyncMigration {
    var name: String { "CreateTaskProcessingMetrics" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "task_processing_metrics")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("task_id", type: d.uuid, .notNull)
            .column("user_id", type: d.uuid, .notNull)
            .column("metric_type", type: d.text, .notNull)
            .column("timestamp", type: d.timestamp, .notNull)
            .column("subtasks_sent", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("total_subtasks", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("wait_time_seconds", type: d.double)
            .column("throughput_per_hour", type: d.double)
            .column("metadata", type: d.json)
            .column("created_at", type: d.timestamp, .notNull)
            .foreignKey(["task_id"], references: "tasks", ["id"], onDelete: .cascade, named: "task_processing_metrics_task_id_fkey")
            .foreignKey(["user_id"], references: "users", ["id"], onDelete: .cascade, named: "task_processing_metrics_user_id_fkey")
            .check(MigrationSQL.oneOf("metric_type", TaskProcessingMetric.MetricType.allCases.map(\.rawValue)), named: "task_processing_metrics_metric_type")
            .check(MigrationSQL.nonNegative("subtasks_sent"), named: "task_processing_metrics_subtasks_sent_non_negative")
            .check(MigrationSQL.nonNegative("total_subtasks"), named: "task_processing_metrics_total_subtasks_non_negative")
            .check(MigrationSQL.nonNegative("wait_time_seconds"), named: "task_processing_metrics_wait_time_non_negative")
            .check(MigrationSQL.nonNegative("throughput_per_hour"), named: "task_processing_metrics_throughput_non_negative")
            .check(optional: d.jsonCheck("metadata"), named: "task_processing_metrics_metadata_json")
            .run()
        try await MigrationSQL.index(sql, "task_processing_metrics_task_id_timestamp_idx", on: "task_processing_metrics", "task_id", "timestamp")
        try await MigrationSQL.index(sql, "task_processing_metrics_user_id_timestamp_idx", on: "task_processing_metrics", "user_id", "timestamp")
        try await MigrationSQL.index(sql, "task_processing_metrics_metric_type_timestamp_idx", on: "task_processing_metrics", "metric_type", "timestamp")
        try await MigrationSQL.index(sql, "task_processing_metrics_timestamp_idx", on: "task_processing_metrics", "timestamp")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "task_processing_metrics")
    }
}
