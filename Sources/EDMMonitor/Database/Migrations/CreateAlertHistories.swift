import FluentKit
import SQLKit

/// `alert_histories`: one row per firing episode of one (rule, series) instance: its
/// fingerprint and series tags, values, acknowledgement; notifications live in
/// `alert_notifications`.
struct CreateAlertHistories: AsyncMigration {
    var name: String { "CreateAlertHistories" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "alert_histories")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("rule_id", type: d.uuid, .notNull)
            .column("triggered_at", type: d.timestamp, .notNull)
            .column("resolved_at", type: d.timestamp)
            .column("status", type: d.text, .notNull)
            .column("trigger_value", type: d.double)
            .column("message", type: d.text, .notNull)
            .column("fingerprint", type: d.text, .notNull, .default(SQLLiteral.string("")))
            .column("tags", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("last_value", type: d.double)
            .column("acknowledged_by", type: d.text)
            .column("acknowledged_at", type: d.timestamp)
            .column("updated_at", type: d.timestamp)
            .column("metadata", type: d.json)
            .column("created_at", type: d.timestamp, .notNull)
            .foreignKey(["rule_id"], references: "alert_rules", ["id"], onDelete: .cascade, named: "alert_histories_rule_id_fkey")
            .check(MigrationSQL.oneOf("status", AlertHistory.Status.allCases.map(\.rawValue)), named: "alert_histories_status")
            .check(SQLRaw(#""resolved_at" IS NULL OR "resolved_at" >= "triggered_at""#), named: "alert_histories_resolved_after_triggered")
            .check(optional: d.jsonCheck("metadata"), named: "alert_histories_metadata_json")
            .check(optional: d.jsonCheck("tags"), named: "alert_histories_tags_json")
            .run()
        try await MigrationSQL.index(sql, "alert_histories_rule_id_idx", on: "alert_histories", "rule_id")
        try await MigrationSQL.index(sql, "alert_histories_status_idx", on: "alert_histories", "status")
        try await MigrationSQL.index(sql, "alert_histories_triggered_at_idx", on: "alert_histories", "triggered_at")
        try await MigrationSQL.index(sql, "alert_histories_rule_id_fingerprint_idx", on: "alert_histories", "rule_id", "fingerprint")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "alert_histories")
    }
}
