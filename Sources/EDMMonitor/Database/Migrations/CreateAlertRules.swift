import EDMMonitorCore
import FluentKit
import SQLKit

/// `alert_rules`: what to watch and when to alert. The alerting migrations add matchers,
/// aggregation, `for`, hysteresis, templates and the rest.
struct CreateAlertRules: AsyncMigration {
    var name: String { "CreateAlertRules" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "alert_rules")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("name", type: d.text, .notNull, .unique)
            .column("description", type: d.text)
            .column("metric_name", type: d.text, .notNull)
            .column("condition_type", type: d.text, .notNull)
            .column("threshold_value", type: d.double)
            .column("comparison_operator", type: d.text)
            .column("time_window_minutes", type: d.bigint, .notNull)
            .column("severity", type: d.text, .notNull)
            .column("notification_channels", type: d.json, .notNull, .default(SQLLiteral.string("[]")))
            .column("is_active", type: d.bool, .notNull, .default(SQLLiteral.boolean(true)))
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("name", min: 1, max: 200), named: "alert_rules_name_length")
            .check(MigrationSQL.length("metric_name", min: 1, max: 100), named: "alert_rules_metric_name_length")
            .check(MigrationSQL.oneOf("condition_type", AlertRule.ConditionType.allCases.map(\.rawValue)), named: "alert_rules_condition_type")
            .check(MigrationSQL.oneOf("comparison_operator", AlertComparisonOperator.allCases.map(\.rawValue)), named: "alert_rules_comparison_operator")
            // Threshold and rate rules compare a value with a threshold; absence rules need neither.
            .check(SQLRaw(#""condition_type" = 'absence' OR ("threshold_value" IS NOT NULL AND "comparison_operator" IS NOT NULL)"#), named: "alert_rules_threshold_required")
            .check(SQLRaw(#""time_window_minutes" > 0"#), named: "alert_rules_time_window_positive")
            .check(MigrationSQL.oneOf("severity", AlertRule.Severity.allCases.map(\.rawValue)), named: "alert_rules_severity")
            .check(optional: d.jsonCheck("notification_channels"), named: "alert_rules_notification_channels_json")
            .check(SQLRaw(d == .postgres
                ? #"jsonb_typeof("notification_channels") = 'array'"#
                : #"json_type("notification_channels") = 'array'"#), named: "alert_rules_notification_channels_array")
            .check(optional: d.boolCheck("is_active"), named: "alert_rules_is_active_bool")
            .run()
        try await MigrationSQL.index(sql, "alert_rules_is_active_idx", on: "alert_rules", "is_active")
        try await MigrationSQL.index(sql, "alert_rules_metric_name_idx", on: "alert_rules", "metric_name")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "alert_rules")
    }
}
