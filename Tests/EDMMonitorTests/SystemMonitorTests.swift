@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import Synchronization
import Testing
import Vapor
import VaporTesting

/// The system monitor: one cycle on the real machine and database, failure isolation, and the
/// system-health endpoint.
@Suite("System monitor")
struct SystemMonitorTests {
    static func values(_ snapshot: SystemSnapshot, _ name: String, tags: [String: String]? = nil) -> [Double] {
        snapshot.points.values.flatMap { $0 }.filter { $0.name == name && (tags == nil || $0.tags == tags!) }.map(\.value)
    }

    @Test("one cycle writes host, process, database and queue figures in one batch", arguments: TestDatabase.enabled)
    func oneCycle(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "open")
            try await Fixtures.service(app, name: "full", quota: 0)
            _ = try await Fixtures.task(app, user: user, recipients: 3)
            let monitor = app.systemMonitor
            let first = await monitor.collectOnce()
            #expect(first.failures.isEmpty, "\(first.failures)")
            #expect(first.collectedAt == clock.now())
            // CPU usage needs two /proc/stat readings: none on the first cycle.
            #expect(Self.values(first, "edm_system_cpu_usage_percent").isEmpty)
            let memory = Self.values(first, "edm_system_memory_usage_percent")
            #expect(memory.count == 1 && memory.allSatisfy { $0 > 0 && $0 <= 100 })
            #expect(Self.values(first, "edm_process_resident_memory_bytes").first ?? 0 > 1_000_000)
            #expect(Self.values(first, "edm_process_threads").first ?? 0 >= 1)
            #expect(Self.values(first, "edm_process_open_fds").first ?? 0 >= 3)
            #expect(Self.values(first, "edm_db_size_bytes").first ?? 0 > 0)
            #expect(Self.values(first, "edm_db_query_latency_seconds").first.map { $0 >= 0 && $0 < 5 } == true)
            #expect(Self.values(first, "edm_system_disk_free_bytes").first ?? 0 > 0)
            #expect(Self.values(first, "edm_system_load1").count == 1)
            #expect(!Self.values(first, "edm_system_network_receive_bytes_total", tags: ["interface": "lo"]).isEmpty)
            // Queue figures are exact: 3 pending subtasks, 1 queued task, one available and one exhausted service.
            #expect(Self.values(first, "edm_queue_subtasks", tags: ["status": "pending"]) == [3])
            #expect(Self.values(first, "edm_queue_subtasks", tags: ["status": "sent"]) == [0])
            #expect(Self.values(first, "edm_queue_active_tasks") == [1])
            #expect(Self.values(first, "edm_queue_services", tags: ["state": "available"]) == [1])
            #expect(Self.values(first, "edm_queue_services", tags: ["state": "quota_exhausted"]) == [1])
            #expect(Self.values(first, "edm_queue_active_reservations") == [0])

            // Every point was written, each with a unit.
            let written = try await MetricStoreTests.count(app, "system_performance_metrics")
            #expect(written == first.points.values.map(\.count).reduce(0, +))
            let units = try await SystemPerformanceMetric.query(on: app.db).all().map(\.metricUnit)
            #expect(units.allSatisfy { !$0.isEmpty && $0 != "" })

