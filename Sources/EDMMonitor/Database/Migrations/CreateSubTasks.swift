import FluentKit
import SQLKit

/// `sub_tasks`: one row per recipient of a task.
///
/// - `recipient_key` is the de-duplication key of the address (trimmed, lower-cased; reference
///   case C03); `(task_id, recipient_key)` is unique, so no recipient can get two messages of
///   one task.
/// - `sequence` is the recipient's position in the import (FIFO within a task).
/// - `service_id`, `claimed_by` and `lease_expires_at` are set when an instance claims the
///   subtask; a `sending` row whose lease has expired belonged to a dead instance and is marked
///   failed (`interrupted`), never resent (at-most-once).
struct CreateSubTasks: AsyncMigration {
    var name: String { "CreateSubTasks" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "sub_tasks")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("task_id", type: d.uuid, .notNull)
            .column("recipient_email", type: d.text, .notNull)
            .column("recipient_key", type: d.text, .notNull)
            .column("recipient_name", type: d.text)
            .column("variables", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("sequence", type: d.bigint, .notNull)
            .column("status", type: d.text, .notNull)
            .column("service_id", type: d.uuid)
            .column("claimed_by", type: d.text)
            .column("lease_expires_at", type: d.timestamp)
            .column("attempts", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("next_attempt_at", type: d.timestamp)
            .column("last_error", type: d.text)
            .column("provider_message_id", type: d.text)
            .column("sent_at", type: d.timestamp)
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .foreignKey(["task_id"], references: "tasks", ["id"], onDelete: .cascade, named: "sub_tasks_task_id_fkey")
            .foreignKey(["service_id"], references: "email_services", ["id"], onDelete: .setNull, named: "sub_tasks_service_id_fkey")
            .check(MigrationSQL.length("recipient_email", min: 3, max: 254), named: "sub_tasks_recipient_email_length")
            .check(MigrationSQL.length("recipient_key", min: 3, max: 254), named: "sub_tasks_recipient_key_length")
            .check(MigrationSQL.oneOf("status", SubTaskRecord.Status.allCases.map(\.rawValue)), named: "sub_tasks_status")
            .check(SQLRaw(#""attempts" >= 0"#), named: "sub_tasks_attempts_non_negative")
            .check(optional: d.jsonCheck("variables"), named: "sub_tasks_variables_json")
            .run()
        try await sql.create(index: "sub_tasks_task_id_recipient_key_key").unique().on("sub_tasks").column("task_id").column("recipient_key").run()
        try await MigrationSQL.index(sql, "sub_tasks_task_id_status_sequence_idx", on: "sub_tasks", "task_id", "status", "sequence")
        try await MigrationSQL.index(sql, "sub_tasks_status_lease_expires_at_idx", on: "sub_tasks", "status", "lease_expires_at")
        try await MigrationSQL.index(sql, "sub_tasks_service_id_sent_at_idx", on: "sub_tasks", "service_id", "sent_at")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "sub_tasks")
    }
}
