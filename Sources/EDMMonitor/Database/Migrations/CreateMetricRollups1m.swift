import FluentKit
import SQLKit

/// `system_performance_metric_rollups_1m`: per-minute rollups of `system_performance_metrics`
/// (see ``MetricRollupTable``), kept longer than the raw points so that long charts do not scan
/// raw rows.
struct CreateMetricRollups1m: AsyncMigration {
    var name: String { "CreateMetricRollups1m" }

    func prepare(on database: any Database) async throws {
        try await MetricRollupMigration.create(MetricRollupTable.minute.schema, on: database)
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, MetricRollupTable.minute.schema)
    }
}

/// The DDL both rollup tables share (one table per migration file, same columns).
enum MetricRollupMigration {
    /// Creates a rollup table `table` with its unique series-bucket index and a time index for
    /// retention. `tags_key` is the tags as sorted-key JSON text, the series identity (a JSON
    /// column cannot be part of a unique index on SQLite's text the same way as on `jsonb`).
    static func create(_ table: String, on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        var builder = sql.create(table: table)
        builder = d.autoIncrementPrimaryKey(builder, column: "id")
        try await builder
            .column("metric_name", type: d.text, .notNull)
            .column("metric_unit", type: d.text, .notNull)
            .column("tags", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("tags_key", type: d.text, .notNull)
            .column("bucket_start", type: d.timestamp, .notNull)
            .column("sample_count", type: d.bigint, .notNull)
            .column("value_sum", type: d.double, .notNull)
            .column("value_min", type: d.double, .notNull)
            .column("value_max", type: d.double, .notNull)
            .column("value_last", type: d.double, .notNull)
            .column("last_timestamp", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("metric_name", min: 1, max: 100), named: "\(table)_metric_name_length")
            .check(MigrationSQL.length("metric_unit", min: 1, max: 20), named: "\(table)_metric_unit_length")
            .check(SQLRaw("\"sample_count\" >= 1"), named: "\(table)_sample_count_positive")
            .check(optional: d.jsonCheck("tags"), named: "\(table)_tags_json")
            .run()
        try await sql.create(index: "\(table)_series_bucket_key").on(table).unique()
            .column("metric_name").column("tags_key").column("bucket_start").run()
        try await MigrationSQL.index(sql, "\(table)_metric_name_bucket_start_idx", on: table, "metric_name", "bucket_start")
        try await MigrationSQL.index(sql, "\(table)_bucket_start_idx", on: table, "bucket_start")
        if d == .postgres {
            try await sql.raw("CREATE INDEX \(ident: table + "_tags_gin_idx") ON \(ident: table) USING GIN (tags)").run()
        }
    }
}
