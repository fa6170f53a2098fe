import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit

/// The two rollup tables of ``MetricStore``: one row per (metric, series, bucket) holding
/// `sample_count`, `value_sum`, `value_min`, `value_max`, `value_last` and `last_timestamp` of the
/// raw points in `[bucket_start, bucket_start + step)`; buckets are aligned to the Unix epoch, as
/// ``MetricWindow/bucketStart(of:step:)`` aligns them.
public enum MetricRollupTable: CaseIterable, Sendable {
    /// 1-minute buckets, `system_performance_metric_rollups_1m` (kept 30 days by default).
    case minute
    /// 1-hour buckets, `system_performance_metric_rollups_1h` (kept 400 days by default).
    case hour

    /// The table name.
    public var schema: String {
        switch self {
        case .minute: return "system_performance_metric_rollups_1m"
        case .hour: return "system_performance_metric_rollups_1h"
        }
    }

    /// Bucket width, seconds (60 or 3600).
    public var step: Double {
        switch self {
        case .minute: return 60
        case .hour: return 3600
        }
    }

    /// Short name used in API answers: `1m`, `1h`.
    public var label: String { self == .minute ? "1m" : "1h" }

    /// Merges `rows` into the table: a new (name, series, bucket) is inserted, an existing one
    /// gets count and sum added, min/max widened and last replaced when the new last is not
    /// older (``SQLDialectKind/onConflictDoUpdate(_:set:where:)``, with the dialect's two-argument
    /// ``SQLDialectKind/least(_:_:)`` and ``SQLDialectKind/greatest(_:_:)``), written with
    /// ``SQLDialectKind/insertColumns(into:alias:columns:suffix:on:)`` (one `UNNEST` statement on
    /// PostgreSQL, bound multi-row statements on SQLite).
    /// `rows` must hold each key at most once (``MetricStore/RawBatch/rollups(table:)`` ensures it).
    func upsert(_ rows: [MetricRollupRow], dialect: SQLDialectKind, on sql: any SQLDatabase) async throws {
        guard !rows.isEmpty else { return }
        let current = { (column: String) in SQLColumn(SQLIdentifier(column), table: SQLIdentifier("r")) }
        let excluded = SQLDialectKind.excluded
        let upsert = dialect.onConflictDoUpdate(["metric_name", "tags_key", "bucket_start"], set: [
            ("sample_count", SQLBinaryExpression(current("sample_count"), .add, excluded("sample_count"))),
            ("value_sum", SQLBinaryExpression(current("value_sum"), .add, excluded("value_sum"))),
            ("value_min", dialect.least(current("value_min"), excluded("value_min"))),
            ("value_max", dialect.greatest(current("value_max"), excluded("value_max"))),
            ("value_last", SQLRaw("CASE WHEN excluded.last_timestamp >= r.last_timestamp THEN excluded.value_last ELSE r.value_last END")),
            ("last_timestamp", dialect.greatest(current("last_timestamp"), excluded("last_timestamp"))),
            ("metric_unit", excluded("metric_unit")),
        ])
        try await dialect.insertColumns(into: schema, alias: "r", columns: [
            ("metric_name", .text(rows.map(\.key.name))),
            ("metric_unit", .text(rows.map(\.unit))),
            ("tags", .json(rows.map(\.key.seriesKey))),
            ("tags_key", .text(rows.map(\.key.seriesKey))),
            ("bucket_start", .date(rows.map { Date(timeIntervalSince1970: $0.key.bucketStart) })),
            ("sample_count", .integer(rows.map(\.rollup.count))),
            ("value_sum", .double(rows.map(\.rollup.sum))),
            ("value_min", .double(rows.map(\.rollup.min))),
            ("value_max", .double(rows.map(\.rollup.max))),
            ("value_last", .double(rows.map(\.rollup.last))),
            ("last_timestamp", .date(rows.map { Date(timeIntervalSince1970: $0.rollup.lastTimestamp) })),
        ], suffix: upsert, on: sql)
    }
}

/// One rollup row before it is written.
struct MetricRollupRow: Sendable, Equatable {
    /// The row's identity.
    struct Key: Hashable, Sendable {
        var name: String
        /// ``MetricPoint/seriesKey``.
        var seriesKey: String
        /// Unix seconds, a multiple of the table's step.
        var bucketStart: Double
    }

    var key: Key
    var unit: String
    var rollup: MetricRollup
}
