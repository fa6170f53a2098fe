import FluentKit
import SQLKit

/// Adds the delivery claim to `alert_notifications`: `claimed_by` (the outbox instance that is
/// delivering the row) and `claimed_until` (when that claim lapses, so a crashed instance's rows
/// are delivered by another). With the claim, several instances on one database deliver each
/// notification once (see `AlertNotificationStore.claim`).
struct AddClaimToAlertNotifications: AsyncMigration {
    var name: String { "AddClaimToAlertNotifications" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.alter(table: "alert_notifications").column("claimed_by", type: d.text).run()
        try await sql.alter(table: "alert_notifications").column("claimed_until", type: d.timestamp).run()
        // The order check looks up older pending rows of the same alert and channel.
        try await MigrationSQL.index(sql, "alert_notifications_history_id_channel_idx", on: "alert_notifications", "history_id", "channel")
    }

    func revert(on database: any Database) async throws {
        let sql = database.sql
        try await sql.drop(index: "alert_notifications_history_id_channel_idx").run()
        try await sql.alter(table: "alert_notifications").dropColumn("claimed_until").run()
        try await sql.alter(table: "alert_notifications").dropColumn("claimed_by").run()
    }
}
