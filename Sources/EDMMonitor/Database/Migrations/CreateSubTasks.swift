import FluentKit
import SQLKit

/// `sub_tasks`: one row per recipient of a task. The sending-core migrations add the rest.
struct CreateSubTasks: AsyncMigration {
    var name: String { "CreateSubTasks" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "sub_tasks")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("task_id", type: d.uuid, .notNull)
            .column("recipient_email", type: d.text, .notNull)
            .column("status", type: d.text, .notNull)
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .foreignKey(["task_id"], references: "tasks", ["id"], onDelete: .cascade, named: "sub_tasks_task_id_fkey")
            .check(MigrationSQL.length("recipient_email", min: 3, max: 254), named: "sub_tasks_recipient_email_length")
            .check(MigrationSQL.oneOf("status", SubTaskRecord.Status.allCases.map(\.rawValue)), named: "sub_tasks_status")
            .run()
        try await MigrationSQL.index(sql, "sub_tasks_task_id_status_idx", on: "sub_tasks", "task_id", "status")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "sub_tasks")
    }
}
