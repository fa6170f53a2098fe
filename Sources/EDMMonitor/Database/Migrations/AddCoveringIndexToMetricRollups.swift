import FluentKit
import SQLKit

/// Replaces each rollup table's `(metric_name, bucket_start)` index with one that also holds
/// every column a range query reads (`tags_key` and the summary columns), so that
/// `MetricStore.query` answers from the index alone: an SQLite covering index, a PostgreSQL
/// `INCLUDE` index (index-only scans once the visibility map is set by (auto)vacuum).
/// The old index had the same leading columns, so ingest maintains no more indexes than before.
///
/// On PostgreSQL it also drops the rollup tables' GIN index on `tags`: every query names its
/// metric, so the covering index already narrows a query to that metric's rows in the range
/// (at most series × buckets) and a tag filter (`tags @> …`) only tests those; the GIN index
/// was the costliest write of an ingest (one entry per tag key and value, twice per point) and
/// no plan needs it. The raw table keeps its GIN index.
struct AddCoveringIndexToMetricRollups: AsyncMigration {
    var name: String { "AddCoveringIndexToMetricRollups" }

    /// The columns a rollup range query reads besides the two it seeks on.
    static let payload = ["tags_key", "sample_count", "value_sum", "value_min", "value_max", "value_last", "last_timestamp"]

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        for table in MetricRollupTable.allCases.map(\.schema) {
            try await sql.drop(index: "\(table)_metric_name_bucket_start_idx").run()
            let index = "\(table)_query_covering_idx"
            switch SQLDialectKind(sql) {
            case .postgres:
                try await sql.drop(index: "\(table)_tags_gin_idx").run()
                var query: SQLQueryString = "CREATE INDEX \(ident: index) ON \(ident: table) (metric_name, bucket_start) INCLUDE ("
                for (offset, column) in Self.payload.enumerated() {
                    if offset > 0 { query += ", " }
                    query += "\(ident: column)"
                }
                query += ")"
                try await sql.raw(query).run()
            case .sqlite:
                var builder = sql.create(index: index).on(table).column("metric_name").column("bucket_start")
                for column in Self.payload { builder = builder.column(column) }
                try await builder.run()
            }
        }
    }

    func revert(on database: any Database) async throws {
        let sql = database.sql
        for table in MetricRollupTable.allCases.map(\.schema) {
            try await sql.drop(index: "\(table)_query_covering_idx").run()
            try await MigrationSQL.index(sql, "\(table)_metric_name_bucket_start_idx", on: table, "metric_name", "bucket_start")
            if SQLDialectKind(sql) == .postgres {
                try await sql.raw("CREATE INDEX \(ident: table + "_tags_gin_idx") ON \(ident: table) USING GIN (tags)").run()
            }
        }
    }
}
