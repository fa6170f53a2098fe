import FluentKit
import SQLKit

/// `email_services`: SMTP relays and HTTP sending APIs that the scheduler sends through.
///
/// Provider settings are one JSON column (`provider_config`) because SMTP and HTTP services
/// need different fields; its secrets (SMTP password, HTTP header values) are never returned by
/// the API. `quota_day` is the local calendar day (`YYYY-MM-DD` in `quota_timezone`) whose usage
/// `used_quota` counts, so a reset is "the quota day changed", never "24 hours passed"
/// (reference case C18).
struct CreateEmailServices: AsyncMigration {
    var name: String { "CreateEmailServices" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "email_services")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("name", type: d.text, .notNull, .unique)
            .column("provider", type: d.text, .notNull)
            .column("provider_config", type: d.json, .notNull, .default(SQLLiteral.string("{}")))
            .column("sender_address", type: d.text, .notNull)
            .column("sender_name", type: d.text)
            .column("daily_quota", type: d.bigint, .notNull)
            .column("used_quota", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("quota_day", type: d.text)
            .column("quota_reset_time", type: d.text, .notNull, .default(SQLLiteral.string("00:00")))
            .column("quota_timezone", type: d.text, .notNull, .default(SQLLiteral.string("UTC")))
            .column("sending_interval_seconds", type: d.double, .notNull, .default(SQLLiteral.numeric("0")))
            .column("next_available_at", type: d.timestamp)
            .column("is_enabled", type: d.bool, .notNull, .default(SQLLiteral.boolean(true)))
            .column("is_frozen", type: d.bool, .notNull, .default(SQLLiteral.boolean(false)))
            .column("frozen_until", type: d.timestamp)
            .column("consecutive_failures", type: d.bigint, .notNull, .default(SQLLiteral.numeric("0")))
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("name", min: 1, max: 100), named: "email_services_name_length")
            .check(MigrationSQL.oneOf("provider", ["smtp", "http", "dry_run"]), named: "email_services_provider")
            .check(optional: d.jsonCheck("provider_config"), named: "email_services_provider_config_json")
            .check(MigrationSQL.length("sender_address", min: 3, max: 254), named: "email_services_sender_address_length")
            .check(SQLRaw(#""daily_quota" >= 0"#), named: "email_services_daily_quota_non_negative")
            .check(SQLRaw(#""used_quota" >= 0 AND "used_quota" <= "daily_quota""#), named: "email_services_used_quota_range")
            .check(SQLRaw(#"length("quota_reset_time") = 5"#), named: "email_services_quota_reset_time_hh_mm")
            .check(MigrationSQL.length("quota_timezone", min: 1, max: 64), named: "email_services_quota_timezone_length")
            .check(SQLRaw(#""sending_interval_seconds" >= 0"#), named: "email_services_sending_interval_non_negative")
            .check(SQLRaw(#""consecutive_failures" >= 0"#), named: "email_services_consecutive_failures_non_negative")
            .check(optional: d.boolCheck("is_enabled"), named: "email_services_is_enabled_bool")
            .check(optional: d.boolCheck("is_frozen"), named: "email_services_is_frozen_bool")
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "email_services")
    }
}
