import FluentKit
import SQLKit

/// `api_tokens`: bearer tokens of the HTTP API. Only the SHA-256 of a token is stored
/// (`token_hash`, 64 lower-case hex digits); the token itself is shown once, when it is created.
/// `prefix` (the first characters of the token) lets an operator tell tokens apart in lists.
struct CreateAPITokens: AsyncMigration {
    var name: String { "CreateAPITokens" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "api_tokens")
            .column("id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("name", type: d.text, .notNull, .unique)
            .column("role", type: d.text, .notNull)
            .column("token_hash", type: d.text, .notNull, .unique)
            .column("prefix", type: d.text, .notNull)
            .column("created_by", type: d.text, .notNull)
            .column("created_at", type: d.timestamp, .notNull)
            .column("expires_at", type: d.timestamp)
            .column("last_used_at", type: d.timestamp)
            .column("revoked_at", type: d.timestamp)
            .check(MigrationSQL.length("name", min: 1, max: 100), named: "api_tokens_name_length")
            .check(MigrationSQL.oneOf("role", ["viewer", "operator", "admin"]), named: "api_tokens_role")
            .check(MigrationSQL.length("token_hash", min: 64, max: 64), named: "api_tokens_hash_length")
            .run()
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "api_tokens")
    }
}
