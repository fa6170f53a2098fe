@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor

/// The `service_reservations` access layer on both databases: one holder at a time, take-over
/// only after expiry, renew and release only by the holder.
@Suite("Service reservations")
struct ServiceReservationStoreTests {
    struct Row: Decodable, Equatable { var reserved_by: String; var subtask_id: UUID?; var expires_at: Date }

    static func rows(_ sql: any SQLDatabase) async throws -> [Row] {
        try await sql.raw("SELECT reserved_by, subtask_id, expires_at FROM service_reservations").all(decoding: Row.self)
    }

    @Test("acquire, conflict, renew, take-over after expiry, release by the holder only", arguments: TestDatabase.enabled)
    func lifecycle(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let service = try await Fixtures.service(app, name: "one")
            let t0 = Date(timeIntervalSince1970: 1_800_000_000)
            let a = ServiceReservationStore(sql: sql, holder: "a", leaseSeconds: 30)
            let b = ServiceReservationStore(sql: sql, holder: "b", leaseSeconds: 30)

            #expect(try await a.acquire(service, at: t0))
            #expect(try await Self.rows(sql) == [Row(reserved_by: "a", subtask_id: nil, expires_at: t0 + 30)])
            // Held: neither the other instance nor the holder itself takes it again.
            #expect(try await !b.acquire(service, at: t0 + 29))
            #expect(try await !a.acquire(service, at: t0 + 1))

            // Renewal and the subtask note apply to the holder's row only.
            try await b.renew(service, at: t0 + 20)
            try await a.renew(service, at: t0 + 20)
            try await b.noteSubtask(UUID(), of: service)  // not b's lease: nothing written
            #expect(try await Self.rows(sql) == [Row(reserved_by: "a", subtask_id: nil, expires_at: t0 + 50)])
            #expect(try await !b.acquire(service, at: t0 + 49))

            // Expired at t0 + 50: the other instance takes it over in one statement.
            #expect(try await b.acquire(service, at: t0 + 50))
            #expect(try await Self.rows(sql) == [Row(reserved_by: "b", subtask_id: nil, expires_at: t0 + 80)])

            // Release by the former holder leaves the new holder's lease alone.
            try await a.release(service)
            #expect(try await Self.rows(sql).map(\.reserved_by) == ["b"])
            try await b.release(service)
            #expect(try await Self.rows(sql).isEmpty)
        }
    }

    @Test("deleteExpired removes only leases that expired before now", arguments: TestDatabase.enabled)
    func deleteExpired(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let first = try await Fixtures.service(app, name: "first")
            let second = try await Fixtures.service(app, name: "second")
            let t0 = Date(timeIntervalSince1970: 1_800_000_000)
            #expect(try await ServiceReservationStore(sql: sql, holder: "a", leaseSeconds: 10).acquire(first, at: t0))
            #expect(try await ServiceReservationStore(sql: sql, holder: "b", leaseSeconds: 60).acquire(second, at: t0))
            let store = ServiceReservationStore(sql: sql, holder: "c", leaseSeconds: 30)
            try await store.deleteExpired(at: t0 + 10)  // expires_at == now is not before now
            #expect(try await Self.rows(sql).count == 2)
            try await store.deleteExpired(at: t0 + 11)
            #expect(try await Self.rows(sql).map(\.reserved_by) == ["b"])
        }
    }
}
