import FluentKit
import SQLKit

/// Adds `event_id` to `task_processing_metrics`: the id an external scheduler gives each
/// lifecycle event it posts, unique, so that posting a batch twice records it once.
struct AddEventIDToTaskProcessingMetrics: AsyncMigration {
    var name: String { "AddEventIDToTaskProcessingMetrics" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        try await sql.alter(table: "task_processing_metrics").column("event_id", type: .text).run()
        try await sql.create(index: "task_processing_metrics_event_id_key").unique().on("task_processing_metrics").column("event_id").run()
    }

    func revert(on database: any Database) async throws {
        let sql = database.sql
        try await sql.drop(index: "task_processing_metrics_event_id_key").run()
        try await sql.alter(table: "task_processing_metrics").dropColumn("event_id").run()
    }
}
