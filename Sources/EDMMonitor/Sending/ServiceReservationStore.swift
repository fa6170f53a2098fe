import Foundation
import SQLKit

/// The `service_reservations` table: one lease per email service, so that of several instances
/// sharing a database only one sends through a service at a time.
///
/// A row is (service, holder instance, subtask being sent, reserved at, expires at). A lease
/// holds until `expires_at`; the holder renews it while a send runs and deletes it when done.
/// An expired row belongs to nobody: the next ``acquire(_:at:)`` takes it over in the same
/// statement, and ``deleteExpired(at:)`` removes it.
struct ServiceReservationStore: Sendable {
    /// The database the statements run on (a transaction's, or the pool's).
    let sql: any SQLDatabase
    /// This instance's id, written as `reserved_by`.
    let holder: String

    /// Takes `serviceID`'s lease at `lease.current` in one statement: inserts the row, or takes
    /// over an expired one (`INSERT … ON CONFLICT (service_id) DO UPDATE … WHERE expires_at <= now`).
    /// - Returns: `true` when this instance now holds the lease, `false` when another
    ///   instance's lease is still running.
    func acquire(_ serviceID: UUID, at lease: LeaseInstants) async throws -> Bool {
        let dialect = SQLDialectKind(sql)
        let excluded = SQLDialectKind.excluded
        let takeOver = dialect.onConflictDoUpdate(["service_id"], set: [
            ("reserved_by", excluded("reserved_by")), ("subtask_id", SQLLiteral.null),
            ("reserved_at", excluded("reserved_at")), ("expires_at", excluded("expires_at")),
        ], where: SQLBinaryExpression(SQLColumn("expires_at", table: "service_reservations"), .lessThanOrEqual, lease.current))
        let rows = try await sql.raw("""
            INSERT INTO service_reservations (service_id, reserved_by, subtask_id, reserved_at, expires_at)
            VALUES (\(bind: serviceID), \(bind: holder), NULL, \(lease.current), \(lease.expiry))\(takeOver)
            RETURNING reserved_by
            """).all()
        return !rows.isEmpty
    }

    /// Moves this instance's lease of `serviceID` to expire at `lease.expiry`; nothing when the
    /// lease is no longer ours.
    func renew(_ serviceID: UUID, at lease: LeaseInstants) async throws {
        try await sql.update("service_reservations")
            .set("expires_at", to: lease.expiry)
            .where("service_id", .equal, SQLBind(serviceID)).where("reserved_by", .equal, SQLBind(holder))
            .run()
    }

    /// Notes the subtask this instance is sending through `serviceID` (shown by queue status).
    func noteSubtask(_ subtaskID: UUID, of serviceID: UUID) async throws {
        try await sql.update("service_reservations")
            .set("subtask_id", to: SQLBind(subtaskID))
            .where("service_id", .equal, SQLBind(serviceID)).where("reserved_by", .equal, SQLBind(holder))
            .run()
    }

    /// Gives up this instance's lease of `serviceID` (another instance's is left alone).
    func release(_ serviceID: UUID) async throws {
        try await sql.delete(from: "service_reservations")
            .where("service_id", .equal, SQLBind(serviceID)).where("reserved_by", .equal, SQLBind(holder))
            .run()
    }

    /// Deletes every lease that expired before `lease.current` (its holder died or stalled).
    func deleteExpired(at lease: LeaseInstants) async throws {
        try await sql.delete(from: "service_reservations").where(SQLBinaryExpression(SQLColumn("expires_at"), .lessThan, lease.current)).run()
    }
}
