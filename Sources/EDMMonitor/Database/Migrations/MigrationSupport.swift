import FluentKit
import SQLKit

/// Helpers shared by the migrations in this folder. Every migration writes its DDL through
/// SQLKit so that CHECK and FOREIGN KEY constraints are real database constraints on both
/// SQLite and PostgreSQL (ARCHITECTURE.md "Migrations are the schema").
enum MigrationSQL {
    /// Creates a (non-unique) index `name` on `table(columns…)`.
    static func index(_ sql: any SQLDatabase, _ name: String, on table: String, _ columns: String...) async throws {
        var builder = sql.create(index: name).on(table)
        for column in columns { builder = builder.column(column) }
        try await builder.run()
    }

    /// Drops `table` (the revert of a create).
    static func drop(_ sql: any SQLDatabase, _ table: String) async throws {
        try await sql.drop(table: table).run()
    }

    /// A SQL `IN (...)` list check for a text column over a fixed set of literals.
    static func oneOf(_ column: String, _ values: [String]) -> any SQLExpression {
        let list = values.map { "'\($0.replacingOccurrences(of: "'", with: "''"))'" }.joined(separator: ", ")
        return SQLRaw("\(SQLDialectKind.quote(column)) IN (\(list))")
    }

    /// `length(column) BETWEEN min AND max` (characters, on both databases).
    static func length(_ column: String, min: Int, max: Int) -> any SQLExpression {
        SQLRaw("length(\(SQLDialectKind.quote(column))) BETWEEN \(min) AND \(max)")
    }

    /// `column >= 0` (NULL passes, as SQL CHECK semantics say).
    static func nonNegative(_ column: String) -> any SQLExpression {
        SQLRaw("\(SQLDialectKind.quote(column)) >= 0")
    }
}
