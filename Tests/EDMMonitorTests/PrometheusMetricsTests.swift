@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor
import VaporTesting

/// API request metrics and `GET /metrics`.
@Suite("API metrics and /metrics")
struct PrometheusMetricsTests {
    @Test("requests are counted per route pattern and status, not per raw path")
    func routePatterns() async throws {
        try await withApp(.sqlite) { app, _ in
            for _ in 0..<2 {
                try await app.testing().test(.GET, "/api/tasks/\(UUID())") { #expect($0.status == .notFound) }
            }
            try await app.testing().test(.GET, "/api/users") { #expect($0.status == .ok) }
            try await app.testing().test(.GET, "/no/such/\(UUID())") { #expect($0.status == .notFound) }
            try await app.testing().test(.GET, "/api/tasks?per_page=0") { #expect($0.status == .badRequest) }
            let counts = app.apiMetrics.requestCounts
            #expect(counts[.init(method: "GET", route: "/api/tasks/:id", status: 404)] == 2)
            #expect(counts[.init(method: "GET", route: "/api/users", status: 200)] == 1)
            #expect(counts[.init(method: "GET", route: "unmatched", status: 404)] == 1)
            #expect(counts[.init(method: "GET", route: "/api/tasks", status: 400)] == 1)
            #expect(counts.keys.allSatisfy { !$0.route.contains("-") }, "no raw ids: \(counts.keys)")
            #expect(app.apiMetrics.latencies[.init(method: "GET", route: "/api/tasks/:id")]?.count == 2)
            #expect(app.apiMetrics.errorRatePercent() == 0)
        }
    }

    @Test("the error rate is the 5xx share of the last 5 minutes")
    func errorRateWindow() {
        let clock = ManualClock()
        let recorder = APIMetricsRecorder(clock: clock)
        #expect(recorder.errorRatePercent() == 0)
        for status in [200, 200, 404, 500] { recorder.record(method: "GET", route: "/x", status: status, seconds: 0.01) }
        #expect(recorder.errorRatePercent() == 25)
        clock.advance(by: 200)
        recorder.record(method: "GET", route: "/x", status: 503, seconds: 0.01)
        #expect(recorder.errorRatePercent() == 40)
        // 300 s after the first four they have left the window; the 503 is still in it.
        clock.advance(by: 100)
        #expect(recorder.errorRatePercent() == 100)
        clock.advance(by: 300)
        #expect(recorder.errorRatePercent() == 0)
        #expect(recorder.requestCounts[.init(method: "GET", route: "/x", status: 500)] == 1)
        let histogram = recorder.latencies[.init(method: "GET", route: "/x")]
        #expect(histogram?.count == 5)
        #expect(histogram?.buckets.first == 0 && histogram?.buckets[1] == 5)
    }

    /// The `/metrics` text after some requests and one collection cycle.
    static func exposition(_ app: Application) async throws -> (String, String?) {
        try await app.testing().test(.GET, "/api/tasks/\(UUID())") { _ in }
        try await app.testing().test(.GET, "/api/users") { _ in }
        await app.systemMonitor.collectOnce()
        var text = "", contentType: String?
        try await app.testing().test(.GET, "/metrics") { res in
            #expect(res.status == .ok)
            text = res.body.string
            contentType = res.headers.first(name: .contentType)
        }
        return (text, contentType)
    }

    @Test("/metrics serves API and collector families in the text format")
    func metricsEndpoint() async throws {
        try await withApp(.sqlite) { app, _ in
            let (text, contentType) = try await Self.exposition(app)
            #expect(contentType == "text/plain; version=0.0.4; charset=utf-8")
            #expect(text.contains("# TYPE edm_api_requests_total counter\n"))
            #expect(text.contains(#"edm_api_requests_total{method="GET",route="/api/tasks/:id",status="404"} 1"#))
            #expect(text.contains("# TYPE edm_api_request_duration_seconds histogram\n"))
            #expect(text.contains(#"edm_api_request_duration_seconds_bucket{method="GET",route="/api/users",le="+Inf"} 1"#))
            #expect(text.contains("# TYPE edm_api_error_rate_percent gauge\nedm_api_error_rate_percent 0\n"))
            #expect(text.contains("# TYPE edm_process_resident_memory_bytes gauge\n"))
            #expect(text.contains("# TYPE edm_process_cpu_seconds_total counter\n"))
            #expect(text.contains(#"edm_queue_subtasks{status="pending"} 0"#))
            #expect(text.contains("# HELP edm_db_size_bytes Size of the database, bytes.\n"))
        }
    }

    /// `promtool` on PATH, if any.
    static func promtool() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `promtool check metrics` on `text` when promtool is on PATH, expecting success.
    static func expectPromtoolAccepts(_ text: String) throws {
        guard let promtool = promtool() else { return }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("edm-metrics-\(UUID()).txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let child = try ChildProcess("/bin/sh", ["-c", "exec \"$0\" check metrics < \"$1\"", promtool, file.path])
        #expect(child.wait(timeout: 60) == 0, "promtool: \(child.stdout) \(child.stderr)\n\(text)")
    }

    @Test("promtool check metrics passes on /metrics (required when EDM_REQUIRE_PROMTOOL=1)")
    func promtoolCheck() async throws {
        guard let promtool = Self.promtool() else {
            if ProcessInfo.processInfo.environment["EDM_REQUIRE_PROMTOOL"] == "1" {
                Issue.record("promtool is not on PATH but EDM_REQUIRE_PROMTOOL=1 (install the Debian package prometheus)")
            }
            return
        }
        try await withApp(.sqlite) { app, _ in
            let (text, _) = try await Self.exposition(app)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("edm-metrics-\(UUID()).txt")
            try text.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let child = try ChildProcess("/bin/sh", ["-c", "exec \"$0\" check metrics < \"$1\"", promtool, file.path])
            let status = child.wait(timeout: 60)
            #expect(status == 0, "promtool: \(child.stdout) \(child.stderr)\n\(text)")
        }
    }
}

@Suite("swift-metrics bridge")
struct SwiftMetricsBridgeTests {
    @Test("with swift-metrics bootstrapped on the app's swift-prometheus registry, Vapor's http metrics appear on /metrics, and promtool accepts it")
    func vaporMetricsAppear() async throws {
        try await withApp(.sqlite) { app, _ in
            // The one bootstrap of this test process (swift-metrics allows one).
            SwiftMetricsBridge.bootstrap(app.edm.prometheusRegistry)
            try await app.testing().test(.GET, "/api/users") { #expect($0.status == .ok) }
            var text = ""
            try await app.testing().test(.GET, "/metrics") { res in text = res.body.string }
            #expect(text.contains("# TYPE edm_api_requests_total counter"))
            #expect(text.contains("http_requests_total"), "\(text)")
            try PrometheusMetricsTests.expectPromtoolAccepts(text)
        }
    }
}
