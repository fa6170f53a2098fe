import FluentKit
import SQLKit

/// `system_performance_metric_rollups_1h`: per-hour rollups of `system_performance_metrics`
/// (see ``MetricRollupTable``), the resolution of charts over weeks and months.
struct CreateMetricRollups1h: AsyncMigration {
    var name: String { "CreateMetricRollups1h" }

    func prepare(on database: any Database) async throws {
        try await MetricRollupMigration.create(MetricRollupTable.hour.schema, on: database)
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, MetricRollupTable.hour.schema)
    }
}
