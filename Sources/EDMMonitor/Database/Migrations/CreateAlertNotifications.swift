import FluentKit
import SQLKit

/// `alert_notifications`: the durable outbox. Firing, reminder and resolved notifications are
/// written in the same transaction as the state change; a sender delivers them with retries and
/// exponential backoff and records each attempt's outcome, so a crash or a receiver outage
/// loses nothing and a delivered notification is not sent again.
struct CreateAlertNotifications: AsyncMigration {
    var name: String { "CreateAlertNotifications" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "alert_notifications")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("history_id", type: d.uuid, .notNull)
            .column("channel", type: d.text, .notNull)
            .column("kind", type: d.text, .notNull)
            .column("alert", type: d.text, .notNull)
            .column("status", type: d.text, .notNull)
            .column("attempts", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("next_attempt_at", type: d.timestamp, .notNull)
            .column("last_error", type: d.text)
            .column("delivered_at", type: d.timestamp)
            .column("created_at", type: d.timestamp, .notNull)
            .foreignKey(["history_id"], references: "alert_histories", ["id"], onDelete: .cascade, named: "alert_notifications_history_id_fkey")
            .check(MigrationSQL.oneOf("kind", ["firing", "reminder", "resolved"]), named: "alert_notifications_kind")
            .check(MigrationSQL.oneOf("status", ["pending", "delivered", "failed"]), named: "alert_notifications_status")
            .check(SQLRaw(#""attempts" >= 0"#), named: "alert_notifications_attempts_non_negative")
            .run()
        try await MigrationSQL.index(sql, "alert_notifications_status_next_attempt_at_idx", on: "alert_notifications", "status", "next_attempt_at")
        try await MigrationSQL.index(sql, "alert_notifications_history_id_idx", on: "alert_notifications", "history_id")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "alert_notifications")
    }
}
