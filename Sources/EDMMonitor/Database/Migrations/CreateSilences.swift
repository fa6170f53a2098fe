import FluentKit
import SQLKit

/// `silences`: time-boxed mutes. A firing alert that an active silence matches is recorded as
/// `suppressed` and notifies no one; `leases` (same migration): named leases such as the single
/// alert evaluator among several instances.
struct CreateSilences: AsyncMigration {
    var name: String { "CreateSilences" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "silences")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("matchers", type: d.json, .notNull)
            .column("starts_at", type: d.timestamp, .notNull)
            .column("ends_at", type: d.timestamp, .notNull)
            .column("created_by", type: d.text, .notNull)
            .column("comment", type: d.text, .notNull)
            .column("created_at", type: d.timestamp, .notNull)
            .check(SQLRaw(#""ends_at" > "starts_at""#), named: "silences_ends_after_starts")
            .check(MigrationSQL.length("created_by", min: 1, max: 200), named: "silences_created_by_length")
            .check(optional: d.jsonCheck("matchers"), named: "silences_matchers_json")
            .run()
        try await MigrationSQL.index(sql, "silences_ends_at_idx", on: "silences", "ends_at")
        try await sql.create(table: "leases")
            .column("name", type: d.text, .primaryKey(autoIncrement: false))
            .column("holder", type: d.text, .notNull)
            .column("expires_at", type: d.timestamp, .notNull)
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "leases")
        try await MigrationSQL.drop(database.sql, "silences")
    }
}
