import FluentKit
import Foundation
import SQLKit

/// Verifies, after migrating, that the database holds the schema this build understands.
///
/// Three checks, each failing with a message that names what is wrong:
/// 1. every applied migration is one this build knows (else a newer edm-monitor migrated it);
/// 2. every model's table exists and has every column the model reads;
/// 3. every model can actually read a row of its table (types decode).
enum SchemaCheck {
    /// A schema mismatch; `description` is the one-line message for the operator.
    struct Mismatch: Error, CustomStringConvertible, Equatable {
        var description: String
    }

    /// Runs the three checks. - Throws: ``Mismatch`` for the first problem found.
    static func verify(_ database: any Database, migrations: [any Migration] = AppMigrations.all, models: [any Model.Type] = ModelCatalog.all) async throws {
        let sql = database.sql
        let dialect = SQLDialectKind(sql)

        let known = Set(migrations.map(\.name))
        let applied = try await sql.select().column("name").from("_fluent_migrations").all(decodingColumn: "name", as: String.self)
        if let unknown = applied.first(where: { !known.contains($0) }) {
            throw Mismatch(description: "the database has migration \(unknown), which this edm-monitor does not know: it was migrated by a newer version; run that version or point EDM_DATABASE_URL at another database")
        }

        for model in models {
            let table = model.schema
            let columns = try await Self.columns(of: table, sql: sql, dialect: dialect)
            guard !columns.isEmpty else {
                throw Mismatch(description: "table \(table) does not exist; run `edm-monitor migrate`")
            }
            for key in model.keys.map(\.description) where !columns.contains(key) {
                throw Mismatch(description: "table \(table) has no column \(key), which model \(model) reads; run `edm-monitor migrate` or restore the column")
            }
            do {
                try await readOne(model, on: database)
            } catch {
                throw Mismatch(description: "model \(model) cannot read table \(table): \(String(reflecting: error))")
            }
        }
    }

    /// Loads at most one row of `model`'s table through Fluent, so decoding is exercised.
    private static func readOne<M: Model>(_ model: M.Type, on database: any Database) async throws {
        _ = try await M.query(on: database).limit(1).all()
    }

    /// The column names of `table`, or an empty set when it does not exist.
    static func columns(of table: String, sql: any SQLDatabase, dialect: SQLDialectKind) async throws -> Set<String> {
        switch dialect {
        case .sqlite:
            let rows = try await sql.raw("SELECT name FROM pragma_table_info(\(bind: table))").all()
            return Set(try rows.map { try $0.decode(column: "name", as: String.self) })
        case .postgres:
            let rows = try await sql.raw("""
                SELECT column_name FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = \(bind: table)
                """).all()
            return Set(try rows.map { try $0.decode(column: "column_name", as: String.self) })
        }
    }
}
