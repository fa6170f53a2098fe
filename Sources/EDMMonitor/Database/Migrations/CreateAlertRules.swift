import EDMMonitorCore
import FluentKit
import SQLKit

/// `alert_rules`: what to watch and when to alert: the seed's columns plus tag matchers,
/// window aggregation, `for`, hysteresis (`resolve_threshold`, `keep_firing_minutes`), reminders,
/// the no-data policy, labels and summary/description templates.
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
            .column("tag_matchers", type: d.json, .notNull, .default(SQLLiteral.string("[]")))
            .column("aggregation", type: d.text, .notNull, .default(SQLLiteral.string("last")))
            .column("for_minutes", type: d.double, .notNull, .default(SQLLiteral.numeric("0")))
            .column("resolve_threshold", type: d.double)
            .column("keep_firing_minutes", type: d.double, .notNull, .default(SQLLiteral.numeric("0")))
            .column("repeat_interval_minutes", type: d.double)
            .column("no_data", type: d.text, .notNull, .default(SQLLiteral.string("ok")))
            .column("labels", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("summary_template", type: d.text)
            .column("description_template", type: d.text)
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
            .check(MigrationSQL.oneOf("aggregation", ["last", "avg", "min", "max", "sum", "count", "p95"]), named: "alert_rules_aggregation")
            .check(MigrationSQL.oneOf("no_data", ["ok", "alerting", "keep_last"]), named: "alert_rules_no_data")
            .check(SQLRaw(#""for_minutes" >= 0 AND "keep_firing_minutes" >= 0 AND ("repeat_interval_minutes" IS NULL OR "repeat_interval_minutes" > 0)"#), named: "alert_rules_durations")
            .check(optional: d.jsonCheck("tag_matchers"), named: "alert_rules_tag_matchers_json")
            .check(optional: d.jsonCheck("labels"), named: "alert_rules_labels_json")
            .run()
        try await MigrationSQL.index(sql, "alert_rules_is_active_idx", on: "alert_rules", "is_active")
        try await MigrationSQL.index(sql, "alert_rules_metric_name_idx", on: "alert_rules", "metric_name")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "alert_rules")
    }
}
