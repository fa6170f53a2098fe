import FluentKit
import SQLKit

/// `tasks`: bulk email campaigns: templates (Mustache), optional schedule, counts and lifecycle
/// times. `started_at` is the first email sent; `status_reason` says why a task failed or was
/// cancelled.
struct CreateTasks: AsyncMigration {
    var name: String { "CreateTasks" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "tasks")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("user_id", type: d.uuid, .notNull)
            .column("name", type: d.text, .notNull)
            .column("status", type: d.text, .notNull)
            .column("status_reason", type: d.text)
            .column("subject_template", type: d.text, .notNull)
            .column("text_template", type: d.text, .notNull)
            .column("html_template", type: d.text)
            .column("scheduled_at", type: d.timestamp)
            .column("total_count", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("sent_count", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("failed_count", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("started_at", type: d.timestamp)
            .column("completed_at", type: d.timestamp)
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .foreignKey(["user_id"], references: "users", ["id"], onDelete: .cascade, named: "tasks_user_id_fkey")
            .check(MigrationSQL.length("name", min: 1, max: 200), named: "tasks_name_length")
            .check(MigrationSQL.oneOf("status", TaskRecord.Status.allCases.map(\.rawValue)), named: "tasks_status")
            .check(MigrationSQL.length("subject_template", min: 1, max: 2000), named: "tasks_subject_template_length")
            .check(SQLRaw(#""total_count" >= 0 AND "sent_count" >= 0 AND "failed_count" >= 0 AND "sent_count" + "failed_count" <= "total_count""#), named: "tasks_counts")
            .run()
        try await MigrationSQL.index(sql, "tasks_user_id_idx", on: "tasks", "user_id")
        try await MigrationSQL.index(sql, "tasks_status_created_at_idx", on: "tasks", "status", "created_at")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "tasks")
    }
}
