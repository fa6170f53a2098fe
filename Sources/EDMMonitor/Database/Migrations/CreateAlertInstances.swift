import FluentKit
import SQLKit

/// `alert_instances`: the evaluation state of each (rule, series) instance, so that a restart
/// continues pending and firing instances where they were (no reset of `for`, no second firing
/// notification). `state` is `AlertInstanceState` as JSON; `history_id` the open episode.
struct CreateAlertInstances: AsyncMigration {
    var name: String { "CreateAlertInstances" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "alert_instances")
            .column("rule_id", type: d.uuid, .notNull)
            .column("fingerprint", type: d.text, .notNull)
            .column("tags", type: d.text, .notNull)
            .column("state", type: d.text, .notNull)
            .column("history_id", type: d.uuid)
            .column("last_value", type: d.double)
            .column("updated_at", type: d.timestamp, .notNull)
            .primaryKey(["rule_id", "fingerprint"], named: "alert_instances_pkey")
            .foreignKey(["rule_id"], references: "alert_rules", ["id"], onDelete: .cascade, named: "alert_instances_rule_id_fkey")
            .foreignKey(["history_id"], references: "alert_histories", ["id"], onDelete: .setNull, named: "alert_instances_history_id_fkey")
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "alert_instances")
    }
}
