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

    /// Lease instants of the scheduler's clock at `now`, for a lease of `seconds`.
    static func at(_ now: Date, seconds: Double = 30) -> LeaseInstants {
        LeaseInstants(.scheduler, dialect: .sqlite, now: now, leaseSeconds: seconds)
    }

    static func rows(_ sql: any SQLDatabase) async throws -> [Row] {
        try await sql.raw("SELECT reserved_by, subtask_id, expires_at FROM service_reservations").all(decoding: Row.self)
    }

    @Test("acquire, conflict, renew, take-over after expiry, release by the holder only", arguments: TestDatabase.enabled)
    func lifecycle(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let service = try await Fixtures.service(app, name: "one")
            let t0 = Date(timeIntervalSince1970: 1_800_000_000)
            let a = ServiceReservationStore(sql: sql, holder: "a")
            let b = ServiceReservationStore(sql: sql, holder: "b")

            #expect(try await a.acquire(service, at: Self.at(t0)))
            #expect(try await Self.rows(sql) == [Row(reserved_by: "a", subtask_id: nil, expires_at: t0 + 30)])
            // Held: neither the other instance nor the holder itself takes it again.
            #expect(try await !b.acquire(service, at: Self.at(t0 + 29)))
            #expect(try await !a.acquire(service, at: Self.at(t0 + 1)))

            // Renewal and the subtask note apply to the holder's row only.
            try await b.renew(service, at: Self.at(t0 + 20))
            try await a.renew(service, at: Self.at(t0 + 20))
            try await b.noteSubtask(UUID(), of: service)  // not b's lease: nothing written
            #expect(try await Self.rows(sql) == [Row(reserved_by: "a", subtask_id: nil, expires_at: t0 + 50)])
            #expect(try await !b.acquire(service, at: Self.at(t0 + 49)))

            // Expired at t0 + 50: the other instance takes it over in one statement.
            #expect(try await b.acquire(service, at: Self.at(t0 + 50)))
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
            #expect(try await ServiceReservationStore(sql: sql, holder: "a").acquire(first, at: Self.at(t0, seconds: 10)))
            #expect(try await ServiceReservationStore(sql: sql, holder: "b").acquire(second, at: Self.at(t0, seconds: 60)))
            let store = ServiceReservationStore(sql: sql, holder: "c")
            try await store.deleteExpired(at: Self.at(t0 + 10))  // expires_at == now is not before now
            #expect(try await Self.rows(sql).count == 2)
            try await store.deleteExpired(at: Self.at(t0 + 11))
            #expect(try await Self.rows(sql).map(\.reserved_by) == ["b"])
        }
    }

    @Test("on PostgreSQL, leases run on the database's clock: instances whose clocks are an hour apart agree on who holds a service and when a claim expires",
          .enabled(if: PostgresTestServer.isEnabled, "PostgreSQL binaries not found"))
    func databaseClock() async throws {
        // The test instance's clock stands in March 2026, whatever the database's says.
        let clock = ManualClock()
        try await withApp(.postgres, clock: clock) { app, _ in
            let sql = app.sql
            struct Now: Decodable { var now: Date }
            func databaseNow() async throws -> Date { try #require(try await sql.raw("SELECT now() AS now").first(decoding: Now.self)).now }
            let service = try await Fixtures.service(app, name: "one")
            let user = try await Fixtures.user(app)
            let taskID = try await Fixtures.task(app, user: user, recipients: 2)
            var config = SchedulerConfiguration(instanceID: "behind")
            config.leaseClock = .database
            let behind = QueueScheduler(database: { app.db }, clock: clock, configuration: config,
                                        mailers: ScriptedMailers(clock: clock), hooks: DisabledTaskMonitorHooks())
            let ahead = ManualClock(start: clock.now().addingTimeInterval(3600))
            config.instanceID = "ahead"
            let other = QueueScheduler(database: { app.db }, clock: ahead, configuration: config,
                                       mailers: ScriptedMailers(clock: ahead), hooks: DisabledTaskMonitorHooks())

            // A reservation taken by one instance holds for the other, an hour ahead, too.
            let before = try await databaseNow()
            #expect(try await behind.reservations(on: sql).acquire(service, at: behind.leaseInstants(on: sql, now: clock.now())))
            #expect(try await !other.reservations(on: sql).acquire(service, at: other.leaseInstants(on: sql, now: ahead.now())))
            let held = try await Self.rows(sql)
            #expect(held.count == 1)
            #expect(held[0].expires_at >= before.addingTimeInterval(30) && held[0].expires_at < before.addingTimeInterval(60))

            // A claim's lease: 30 s after the database's now, not the claimer's.
            let claims = try await behind.claimBatch(serviceID: service, limit: 1, on: sql, now: clock.now())
            try #require(claims.count == 1)
            struct Lease: Decodable { var lease_expires_at: Date }
            let lease = try #require(try await sql.raw("SELECT lease_expires_at FROM sub_tasks WHERE status = 'sending'").first(decoding: Lease.self))
            #expect(lease.lease_expires_at >= before.addingTimeInterval(30) && lease.lease_expires_at < before.addingTimeInterval(60))

            // The instance an hour ahead does not think it expired…
            var report = SchedulerCycleReport()
            try await other.housekeeping(app.db, report: &report)
            #expect(report.requeued == 0)
            #expect(try await Self.rows(sql).count == 1)
            // …until the database's clock passes it.
            try await sql.raw("UPDATE sub_tasks SET lease_expires_at = now() - interval '1 second' WHERE status = 'sending'").run()
            try await sql.raw("UPDATE service_reservations SET expires_at = now() - interval '1 second'").run()
            try await other.housekeeping(app.db, report: &report)
            #expect(report.requeued == 1)
            #expect(try await Self.rows(sql).isEmpty)
            #expect(try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == taskID).filter(\.$status == .pending).count() == 2)
        }
    }
}
