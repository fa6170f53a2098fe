@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// The seeded default rules can do their job (issue #15, "no dead defaults").
@Suite("Default rules")
struct DefaultRulesTests {
    struct Name: Decodable { var metric_name: String }

    @Test("no default rule watches a metric nothing writes: every one is written by a collector, the task monitor or the evaluator", arguments: TestDatabase.enabled)
    func everyMetricIsWritten(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock, mailers: ScriptedMailers(clock: clock)) { app, _ in
            let defaults = try await AlertRule.query(on: app.db).all()
            #expect(defaults.count >= 6)
            // Every monitor writes what it writes in some state of the system: pending work with
            // no service (the "while pending" series), a stuck task, API traffic.
            let user = try await Fixtures.user(app)
            _ = try await Fixtures.task(app, user: user, recipients: 3)
            clock.advance(by: 700)
            try await app.testing().test(.GET, "/api/users") { #expect($0.status == .ok) }
            try await app.testing().test(.GET, "/api/nope") { #expect($0.status == .notFound) }
            await app.systemMonitor.collectOnce()
            #expect(try await app.edm.taskMonitor.runOnce().count == 1)
            _ = try? await app.edm.alerting.runDueIteration()
            let written = Set(try await app.sql.raw("SELECT DISTINCT metric_name FROM system_performance_metrics").all(decoding: Name.self).map(\.metric_name))
            for rule in defaults {
                #expect(written.contains(rule.metricName), "default rule '\(rule.name)' watches \(rule.metricName), which nothing wrote; written: \(written.sorted())")
            }
            #expect(!defaults.contains { $0.metricName == "edm_db_connection_pool_usage_percent" })
        }
    }

    @Test("the seeded Task stuck rule follows stuck_threshold_seconds when it changes at run time", arguments: TestDatabase.enabled)
    func stuckRuleFollowsSetting(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let rule = try #require(try await AlertRule.query(on: app.db).filter(\.$name == "Task stuck").first())
            try await app.testing().test(.PUT, "/api/monitoring/config", beforeRequest: { req in
                try req.content.encode(["stuck_threshold_seconds": 120], as: .json)
            }) { #expect($0.status == .ok) }
            // A task with work left and no service: it cannot send.
            let user = try await Fixtures.user(app)
            let task = try await Fixtures.task(app, user: user, recipients: 2)
            func open() async throws -> [AlertHistory] {
                try await AlertHistory.query(on: app.db).filter(\.$rule.$id == rule.requireID()).filter(\.$resolvedAt == nil).all()
            }
            clock.advance(by: 100)
            #expect(try await app.edm.taskMonitor.runOnce().isEmpty)
            _ = try await app.edm.alerting.evaluateOnceRecordingErrors()
            #expect(try await open().isEmpty)
            // Past the new threshold (2 minutes), far below the seed's 600 s: it fires.
            clock.advance(by: 30)
            #expect(try await app.edm.taskMonitor.runOnce().map(\.taskID) == [task])
            _ = try await app.edm.alerting.evaluateOnceRecordingErrors()
            let firing = try await open()
            #expect(firing.count == 1)
            #expect(firing.first?.tags["task_id"] == task.uuidString.lowercased())
        }
    }

    @Test("the revision rewrites the two dead defaults as seeded, leaves edited ones alone, and reverts", arguments: TestDatabase.enabled)
    func revision(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            func rule(_ name: String) async throws -> AlertRule? { try await AlertRule.query(on: app.db).filter(\.$name == name).first() }
            let slow = try #require(try await rule("Database slow"))
            #expect(slow.metricName == "edm_db_query_latency_seconds")
            #expect(slow.thresholdValue == 0.5)
            let stuck = try #require(try await rule("Task stuck"))
            #expect(stuck.comparisonOperator == .greaterThan)
            #expect(stuck.thresholdValue == 0)
            #expect(stuck.timeWindowMinutes == 1)

            let revision = ReviseDeadDefaultAlertRules()
            try await revision.revert(on: app.db)
            #expect(try await rule("Database slow") == nil)
            #expect(try await rule("Database pool saturated")?.metricName == "edm_db_connection_pool_usage_percent")
            #expect(try await rule("Task stuck")?.thresholdValue == 600)
            // An operator raised the stuck rule's threshold: the revision leaves it as it is.
            let edited = try #require(try await rule("Task stuck"))
            edited.thresholdValue = 900
            try await edited.save(on: app.db)
            try await revision.prepare(on: app.db)
            #expect(try await rule("Task stuck")?.thresholdValue == 900)
            #expect(try await rule("Task stuck")?.comparisonOperator == .greaterThanOrEqual)
            #expect(try await rule("Database slow")?.metricName == "edm_db_query_latency_seconds")
        }
    }
}
