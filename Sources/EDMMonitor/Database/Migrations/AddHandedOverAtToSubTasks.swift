import FluentKit
import SQLKit

/// Adds `handed_over_at` to `sub_tasks`: when the claimed subtask was handed to a mailer.
/// The crash rule reads it: a claim whose lease expired before hand-over goes back to `pending`
/// (nothing left the building), one handed over becomes `failed` / `interrupted` (it may have
/// been sent: at-most-once, ARCHITECTURE.md).
struct AddHandedOverAtToSubTasks: AsyncMigration {
    var name: String { "AddHandedOverAtToSubTasks" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        try await sql.alter(table: "sub_tasks").column("handed_over_at", type: SQLDialectKind(sql).timestamp).run()
    }

    func revert(on database: any Database) async throws {
        try await database.sql.alter(table: "sub_tasks").dropColumn("handed_over_at").run()
    }
}
