@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor

/// Every statement member of `SQLDialectKind`, run for real on SQLite and PostgreSQL.
@Suite("SQL dialect")
struct SQLDialectTests {
    /// A scratch table with the dialect's own column types: integer key, JSON, two floats, a counter.
    static func makeProbe(_ sql: any SQLDatabase) async throws -> SQLDialectKind {
        let d = SQLDialectKind(sql)
        try await sql.create(table: "dialect_probe")
            .column("id", type: d.bigint, .primaryKey(autoIncrement: false))
            .column("doc", type: d.json)
            .column("a", type: d.double)
            .column("b", type: d.double)
            .column("n", type: d.bigint, .notNull, .default(0))
            .run()
        return d
    }

    struct IDRow: Decodable, Equatable { var id: Int }

    @Test("the dialect is read from the database", arguments: TestDatabase.enabled)
    func kind(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            #expect(SQLDialectKind(app.sql) == (db == .postgres ? .postgres : .sqlite))
        }
    }

    @Test("jsonBind writes a JSON column, jsonText reads it back as text; nil is NULL", arguments: TestDatabase.enabled)
    func jsonBindAndText(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            try await sql.insert(into: "dialect_probe").columns("id", "doc")
                .values(SQLBind(1), d.jsonBind(#"{"b":"2","a":"x/y","n":[1,2]}"#))
                .values(SQLBind(2), try d.jsonBind(encoding: ["k": "v"]))
                .values(SQLBind(3), try d.jsonBind(encoding: Optional<[String: String]>.none))
                .run()
            struct Row: Decodable { var id: Int; var doc: String? }
            let rows = try await sql.raw("SELECT id, \(d.jsonText("doc")) AS doc FROM dialect_probe ORDER BY id").all(decoding: Row.self)
            #expect(rows.map(\.id) == [1, 2, 3])
            let first = try JSONDecoder().decode(JSONValue.self, from: Data(try #require(rows[0].doc).utf8))
            #expect(first == .object(["a": .string("x/y"), "b": .string("2"), "n": .array([.number(1), .number(2)])]))
            let second = try JSONDecoder().decode([String: String].self, from: Data(try #require(rows[1].doc).utf8))
            #expect(second == ["k": "v"])
            #expect(rows[2].doc == nil)
            #expect(sql.serialize(d.jsonText("doc")).sql.contains("::text") == (db == .postgres))
        }
    }

    @Test("jsonContains selects the rows holding every pair; no pairs selects all", arguments: TestDatabase.enabled)
    func jsonContains(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            let docs: [[String: String]] = [["service": "a", "status": "sent"], ["service": "a", "status": "failed"], ["service": "b", "status": "sent"], [:]]
            var insert = sql.insert(into: "dialect_probe").columns("id", "doc")
            for (i, doc) in docs.enumerated() { insert = insert.values(SQLBind(i + 1), try d.jsonBind(encoding: doc)) }
            try await insert.run()
            func ids(_ pairs: [String: String]) async throws -> [Int] {
                try await sql.raw("SELECT id FROM dialect_probe WHERE \(d.jsonContains("doc", pairs)) ORDER BY id").all(decoding: IDRow.self).map(\.id)
            }
            #expect(try await ids(["service": "a"]) == [1, 2])
            #expect(try await ids(["status": "sent"]) == [1, 3])
            #expect(try await ids(["service": "a", "status": "sent"]) == [1])
            #expect(try await ids(["service": "c"]) == [])
            #expect(try await ids(["service": "a\"'; --"]) == [])  // bound, never interpolated
            #expect(try await ids([:]) == [1, 2, 3, 4])
        }
    }

    @Test("forUpdateSkipLocked is the PostgreSQL clause and nothing on SQLite; a claim with it takes the first free row", arguments: TestDatabase.enabled)
    func skipLocked(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            #expect(d.forUpdateSkipLocked == (db == .postgres ? "FOR UPDATE SKIP LOCKED" : ""))
            var insert = sql.insert(into: "dialect_probe").columns("id", "n")
            for id in 1...3 { insert = insert.values(SQLBind(id), SQLBind(0)) }
            try await insert.run()
            let claim: SQLQueryString = """
                UPDATE dialect_probe SET n = 1
                WHERE id = (SELECT id FROM dialect_probe WHERE n = 0 ORDER BY id LIMIT 1 \(unsafeRaw: d.forUpdateSkipLocked)) AND n = 0
                RETURNING id
                """
            #expect(try await sql.raw(claim).all(decoding: IDRow.self) == [IDRow(id: 1)])
            guard db == .postgres else {
                #expect(try await sql.raw(claim).all(decoding: IDRow.self) == [IDRow(id: 2)])
                return
            }
            // Row 2 locked by another connection's open transaction: the claim skips it.
            let loops = Array(app.eventLoopGroup.makeIterator())
            try #require(loops.count >= 2, "two event loops give two connection pools")
            let holder = try #require(app.databases.database(logger: app.logger, on: loops[0]))
            let claimer = try #require(app.databases.database(logger: app.logger, on: loops[1]))
            try await holder.transaction { tx in
                _ = try await tx.sql.raw("SELECT id FROM dialect_probe WHERE id = 2 FOR UPDATE").all()
                #expect(try await claimer.sql.raw(claim).all(decoding: IDRow.self) == [IDRow(id: 3)])
            }
            #expect(try await sql.raw(claim).all(decoding: IDRow.self) == [IDRow(id: 2)])
        }
    }

    @Test("least and greatest compare two values row by row", arguments: TestDatabase.enabled)
    func leastGreatest(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            try await sql.insert(into: "dialect_probe").columns("id", "a", "b")
                .values(SQLBind(1), SQLBind(3.5), SQLBind(-2.0))
                .values(SQLBind(2), SQLBind(1e300), SQLBind(7.25))
                .run()
            struct Row: Decodable, Equatable { var lo: Double; var hi: Double }
            let rows = try await sql.raw("""
                SELECT \(d.least(SQLColumn("a"), SQLColumn("b"))) AS lo, \(d.greatest(SQLColumn("a"), SQLColumn("b"))) AS hi
                FROM dialect_probe ORDER BY id
                """).all(decoding: Row.self)
            #expect(rows == [Row(lo: -2, hi: 3.5), Row(lo: 7.25, hi: 1e300)])
        }
    }

    @Test("onConflictDoUpdate inserts, updates from excluded, and leaves a row alone when its condition is false", arguments: TestDatabase.enabled)
    func upsert(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            func upsert(id: Int, n: Int, onlyBelow limit: Int? = nil) async throws -> [IDRow] {
                let clause = d.onConflictDoUpdate(
                    ["id"],
                    set: [("n", SQLBinaryExpression(SQLColumn("n", table: "dialect_probe"), .add, SQLDialectKind.excluded("n"))),
                          ("a", d.greatest(SQLColumn("a", table: "dialect_probe"), SQLDialectKind.excluded("a")))],
                    where: limit.map { SQLBinaryExpression(SQLColumn("n", table: "dialect_probe"), .lessThan, SQLBind($0)) }
                )
                return try await sql.raw("INSERT INTO dialect_probe (id, n, a) VALUES (\(bind: id), \(bind: n), \(bind: Double(n)))\(clause) RETURNING id")
                    .all(decoding: IDRow.self)
            }
            #expect(try await upsert(id: 1, n: 5) == [IDRow(id: 1)])       // inserted
            #expect(try await upsert(id: 1, n: 2) == [IDRow(id: 1)])       // n = 5 + 2, a = max(5, 2)
            #expect(try await upsert(id: 1, n: 1, onlyBelow: 7) == [])     // 7 < 7 is false: untouched
            #expect(try await upsert(id: 1, n: 1, onlyBelow: 8) == [IDRow(id: 1)])
            struct Row: Decodable, Equatable { var n: Int; var a: Double }
            #expect(try await sql.raw("SELECT n, a FROM dialect_probe WHERE id = 1").all(decoding: Row.self) == [Row(n: 8, a: 5)])
        }
    }

    @Test("bulkInsert splits by rows and by the bind limit, and counts what conflicts skipped", arguments: TestDatabase.enabled)
    func bulkInsert(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = try await Self.makeProbe(sql)
            #expect(d.maxBindsPerStatement == (db == .postgres ? 65_535 : 32_766))
            // 12,000 rows × 3 binds = 36,000: more than SQLite allows in one statement.
            let rows = (1...12_000).map { [SQLBind($0), SQLBind(Double($0)), d.jsonBind("{}")] as [any SQLExpression] }
            let inserted = try await app.db.transaction { tx in
                try await d.bulkInsert(into: "dialect_probe", columns: ["id", "a", "doc"], rows: rows, rowsPerStatement: 100_000, on: tx.sql)
            }
            #expect(inserted == 12_000)
            struct Count: Decodable { var n: Int; var total: Double }
            let count = try await sql.raw("SELECT count(*) AS n, sum(a) AS total FROM dialect_probe").first(decoding: Count.self)
            #expect(count?.n == 12_000)
            #expect(count?.total == 72_006_000)
            // Rows 11,001…13,000: the first 1,000 exist and are skipped, 1,000 are new.
            let again = (11_001...13_000).map { [SQLBind($0), SQLBind(-1.0), d.jsonBind("{}")] as [any SQLExpression] }
            let added = try await d.bulkInsert(into: "dialect_probe", columns: ["id", "a", "doc"], rows: again, rowsPerStatement: 700, ignoringConflictsOn: ["id"], on: sql)
            #expect(added == 1_000)
            let after = try await sql.raw("SELECT count(*) AS n, sum(a) AS total FROM dialect_probe").first(decoding: Count.self)
            #expect(after?.n == 13_000)
            #expect(after?.total == 72_005_000)  // the 1,000 new rows hold −1 each
            #expect(try await d.bulkInsert(into: "dialect_probe", columns: ["id"], rows: [], on: sql) == 0)
        }
    }

    @Test("databaseSizeQuery answers a positive size in bytes", arguments: TestDatabase.enabled)
    func databaseSize(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            struct Size: Decodable { var size: Int64 }
            let size = try await app.sql.raw(SQLDialectKind(app.sql).databaseSizeQuery).first(decoding: Size.self)?.size
            #expect((size ?? 0) > 0)
        }
    }
}
