@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting

/// Malformed request bodies found by a break-it pass: every bad alert-rule field at once,
/// minutes that are not whole, `null` and PUT against PATCH, empty bodies and repeated names.
@Suite("Request bodies")
struct RequestBodyTests {
    /// A valid threshold rule body.
    static let rule: [String: JSONValue] = [
        "name": "CPU", "metric_name": "edm_test_value", "condition_type": "threshold", "comparison_operator": ">",
        "threshold_value": 1, "time_window_minutes": 5, "severity": "warning",
    ]

    /// Sends `body` as raw JSON text and returns status and error body (nil when not an error).
    static func send(_ app: Application, _ method: HTTPMethod, _ path: String, raw body: String?) async throws -> (HTTPStatus, ErrorBody?) {
        var result: (HTTPStatus, ErrorBody?) = (.internalServerError, nil)
        try await app.testing().test(method, path, beforeRequest: { req in
            req.headers.contentType = .json
            if let body { req.body = ByteBuffer(string: body) }
        }) { res in
            result = (res.status, res.status.code >= 400 ? try res.content.decode(ErrorBody.self) : nil)
        }
        return result
    }

    static func send(_ app: Application, _ method: HTTPMethod, _ path: String, _ body: [String: JSONValue]) async throws -> (HTTPStatus, ErrorBody?) {
        try await send(app, method, path, raw: String(decoding: try JSONEncoder().encode(body), as: UTF8.self))
    }

