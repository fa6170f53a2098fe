import FluentKit
import SQLKit

/// `system_performance_metrics`: time series points (name, value, unit, tags, timestamp).
///
/// The id is a 64-bit integer, not a UUID: this is the largest table (millions of rows) and
/// points are only ever addressed by name, tags and time.
struct CreateSystemPerformanceMetrics: AsyncMigration {
    var name: String { "CreateSystemPerformanceMetrics" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        var table = sql.create(table: "system_performance_metrics")
        table = d.autoIncrementPrimaryKey(table, column: "id")
        try await table
            .column("metric_name", type: d.text, .notNull)
            .column("metric_value", type: d.double, .notNull)
            .column("metric_unit", type: d.text, .notNull)
            .column("tags", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("timestamp", type: d.timestamp, .notNull)
            .column("created_at", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("metric_name", min: 1, max: 100), named: "system_performance_metrics_metric_name_length")
            .check(MigrationSQL.length("metric_unit", min: 1, max: 20), named: "system_performance_metrics_metric_unit_length")
            .check(optional: d.jsonCheck("tags"), named: "system_performance_metrics_tags_json")
            .run()
        try await MigrationSQL.index(sql, "system_performance_metrics_metric_name_timestamp_idx", on: "system_performance_metrics", "metric_name", "timestamp")
        try await MigrationSQL.index(sql, "system_performance_metrics_timestamp_idx", on: "system_performance_metrics", "timestamp")
        if d == .postgres {
            // Tag filters (`tags @> '{"service":"a"}'`) use this; SQLite has no GIN.
            try await sql.raw("CREATE INDEX system_performance_metrics_tags_gin_idx ON system_performance_metrics USING GIN (tags)").run()
        }
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "system_performance_metrics")
    }
}
