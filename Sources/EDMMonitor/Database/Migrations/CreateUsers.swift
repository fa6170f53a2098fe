import FluentKit
import SQLKit

/// `users`: the people or systems that own tasks. `last_dispatched_at` is the scheduler's
/// round-robin state: the user whose subtask was claimed longest ago goes next.
struct CreateUsers: AsyncMigration {
    var name: String { "CreateUsers" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "users")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("name", type: d.text, .notNull)
            .column("email", type: d.text, .notNull)
            .column("last_dispatched_at", type: d.timestamp)
            .column("created_at", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("name", min: 1, max: 200), named: "users_name_length")
            .check(MigrationSQL.length("email", min: 3, max: 254), named: "users_email_length")
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "users")
    }
}
