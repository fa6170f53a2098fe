import FluentKit
import SQLKit

/// `service_reservations`: short leases on email services, one row per reserved service, so
/// that two scheduler instances never send through the same service at once.
struct CreateServiceReservations: AsyncMigration {
    var name: String { "CreateServiceReservations" }

    func prepare(on database: any Database) async throws {
        let sql = database.sql
        let d = SQLDialectKind(sql)
        try await sql.create(table: "service_reservations")
            .column("service_id", type: d.uuid, .primaryKey(autoIncrement: false))
            .column("reserved_by", type: d.text, .notNull)
            .column("subtask_id", type: d.uuid)
            .column("reserved_at", type: d.timestamp, .notNull)
            .column("expires_at", type: d.timestamp, .notNull)
            .foreignKey(["service_id"], references: "email_services", ["id"], onDelete: .cascade, named: "service_reservations_service_id_fkey")
            .foreignKey(["subtask_id"], references: "sub_tasks", ["id"], onDelete: .cascade, named: "service_reservations_subtask_id_fkey")
            .check(MigrationSQL.length("reserved_by", min: 1, max: 200), named: "service_reservations_reserved_by_length")
            .check(SQLRaw(#""expires_at" > "reserved_at""#), named: "service_reservations_expires_after_reserved")
            .run()
        try await MigrationSQL.index(sql, "service_reservations_expires_at_idx", on: "service_reservations", "expires_at")
        try await MigrationSQL.index(sql, "service_reservations_reserved_by_idx", on: "service_reservations", "reserved_by")
    }

    func revert(on database: any Database) async throws {
        try await MigrationSQL.drop(database.sql, "service_reservations")
    }
}
