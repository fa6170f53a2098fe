import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import NIOCore
import SQLKit
import Vapor

/// Opens the database that ``Settings/database`` names and registers it as the app's default.
///
/// SQLite specifics (the embedded default):
/// - The parent folder of the file is created when missing, so `./data/` needs no set-up.
/// - Every query goes through **one** connection (see ``SingleLoopDatabaseConfiguration``):
///   SQLite admits one writer at a time, and without a busy timeout (which sqlite-kit cannot
///   set per connection) two connections of our own would fail each other with `SQLITE_BUSY`.
/// - After opening: `journal_mode=WAL` (readers never block the writer; persistent in the file),
///   `busy_timeout=5000` ms (another *process*, e.g. a CLI command, waits instead of failing),
///   `synchronous=NORMAL` (safe with WAL: a power cut may lose the last commits, never corrupt),
///   and foreign keys, which sqlite-kit turns on for every connection.
enum DatabaseSetup {
    /// Registers the database; throws ``StartupError`` when the SQLite folder cannot be created.
    static func register(_ location: DatabaseLocation, on app: Application) throws {
        switch location {
        case .sqliteMemory:
            // Statements are logged at trace; their bound values (SMTP passwords, webhook URLs)
            // are hidden by RedactingLogHandler.
            app.databases.use(SingleLoopDatabaseConfiguration.factory(.sqlite(.memory, sqlLogLevel: .trace)), as: .sqlite, isDefault: true)
        case .sqliteFile(let path):
            let url = URL(fileURLWithPath: path)
            let folder = url.deletingLastPathComponent()
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            } catch {
                throw StartupError("cannot create the SQLite folder \(folder.path): \(error.localizedDescription); create it or set EDM_DATABASE_URL to a writable path")
            }
            app.databases.use(SingleLoopDatabaseConfiguration.factory(.sqlite(.file(url.path), sqlLogLevel: .trace)), as: .sqlite, isDefault: true)
        case .postgres(let url):
            let configuration: SQLPostgresConfiguration
            do {
                configuration = try SQLPostgresConfiguration(url: url)
            } catch {
                // The driver's error quotes the URL, password included: never show it.
                throw StartupError("EDM_DATABASE_URL=\"\(location.redacted)\" is not a usable PostgreSQL URL; expected postgres://user:pass@host:port/db")
            }
            // Statements at trace; bound values hidden by RedactingLogHandler.
            app.databases.use(.postgres(configuration: configuration, sqlLogLevel: .trace), as: .psql, isDefault: true)
        }
    }

    /// Applies the per-database settings described above. Call once after ``register(_:on:)``.
    static func prepare(_ location: DatabaseLocation, database: any Database) async throws {
        guard location.isSQLite else { return }
        let sql = database.sql
        if case .sqliteFile = location {
            try await sql.raw("PRAGMA journal_mode = WAL").run()
            try await sql.raw("PRAGMA synchronous = NORMAL").run()
        }
        try await sql.raw("PRAGMA busy_timeout = 5000").run()
    }
}

/// Wraps a database configuration so that every context uses one fixed event loop, and so one
/// connection pool of one connection (sqlite-kit keeps one connection per event loop).
///
/// Futures complete on that loop; async callers are unaffected. Used for SQLite only, where a
/// single writer is the database's own rule; PostgreSQL keeps its pools.
struct SingleLoopDatabaseConfiguration: DatabaseConfiguration {
    var inner: any DatabaseConfiguration

    var middleware: [any AnyModelMiddleware] {
        get { inner.middleware }
        set { inner.middleware = newValue }
    }

    static func factory(_ inner: DatabaseConfigurationFactory) -> DatabaseConfigurationFactory {
        DatabaseConfigurationFactory { SingleLoopDatabaseConfiguration(inner: inner.make()) }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        SingleLoopDriver(inner: inner.makeDriver(for: databases), loop: databases.eventLoopGroup.next())
    }

    struct SingleLoopDriver: DatabaseDriver {
        let inner: any DatabaseDriver
        let loop: any EventLoop

        func makeDatabase(with context: DatabaseContext) -> any Database {
            inner.makeDatabase(with: DatabaseContext(
                configuration: context.configuration,
                logger: context.logger,
                eventLoop: loop,
                history: context.history,
                pageSizeLimit: context.pageSizeLimit,
                shouldTrace: context.shouldTrace
            ))
        }

        func shutdown() { inner.shutdown() }
        func shutdownAsync() async { await inner.shutdownAsync() }
    }
}

/// A start-up failure the operator must fix; its message is printed as one line and the
/// program exits with status 1.
public struct StartupError: Error, CustomStringConvertible {
    /// What is wrong and how to fix it.
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
