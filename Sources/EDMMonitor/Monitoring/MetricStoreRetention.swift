import FluentKit
import Foundation
import Logging
import SQLKit
import Synchronization
import Vapor

extension MetricStore {
    /// Rows deleted by one ``cleanup(on:)``, per table.
    public struct CleanupReport: Sendable, Equatable {
        /// Raw points deleted.
        public var raw: Int
        /// 1-minute rollup rows deleted.
        public var minute: Int
        /// 1-hour rollup rows deleted.
        public var hour: Int
        /// Resolved alert episodes deleted.
        public var alerts: Int = 0
    }

    /// Deletes raw points older than ``MetricStoreConfiguration/rawRetention`` and rollup rows
    /// whose bucket started before their table's retention, measured from the clock's now.
    ///
    /// Deletes run in batches of ``MetricStoreConfiguration/cleanupBatchSize`` rows (select the
    /// oldest ids, delete those ids), each its own short statement, so a large backlog never holds
    /// the SQLite writer or a PostgreSQL lock for long; the loop goes on until a batch comes back
    /// short. Rollups are independent of raw rows, so they outlive them.
    /// - Throws: the database's error (rows already deleted stay deleted).
    @discardableResult
    public func cleanup(on database: any Database) async throws -> CleanupReport {
        let now = clock.now()
        let sql = database.sql
        let raw = try await deleteOlder(in: SystemPerformanceMetric.schema, column: "timestamp",
                                        than: now.addingTimeInterval(-configuration.rawRetention), sql: sql)
        let minute = try await deleteOlder(in: MetricRollupTable.minute.schema, column: "bucket_start",
                                           than: now.addingTimeInterval(-configuration.minuteRollupRetention), sql: sql)
        let hour = try await deleteOlder(in: MetricRollupTable.hour.schema, column: "bucket_start",
                                         than: now.addingTimeInterval(-configuration.hourRollupRetention), sql: sql)
        let alerts = try await deleteResolvedAlerts(before: now.addingTimeInterval(-configuration.alertHistoryRetention), sql: sql)
        return CleanupReport(raw: raw, minute: minute, hour: hour, alerts: alerts)
    }

    /// Deletes resolved alert episodes resolved before `cutoff`, in bounded batches (their
    /// notifications go with them, ON DELETE CASCADE).
    private func deleteResolvedAlerts(before cutoff: Date, sql: any SQLDatabase) async throws -> Int {
        try await deleteInBatches(UUID.self, from: AlertHistory.schema, orderedBy: "resolved_at", sql: sql,
                                  where: "status = \(bind: AlertHistory.Status.resolved.rawValue) AND resolved_at < \(bind: cutoff)")
    }

    /// Deletes the rows of `table` whose `column` is before `cutoff` (integer ids), in bounded batches.
    private func deleteOlder(in table: String, column: String, than cutoff: Date, sql: any SQLDatabase) async throws -> Int {
        try await deleteInBatches(Int.self, from: table, orderedBy: column, sql: sql, where: "\(ident: column) < \(bind: cutoff)")
    }

    /// The id column of one selected row.
    private struct IDRow<ID: Decodable>: Decodable { var id: ID }

    /// Deletes the rows of `table` that `condition` selects, oldest `column` first, in batches
    /// of ``MetricStoreConfiguration/cleanupBatchSize``: select the ids, delete those ids, until
    /// a batch comes back short. Returns how many rows were deleted.
    private func deleteInBatches<ID: Decodable & Encodable & Sendable>(_ id: ID.Type, from table: String, orderedBy column: String,
                                                                       sql: any SQLDatabase, where condition: SQLQueryString) async throws -> Int {
        let batch = max(1, configuration.cleanupBatchSize)
        var deleted = 0
        while true {
            let ids = try await sql.raw("""
                SELECT id FROM \(ident: table) WHERE \(condition) ORDER BY \(ident: column) LIMIT \(literal: batch)
                """).all(decoding: IDRow<ID>.self).map(\.id)
            if ids.isEmpty { break }
            try await sql.raw("DELETE FROM \(ident: table) WHERE id IN (\(binds: ids))").run()
            deleted += ids.count
            if ids.count < batch { break }
            await Task.yield()
        }
        return deleted
    }
}
