import FluentKit
import SQLKit

/// `email_services`: SMTP relays and HTTP sending APIs that the scheduler sends through.
/// The sending-core migrations add provider settings, quota and pacing columns.
struct CreateEmailServices: AsyncMigration {
    var name: String { "CreateEmailServices" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "email_services")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("name", type: d.text, .notNull, .unique)
            .column("provider", type: d.text, .notNull)
            .column("is_enabled", type: d.bool, .notNull, .default(SQLLiteral.boolean(true)))
            .column("created_at", type: d.timestamp, .notNull)
            .column("updated_at", type: d.timestamp, .notNull)
            .check(MigrationSQL.length("name", min: 1, max: 100), named: "email_services_name_length")
            .check(MigrationSQL.oneOf("provider", ["smtp", "http", "dry_run"]), named: "email_services_provider")
            .check(optional: d.boolCheck("is_enabled"), named: "email_services_is_enabled_bool")
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "email_services")
    }
}
