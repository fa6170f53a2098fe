import FluentKit
import Foundation
import Logging
import FluentPostgresDriver
import PostgresNIO

/// Serialises schema changes between instances that start together on one database.
///
/// PostgreSQL: the body (migrations, which include the default-rule seed) runs while this
/// process holds the session advisory lock ``key``, taken on a connection of its own that is
/// not in Fluent's pool — the pool hands each query its own connection, so a lock taken
/// through it would neither stay with the migrations nor leave a connection free for them.
/// Other instances wait in `pg_advisory_lock` until the first has migrated, then find nothing
/// to do. Without it, three instances started at once on an empty database failed with
/// `duplicate key … pg_type_typname_nsp_index` or `relation "users" already exists`.
///
/// SQLite: no lock; the file admits one writer at a time, and one `serve` per file
/// (``InstanceLock``).
enum MigrationLock {
    /// The advisory lock key: "EDMMIGR" in ASCII, unlikely to meet another application's key.
    static let key: Int64 = 0x45_44_4D_4D_49_47_52

    /// Runs `body` holding the migration lock of `location`.
    /// - Throws: the driver's error when the lock connection cannot be opened; `body`'s error.
    static func withLock<T: Sendable>(_ location: DatabaseLocation, logger: Logger, _ body: () async throws -> T) async throws -> T {
        guard case .postgres(let url) = location else { return try await body() }
        let configuration = try SQLPostgresConfiguration(url: url).coreConfiguration
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_lock(\(key))", logger: logger)
            let result: T
            do {
                result = try await body()
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)
            try await connection.close()
            return result
        } catch {
            // Closing the session also releases a lock still held.
            try? await connection.close()
            throw error
        }
    }
}
