import FluentKit
import SQLKit

/// `tasks`: bulk email campaigns. The sending-core migrations add templates, schedule and counts.
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
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .foreignKey(["user_id"], references: "users", ["id"], onDelete: .cascade, named: "tasks_user_id_fkey")
            .check(MigrationSQL.length("name", min: 1, max: 200), named: "tasks_name_length")
            .check(MigrationSQL.oneOf("status", TaskRecord.Status.allCases.map(\.rawValue)), named: "tasks_status")
            .run()
        try await MigrationSQL.index(sql, "tasks_user_id_idx", on: "tasks", "user_id")
        try await MigrationSQL.index(sql, "tasks_status_idx", on: "tasks", "status")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "tasks")
    }
}
