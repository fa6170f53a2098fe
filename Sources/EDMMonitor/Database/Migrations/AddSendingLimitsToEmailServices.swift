import FluentKit
import SQLKit

/// Adds the per-service sending limits to `email_services` (issue #14):
/// - `max_connections` (1…100, default 4): sends of the service in flight at once, across all
///   instances together;
/// - `max_messages_per_connection` (NULL = unlimited, else ≥ 1): for the SMTP connection pool;
/// - `rate_limit_per_second` (≥ 0, 0 = none, fractions allowed): a token bucket whose state is
///   `rate_tokens` (tokens left, NULL = full) at `rate_tokens_at`.
///
/// The ranges are checked by `EmailServiceCatalog` (SQLite cannot add a CHECK to a table in
/// place, and both databases must accept the same rows).
struct AddSendingLimitsToEmailServices: AsyncMigration {
    var name: String { "AddSendingLimitsToEmailServices" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.alter(table: "email_services").column("max_connections", type: d.bigint, .notNull, .default(SQLLiteral.numeric("4"))).run()
        try await sql.alter(table: "email_services").column("max_messages_per_connection", type: d.bigint).run()
        try await sql.alter(table: "email_services").column("rate_limit_per_second", type: d.double, .notNull, .default(SQLLiteral.numeric("0"))).run()
        try await sql.alter(table: "email_services").column("rate_tokens", type: d.double).run()
        try await sql.alter(table: "email_services").column("rate_tokens_at", type: d.timestamp).run()
    }

    func revert(on database: any Database) async throws {
        let sql = database.sql
        for column in ["rate_tokens_at", "rate_tokens", "rate_limit_per_second", "max_messages_per_connection", "max_connections"] {
            try await sql.alter(table: "email_services").dropColumn(column).run()
        }
    }
}