            clock.advance(by: 15)
            let second = await monitor.collectOnce()
            let cpu = Self.values(second, "edm_system_cpu_usage_percent")
            #expect(cpu.count == 1 && cpu.allSatisfy { $0 >= 0 && $0 <= 100 })
        }
    }

    @Test("memory and load agree with /proc on this machine")
    func liveValues() async throws {
        let collector = HostCollector(dataDirectory: NSTemporaryDirectory())
        let points = try await collector.collect(now: Date())
        let meminfo = try HostFilesystem().read(HostMemInfo.self)
        let scope = points.first { $0.name == "edm_system_memory_usage_percent" }?.tags["scope"]
        if scope == "host" {
            let expected = Double(meminfo.usedBytes) / Double(meminfo.totalBytes) * 100
            let actual = try #require(points.first { $0.name == "edm_system_memory_usage_percent" }?.value)
            #expect(abs(actual - expected) < 5, "memory \(actual) vs \(expected)")
        }
        let loadavg = try HostFilesystem().read(HostLoadAverage.self)
        let load1 = try #require(points.first { $0.name == "edm_system_load1" }?.value)
        #expect(abs(load1 - loadavg.one) < 2)
        let disk = try HostCollector.diskUsage(of: NSTemporaryDirectory())
        #expect(disk.usedPercent >= 0 && disk.usedPercent <= 100)
        #expect(throws: HostMetricsError.self) { try HostCollector.diskUsage(of: "/no/such/folder/\(UUID())") }
    }

    /// A collector that fails while `failing` is true.
    final class FlakyCollector: MetricCollector {
        let name = "flaky"
        let failing = Mutex(true)
        struct Broken: Error {}
        func collect(now: Date) async throws -> [MetricPoint] {
            if failing.withLock({ $0 }) { throw Broken() }
            return [MetricPoint(name: "edm_flaky_value", value: 1, timestamp: now)]
        }
    }

    @Test("a failing collector loses only its points and is logged once per failure streak")
    func failureIsolation() async throws {
        let clock = ManualClock()
        try await withApp(.sqlite, clock: clock) { app, _ in
            let store = CapturingLogHandler.Store()
            let logger = Logger(label: "test.monitor") { _ in CapturingLogHandler(store: store) }
            let flaky = FlakyCollector()
            let monitor = SystemMonitorService(
                collectors: [flaky, ProcessCollector(), DatabaseCollector(database: { app.db })],
                store: app.metricStore, database: { app.db }, clock: clock, logger: logger)
            for _ in 0..<3 {
                let snapshot = await monitor.collectOnce()
                #expect(snapshot.failures.keys.sorted() == ["flaky"])
                #expect(!Self.values(snapshot, "edm_process_threads").isEmpty)
                clock.advance(by: 15)
            }
            #expect(store.text.components(separatedBy: "metric collector failing").count - 1 == 1, "\(store.text)")
            flaky.failing.withLock { $0 = false }
            #expect(await monitor.collectOnce().failures.isEmpty)
            #expect(store.text.components(separatedBy: "metric collector recovered").count - 1 == 1)
            flaky.failing.withLock { $0 = true }
            clock.advance(by: 15)
            await monitor.collectOnce()
            #expect(store.text.components(separatedBy: "metric collector failing").count - 1 == 2)
            // 3 + 1 + 1 cycles of the process (4) and database (2) points, and one flaky point.
            let written = try await MetricStoreTests.count(app, "system_performance_metrics")
            #expect(written == 5 * 6 + 1)
        }
    }

    /// Two points a cycle, valued by the cycle's time.
    struct TickCollector: MetricCollector {
        let name = "tick"
        func collect(now: Date) async throws -> [MetricPoint] {
            [MetricPoint(name: "edm_tick_a", value: now.timeIntervalSince1970, timestamp: now),
             MetricPoint(name: "edm_tick_b", value: now.timeIntervalSince1970, timestamp: now)]
        }
    }

    @Test("while the store cannot be written, points are buffered (bounded, oldest dropped) and written on recovery",
          arguments: TestDatabase.enabled)
    func bufferedDuringOutage(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let monitor = SystemMonitorService(collectors: [TickCollector()], store: app.metricStore, database: { app.db }, clock: clock, bufferLimit: 5)
            // The table out of reach stands for a database that does not answer.
            try await app.sql.raw("ALTER TABLE system_performance_metrics RENAME TO spm_unreachable").run()
            var outageTimes: [Double] = []
            for _ in 0..<3 {
                clock.advance(by: 15)
                outageTimes.append(clock.now().timeIntervalSince1970)
                #expect(await monitor.collectOnce().failures["store"] != nil)
            }
            #expect(monitor.bufferedPointCount == 5)  // 3 cycles × 2 points, the newest 5 kept
            try await app.sql.raw("ALTER TABLE spm_unreachable RENAME TO system_performance_metrics").run()
            clock.advance(by: 15)
            #expect(await monitor.collectOnce().failures.isEmpty)
            #expect(monitor.bufferedPointCount == 0)
            struct Row: Decodable { var metric_name: String; var metric_value: Double }
            let rows = try await app.sql.raw("SELECT metric_name, metric_value FROM system_performance_metrics WHERE metric_name LIKE 'edm_tick_%'")
                .all(decoding: Row.self)
            #expect(rows.count == 5 + 2)
            // The oldest point (cycle 1's edm_tick_a) was dropped; cycles 2 and 3 are all there.
            #expect(rows.filter { $0.metric_value == outageTimes[0] }.map(\.metric_name) == ["edm_tick_b"])
            for time in outageTimes.dropFirst() { #expect(rows.filter { $0.metric_value == time }.count == 2) }
        }
    }

    @Test("system-health answers the latest snapshot; 503 before the first cycle")
    func systemHealth() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/api/monitoring/system-health") { res in
                #expect(res.status == .serviceUnavailable)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "unavailable")
            }
            await app.systemMonitor.collectOnce()
            try await app.testing().test(.GET, "/api/monitoring/system-health") { res in
                #expect(res.status == .ok)
                struct Point: Decodable { var name: String; var value: Double; var unit: String }
                struct Answer: Decodable { var collected_at: String; var host: [Point]; var process: [Point]; var database: [Point]; var failures: [String: String] }
                let answer = try res.content.decode(Answer.self)
                #expect(answer.collected_at == "2026-03-09T10:00:00Z")
                #expect(answer.host.contains { $0.name == "edm_system_memory_usage_percent" && $0.unit == "percent" })
                #expect(answer.process.contains { $0.name == "edm_process_resident_memory_bytes" && $0.unit == "bytes" })
                #expect(answer.database.contains { $0.name == "edm_db_query_latency_seconds" && $0.unit == "seconds" })
                #expect(answer.failures.isEmpty)
            }
        }
    }
}
