import FluentKit
import SQLKit

/// `monitoring_config`: run-time overrides of the monitoring settings, one row per changed key
/// (`value` is JSON text: a number or a boolean); a key without a row has its start-up value (environment or default).
/// `monitoring_config_changes`: every change of a value in force, who made it and when, old →
/// new (JSON text).
struct CreateMonitoringConfig: AsyncMigration {
    var name: String { "CreateMonitoringConfig" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "monitoring_config")
            .column("key", type: d.text, .primaryKey(autoIncrement: false))
            .column("value", type: d.text, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .column("updated_by", type: d.text, .notNull)
            .run()
        try await sql.create(table: "monitoring_config_changes")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("key", type: d.text, .notNull)
            .column("old_value", type: d.text)
            .column("new_value", type: d.text)
            .column("changed_by", type: d.text, .notNull)
            .column("changed_at", type: d.timestamp, .notNull)
            .column("request_id", type: d.text)
            .check(MigrationSQL.length("changed_by", min: 1, max: 200), named: "monitoring_config_changes_by_length")
            .run()
        try await MigrationSQL.index(sql, "monitoring_config_changes_at_idx", on: "monitoring_config_changes", "changed_at")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "monitoring_config_changes")
        try await MigrationSQL.drop(database.sql, "monitoring_config")
    }
}
