@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// `GET/PUT /api/monitoring/config`: run-time changes that apply without a restart (issue #7).
@Suite("Run-time monitoring configuration")
struct MonitoringConfigTests {
    struct ConfigBody: Decodable {
        var config: [String: JSONValue]
        var startup: [String: JSONValue]
        var overridden: [String]
    }

    static func put(_ app: Application, _ json: String, token: String? = nil, requestID: String? = nil, status: HTTPStatus = .ok) async throws -> String {
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if let token { headers.add(name: .authorization, value: "Bearer \(token)") }
        if let requestID { headers.add(name: "X-Request-ID", value: requestID) }
        var body = ""
        try await app.testing().test(.PUT, "/api/monitoring/config", headers: headers, body: ByteBuffer(string: json)) { res in
            #expect(res.status == status, "\(res.body.string)")
            body = res.body.string
        }
        return body
    }

    @Test("a change applies to the running monitors at once, is kept in the history with who and old → new, and null resets it", arguments: TestDatabase.enabled)
    func changeApplies(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withApp(db, clock: clock) { app, _ in
            // A task with work and no service: stuck after the threshold (600 s by default).
            let user = try await Fixtures.user(app)
            let taskID = try await Fixtures.task(app, user: user, recipients: 3)
            clock.advance(by: 200)
            _ = try await app.edm.scheduler.runOnce()
            #expect(try await app.edm.taskMonitor.runOnce().isEmpty)

            let admin = try await SecurityTests.token(app, .admin, name: "alice")
            let body = try await Self.put(app, #"{"stuck_threshold_seconds": 120, "alerting_enabled": false}"#, token: admin, requestID: "cfg-1")
            let config = try JSONDecoder().decode(ConfigBody.self, from: Data(body.utf8))
            #expect(config.config["stuck_threshold_seconds"] == .number(120) && config.startup["stuck_threshold_seconds"] == .number(600))
            #expect(config.overridden == ["alerting_enabled", "stuck_threshold_seconds"])

            // The very next cycle uses the new threshold; no restart.
            let stuck = try await app.edm.taskMonitor.runOnce()
            #expect(stuck.map(\.taskID) == [taskID])
            #expect(try await app.edm.alerting.evaluateOnce().disabled)

            // History: newest first, with who, old → new and the request id.
            try await app.testing().test(.GET, "/api/monitoring/config/changes?key=stuck_threshold_seconds", headers: SecurityTests.bearer(admin)) { res in
                #expect(res.status == .ok)
                struct Change: Decodable { var key: String; var old_value: JSONValue?; var new_value: JSONValue?; var changed_by: String; var changed_at: Date; var request_id: String? }
                struct List: Decodable { var data: [Change]; var pagination: [String: Int] }
                let list = try JSONDecoder.apiTest.decode(List.self, from: Data(res.body.string.utf8))
                #expect(list.pagination["total"] == 1)
                let change = try #require(list.data.first)
                #expect(change.old_value == .number(600) && change.new_value == .number(120))
                #expect(change.changed_by == "alice" && change.request_id == "cfg-1" && change.changed_at == clock.now())
            }

            // null: back to the start-up value, recorded too.
            _ = try await Self.put(app, #"{"stuck_threshold_seconds": null, "alerting_enabled": true}"#, token: admin)
            #expect(app.edm.taskMonitor.settings.stuckThresholdSeconds == 600)
            #expect(try await app.edm.taskMonitor.runOnce().isEmpty)
            #expect(try await !app.edm.alerting.evaluateOnce().disabled)
            #expect(try await MonitoringConfigChange.query(on: app.db).count() == 4)
            let after = try JSONDecoder().decode(ConfigBody.self, from: Data(try await Self.put(app, "{}", token: admin).utf8))
            // An explicit value stays an override even when it equals the start-up value.
            #expect(after.overridden == ["alerting_enabled"])
        }
    }

    @Test("the monitoring switches and retention apply at the next cycle", arguments: TestDatabase.enabled)
    func switchesAndRetention(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withApp(db, clock: clock) { app, _ in
            #expect(await app.systemMonitor.cycle() != nil)
            _ = try await Self.put(app, #"{"system_monitoring_enabled": false, "task_monitoring_enabled": false, "collection_interval_seconds": 60}"#)
            #expect(await app.systemMonitor.cycle() == nil)
            #expect(app.systemMonitor.interval == 60)
            // Task monitoring off: a new task records no lifecycle row.
            let user = try await Fixtures.user(app)
            _ = try await Fixtures.task(app, user: user, recipients: 2)
            #expect(try await TaskProcessingMetric.query(on: app.db).count() == 0)
            _ = try await Self.put(app, #"{"task_monitoring_enabled": true}"#)
            _ = try await Fixtures.task(app, user: user, recipients: 2, name: "second")
            #expect(try await TaskProcessingMetric.query(on: app.db).count() == 1)

            // Retention: a 2-day-old point survives the default 7 days, not a change to 1 day.
            let old = MetricPoint(name: "edm_test_value", value: 1, unit: "count", tags: [:], timestamp: clock.now().addingTimeInterval(-2 * 86_400))
            try await app.metricStore.insert([old], on: app.db)
            _ = try await app.metricStore.cleanup(on: app.db)
            #expect(try await SystemPerformanceMetric.query(on: app.db).filter(\.$metricName == "edm_test_value").count() == 1)
            _ = try await Self.put(app, #"{"metrics_raw_retention_days": 1}"#)
            #expect(app.metricStore.configuration.rawRetention == 86_400)
            _ = try await app.metricStore.cleanup(on: app.db)
            #expect(try await SystemPerformanceMetric.query(on: app.db).filter(\.$metricName == "edm_test_value").count() == 0)
        }
    }

    @Test("bad changes are one 400 listing every problem, and nothing changes")
    func validation() async throws {
        try await withApp(.sqlite) { app, _ in
            let body = try await Self.put(app, #"{"stuck_threshold_seconds": 5, "alerting_enabled": "no", "bogus": 1, "evaluation_interval_seconds": 10, "metrics_rollup_1m_retention_days": 2}"#, status: .badRequest)
            let error = try JSONDecoder().decode(ErrorBody.self, from: Data(body.utf8)).error
            #expect(error.code == "validation_failed")
            #expect(Set(error.details.map(\.field)) == ["stuck_threshold_seconds", "alerting_enabled", "bogus", "metrics_rollup_1m_retention_days"], "\(error.details)")
            #expect(app.edm.alerting.settings.evaluationIntervalSeconds == 30)
            #expect(try await MonitoringConfigChange.query(on: app.db).count() == 0)
            for bad in ["[1]", "42", "not json", #"{"collection_interval_seconds": 1e400}"#] {
                let answer = try await Self.put(app, bad, status: .badRequest)
                let error114 = try JSONDecoder().decode(ErrorBody.self, from: Data(answer.utf8)).error
                #expect(error114.code == "validation_failed")
            }
        }
    }

    @Test("a change stored by another instance applies here at the next reload")
    func otherInstance() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.sql.insert(into: "monitoring_config").columns("key", "value", "updated_at", "updated_by")
                .values(SQLBind("evaluation_interval_seconds"), SQLBind("12"), SQLBind(Date()), SQLBind("other")).run()
            try await app.sql.insert(into: "monitoring_config").columns("key", "value", "updated_at", "updated_by")
                .values(SQLBind("no_such_key"), SQLBind("1"), SQLBind(Date()), SQLBind("newer-version")).run()
            #expect(app.edm.alerting.settings.evaluationIntervalSeconds == 30)
            let state = try await app.edm.monitoring.reload()
            #expect(state.overridden == ["evaluation_interval_seconds"])
            #expect(app.edm.alerting.settings.evaluationIntervalSeconds == 12)
        }
    }
}

extension JSONDecoder {
    /// Decodes the API's JSON (ISO 8601 times with or without fractional seconds).
    static var apiTest: JSONDecoder { APIJSON.decoder() }
}