    @Test("a rule body with many wrongly typed, unknown and nested bad fields lists every one of them")
    func everyBadField() async throws {
        try await withApp(.sqlite) { app, _ in
            let body = #"""
            {"name": 5, "metric_name": [], "time_window_minutes": "five", "severity": true, "colour": "red",
             "is_active": "yes", "for_minutes": "2", "notification_channels": {"type": "log"},
             "tag_matchers": [{"key": 1, "op": "~", "value": null}, "junk", {"key": "host", "value": "a", "extra": 1}],
             "labels": {"team": 5, "ok": "fine"}}
            """#
            let (status, error) = try await Self.send(app, .POST, "/api/monitoring/alert-rules", raw: body)
            #expect(status == .badRequest)
            #expect(error?.error.code == "validation_failed")
            #expect(Set(error?.error.details.map(\.field) ?? []) == [
                "name", "metric_name", "time_window_minutes", "severity", "colour", "is_active", "for_minutes", "notification_channels",
                "tag_matchers[0].key", "tag_matchers[0].op", "tag_matchers[0].value", "tag_matchers[1]", "tag_matchers[2].extra",
                "labels.team", "condition_type",
            ], "\(error?.error.details.map(\.field) ?? [])")
            #expect(error?.error.details.first { $0.field == "name" }?.reason == "must be a string")
            #expect(error?.error.details.first { $0.field == "condition_type" }?.reason == "is required")
            #expect(try await AlertRule.query(on: app.db).filter(\.$name == "5").count() == 0)
        }
    }

    @Test("time_window_minutes that is not a whole number of minutes in range names that field", arguments: ["5.5", "1e308", "0", "-1", "10081"])
    func wholeMinutes(_ minutes: String) async throws {
        try await withApp(.sqlite) { app, _ in
            let body = #"{"name":"W","metric_name":"edm_test_value","condition_type":"absence","severity":"info","time_window_minutes":"# + minutes + "}"
            let (status, error) = try await Self.send(app, .POST, "/api/monitoring/alert-rules", raw: body)
            #expect(status == .badRequest)
            #expect(error?.error.details.map(\.field) == ["time_window_minutes"])
            #expect(error?.error.details.first?.reason == "must be a whole number of minutes from 1 to 10080 (7 days)")
        }
    }

    @Test("PATCH: null for a required field is a 400 naming it, null for a nullable one clears it; PUT needs the whole rule")
    func nullAndPutAgainstPatch() async throws {
        try await withApp(.sqlite) { app, _ in
            var full = Self.rule
            full["description"] = "busy"
            full["labels"] = ["team": "ops"]
            full["repeat_interval_minutes"] = 30
            let id = try await AlertingTests.createRule(app, full)
            let path = "/api/monitoring/alert-rules/\(id)"

            let (nulls, nullError) = try await Self.send(app, .PATCH, path, ["name": nil, "is_active": nil, "labels": nil, "description": nil])
            #expect(nulls == .badRequest)
            #expect(Set(nullError?.error.details.map(\.field) ?? []) == ["name", "is_active", "labels"])
            #expect(nullError?.error.details.first { $0.field == "name" }?.reason == "is required and must not be null")
            #expect(try await AlertRule.find(id, on: app.db)?.ruleDescription == "busy")

            let (cleared, _) = try await Self.send(app, .PATCH, path, ["description": nil, "repeat_interval_minutes": nil])
            #expect(cleared == .ok)
            let afterClear = try #require(try await AlertRule.find(id, on: app.db))
            #expect(afterClear.ruleDescription == nil)
            #expect(afterClear.repeatIntervalMinutes == nil)
            #expect(afterClear.labels == ["team": "ops"])

            // A threshold rule needs its threshold: clearing it is refused.
            let (noThreshold, thresholdError) = try await Self.send(app, .PATCH, path, ["threshold_value": nil])
            #expect(noThreshold == .badRequest)
            #expect(thresholdError?.error.details.map(\.field) == ["threshold_value"])

            let (partialPut, putError) = try await Self.send(app, .PUT, path, ["is_active": false])
            #expect(partialPut == .badRequest)
            #expect(Set(putError?.error.details.map(\.field) ?? []) == ["name", "metric_name", "condition_type", "time_window_minutes", "severity"])
            #expect(putError?.error.details.allSatisfy { $0.reason == "is required" } == true)
            #expect(try await AlertRule.find(id, on: app.db)?.isActive == true)

            // A whole rule replaces: fields left out take their defaults.
            var replacement = Self.rule
            replacement["threshold_value"] = 9
            let (put, _) = try await Self.send(app, .PUT, path, replacement)
            #expect(put == .ok)
            let replaced = try #require(try await AlertRule.find(id, on: app.db))
            #expect(replaced.thresholdValue == 9)
            #expect(replaced.labels == [:])
            #expect(replaced.isActive)
            #expect(replaced.notificationChannels == [["type": "log"]])

            // PATCH takes a subset and keeps the rest.
            let (patch, _) = try await Self.send(app, .PATCH, path, ["severity": "critical"])
            #expect(patch == .ok)
            let patched = try #require(try await AlertRule.find(id, on: app.db))
            #expect(patched.severity == .critical)
            #expect(patched.thresholdValue == 9)
        }
    }

    @Test("an empty body is 400 validation_failed naming body on every endpoint that takes one", arguments: [
        "POST /api/users", "POST /api/email-services", "POST /api/tasks", "POST /api/monitoring/task-events",
        "POST /api/monitoring/alert-rules", "POST /api/monitoring/silences", "POST /api/monitoring/performance-metrics",
        "PUT /api/monitoring/config", "POST /api/tokens",
    ])
    func emptyBody(_ route: String) async throws {
        try await withApp(.sqlite) { app, _ in
            let parts = route.split(separator: " ")
            let (status, error) = try await Self.send(app, HTTPMethod(rawValue: String(parts[0])), String(parts[1]), raw: nil)
            #expect(status == .badRequest)
            #expect(error?.error.code == "validation_failed")
            #expect(error?.error.details.map(\.field) == ["body"])
            #expect(error?.error.details.first?.reason == "is empty")
        }
    }

    @Test("an empty body for an existing alert rule's PUT and PATCH is 400 too")
    func emptyRuleUpdate() async throws {
        try await withApp(.sqlite) { app, _ in
            let id = try await AlertingTests.createRule(app, Self.rule)
            for method in [HTTPMethod.PUT, .PATCH] {
                let (status, error) = try await Self.send(app, method, "/api/monitoring/alert-rules/\(id)", raw: "")
                #expect(status == .badRequest)
                #expect(error?.error.details.map(\.field) == ["body"])
            }
        }
    }

    @Test("a name given twice in one JSON object is refused, naming its path", arguments: [
        ("POST /api/monitoring/alert-rules", #"{"name":"a","metric_name":"edm_x","condition_type":"absence","time_window_minutes":5,"severity":"info","name":"b"}"#, "name"),
        ("POST /api/monitoring/alert-rules", #"{"name":"a","metric_name":"edm_x","condition_type":"absence","time_window_minutes":5,"severity":"info","labels":{"team":"x","team":"y"}}"#, "labels.team"),
        ("POST /api/users", #"{"name":"Ann","email":"ann@example.com","email":"bob@example.com"}"#, "email"),
        ("POST /api/monitoring/performance-metrics", #"{"points":[{"name":"edm_x","value":1},{"name":"edm_x","value":1,"value":2}]}"#, "points[1].value"),
    ])
    func duplicateNames(_ route: String, _ body: String, _ field: String) async throws {
        try await withApp(.sqlite) { app, _ in
            let parts = route.split(separator: " ")
            let (status, error) = try await Self.send(app, HTTPMethod(rawValue: String(parts[0])), String(parts[1]), raw: body)
            #expect(status == .badRequest)
            #expect(error?.error.details.map(\.field) == [field])
            #expect(error?.error.details.first?.reason == "appears more than once in one object")
            #expect(try await AlertRule.query(on: app.db).filter(\.$name == "a").count() == 0)
            #expect(try await User.query(on: app.db).filter(\.$email == "ann@example.com").count() == 0)
        }
    }
}
