@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Synchronization
import Testing
import Vapor
import VaporTesting

/// `POST/GET /api/monitoring/performance-metrics` and `GET /api/monitoring/metric-names`.
@Suite("Performance metrics API")
struct PerformanceMetricsAPITests {
    /// The ManualClock's default start, 2026-03-09T10:00:00Z.
    static let now = 1_773_050_400.0

    struct QueryAnswer: Decodable {
        struct Series: Decodable { var tags: [String: String]; var points: [[Double]] }
        var series: [Series]
        var resolution: String
        var step: Double
        var agg: String
    }

    static func point(_ name: String = "edm_api_test_value", value: JSONValue = .number(1), tags: [String: JSONValue]? = nil,
                      timestamp: JSONValue? = nil, unit: JSONValue? = nil) -> JSONValue {
        var object: [String: JSONValue] = ["name": .string(name), "value": value]
        if let tags { object["tags"] = .object(tags) }
        if let timestamp { object["timestamp"] = timestamp }
        if let unit { object["unit"] = unit }
        return .object(object)
    }

    @Test("a batch is stored and read back by a range query", arguments: TestDatabase.enabled)
    func ingestAndQuery(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let points: [JSONValue] = [
                Self.point(value: .number(2), tags: ["host": .string("a")], timestamp: .number(Self.now - 120)),
                Self.point(value: .number(4), tags: ["host": .string("a")], timestamp: .string("2026-03-09T09:58:30Z")),
                Self.point(value: .number(9), tags: ["host": .string("b")], timestamp: .number(Self.now - 60), unit: .string("widgets")),
                Self.point(value: .number(1.5)),  // no tags, timestamp = now
            ]
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: {
                try $0.content.encode(["points": JSONValue.array(points)], as: .json)
            }) { res in
                #expect(res.status == .created)
                #expect(res.body.string == #"{"accepted":4}"#)
            }
            let from = Int(Self.now - 600)
            try await app.testing().test(.GET, "/api/monitoring/performance-metrics?name=edm_api_test_value&from=\(from)&to=\(Int(Self.now) + 1)&step=1m&agg=sum") { res in
                #expect(res.status == .ok)
                let answer = try res.content.decode(QueryAnswer.self)
                #expect(answer.resolution == "1m")
                #expect(answer.step == 60)
                // Series sorted by their tags as JSON: `{"host":…}` sorts before `{}`.
                #expect(answer.series.map(\.tags) == [["host": "a"], ["host": "b"], [:]])
                #expect(answer.series.map(\.points) == [[[Self.now - 120, 6]], [[Self.now - 60, 9]], [[Self.now, 1.5]]])
            }
            try await app.testing().test(.GET, "/api/monitoring/performance-metrics?name=edm_api_test_value&from=2026-03-09T09:50:00Z&step=30&agg=p50&tag.host=a&group_by=host") { res in
                #expect(res.status == .ok)
                let answer = try res.content.decode(QueryAnswer.self)
                #expect(answer.resolution == "raw")
                #expect(answer.series.map(\.points) == [[[Self.now - 120, 2], [Self.now - 90, 4]]])
            }
            try await app.testing().test(.GET, "/api/monitoring/metric-names") { res in
                #expect(res.status == .ok)
                struct Names: Decodable {
                    struct Entry: Decodable { var name: String; var unit: String; var series_count: Int; var latest_value: Double; var latest_timestamp: String }
                    var metrics: [Entry]
                }
                let names = try res.content.decode(Names.self)
                #expect(names.metrics.count == 1)
                #expect(names.metrics.first?.name == "edm_api_test_value")
                #expect(names.metrics.first?.series_count == 3)
                #expect(names.metrics.first?.latest_value == 1.5)
                #expect(names.metrics.first?.unit == "none")
                #expect(names.metrics.first?.latest_timestamp == "2026-03-09T10:00:00Z")
            }
        }
    }

    struct BadPoint: Sendable, CustomTestStringConvertible {
        var point: JSONValue
        var field: String
        var testDescription: String { field }
    }

    static let badPoints: [BadPoint] = [
        BadPoint(point: point("9starts_with_digit"), field: "points[1].name"),
        BadPoint(point: point("has-dash"), field: "points[1].name"),
        BadPoint(point: point(String(repeating: "n", count: 101)), field: "points[1].name"),
        BadPoint(point: .object(["value": .number(1)]), field: "points[1].name"),
        BadPoint(point: point(value: .string("12")), field: "points[1].value"),
        BadPoint(point: point(value: .null), field: "points[1].value"),
        BadPoint(point: point(unit: .string("")), field: "points[1].unit"),
        BadPoint(point: point(unit: .string(String(repeating: "u", count: 21))), field: "points[1].unit"),
        BadPoint(point: point(tags: ["bad key": .string("v")]), field: "points[1].tags.bad key"),
        BadPoint(point: point(tags: ["k": .number(3)]), field: "points[1].tags.k"),
        BadPoint(point: point(tags: ["k": .string(String(repeating: "v", count: 257))]), field: "points[1].tags.k"),
        BadPoint(point: point(tags: Dictionary(uniqueKeysWithValues: (0..<17).map { ("k\($0)", JSONValue.string("v")) })), field: "points[1].tags"),
        BadPoint(point: point(timestamp: .number(now + 301)), field: "points[1].timestamp"),
        BadPoint(point: point(timestamp: .string("yesterday")), field: "points[1].timestamp"),
        BadPoint(point: .string("not an object"), field: "points[1]"),
    ]

    @Test("each kind of bad point is a 400 naming it by index, and nothing is stored", arguments: badPoints)
    func badPoint(_ bad: BadPoint) async throws {
        try await withApp(.sqlite) { app, _ in
            let body: JSONValue = .object(["points": .array([Self.point(), bad.point, Self.point()])])
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "validation_failed")
                #expect(error.error.details.map(\.field) == [bad.field], "\(error.error.details)")
            }
            #expect(try await MetricStoreTests.count(app, "system_performance_metrics") == 0)
        }
    }

    @Test("every problem of every point is listed")
    func everyProblemListed() async throws {
        try await withApp(.sqlite) { app, _ in
            let body: JSONValue = .object(["points": .array([
                Self.point(),
                Self.point("bad-name", value: .string("x")),
                Self.point(),
                Self.point(timestamp: .number(Self.now + 3600)),
            ])])
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["points[1].name", "points[1].value", "points[3].timestamp"], "\(error.error.details)")
                #expect(error.error.message.hasPrefix("2 of 4 points are invalid"))
            }
            // A body that is not `{"points":[…]}` is a 400 too, never a 500.
            for raw in [#"{"point":[]}"#, #"[1,2]"#, #"{"points":"x"}"#, "not json"] {
                try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: {
                    $0.headers.contentType = .json
                    $0.body = ByteBuffer(string: raw)
                }) { res in
                    #expect(res.status == .badRequest, "\(raw)")
                }
            }
        }
    }

    // SQLite only: the multi-row insert in 1,000-row statements runs on PostgreSQL in the store
    // tests, and a second 10,000-point request would only load the shared machine.
    @Test("a 10,000-point batch is accepted in one request; 10,001 are refused")
    func largeBatch() async throws {
        try await withApp(.sqlite) { app, _ in
            func batch(_ count: Int) -> JSONValue {
                .object(["points": .array((0..<count).map { i in
                    Self.point("edm_bulk_value", value: .number(Double(i)), tags: ["shard": .string("s\(i % 10)")], timestamp: .number(Self.now - 3600 + Double(i) * 0.25))
                })])
            }
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { try $0.content.encode(batch(10_000), as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string.prefix(300))")
            }
            #expect(try await MetricStoreTests.count(app, "system_performance_metrics") == 10_000)
            try await app.testing().test(.GET, "/api/monitoring/performance-metrics?name=edm_bulk_value&from=\(Int(Self.now) - 3600)&step=1h&agg=count") { res in
                let answer = try res.content.decode(QueryAnswer.self)
                #expect(answer.series.count == 10)
                #expect(answer.series.allSatisfy { $0.points == [[Self.now - 3600, 1000]] })
            }
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { try $0.content.encode(batch(10_001), as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["points"])
            }
            #expect(try await MetricStoreTests.count(app, "system_performance_metrics") == 10_000)
        }
    }

    /// A clock that answers queued instants first, then a fixed one.
    final class ScriptedClock: WallClock {
        let queued = Mutex<[Date]>([])
        let fixed: Date
        init(_ fixed: Date) { self.fixed = fixed }
        func now() -> Date { queued.withLock { $0.isEmpty ? fixed : $0.removeFirst() } }
    }

    @Test("a point the store refuses after the handler accepted it is still a 400, not a 500")
    func storeRefusalIsA400() async throws {
        let t0 = Date(timeIntervalSince1970: Self.now)
        let clock = ScriptedClock(t0)
        try await withApp(.sqlite, clock: clock) { app, _ in
            // The handler judges at t0 (the point is 250 s ahead: fine); the store's clock reads
            // 400 s earlier, so for it the point is 650 s ahead.
            clock.queued.withLock { $0 = [t0, t0.addingTimeInterval(-400)] }
            let body: JSONValue = .object(["points": .array([Self.point(timestamp: .number(Self.now + 250))])])
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["points[0].timestamp"])
            }
            let stored = try await MetricStoreTests.count(app, "system_performance_metrics")
            #expect(stored == 0)
        }
    }

    @Test("bad query parameters are a 400 naming the parameter", arguments: [
        ("", "name"), ("name=1x", "name"), ("name=edm_x&agg=median", "agg"), ("name=edm_x&step=0", "step"),
        ("name=edm_x&step=-5", "step"), ("name=edm_x&step=abc", "step"), ("name=edm_x&step=1.5", "step"),
        ("name=edm_x&from=yesterday", "from"), ("name=edm_x&to=2026-13-01", "to"), ("name=edm_x&from=2000&to=1000", "from"),
        ("name=edm_x&from=0&to=1773050400&step=60", "step"), ("name=edm_x&tags.host=a", "tags.host"), ("name=edm_x&tag.bad-key=a", "tag.bad-key"),
        ("name=edm_x&group_by=a,b-c", "group_by"), ("name=edm_x&name=edm_y", "name"), ("name=edm_x&tag.h=a&tag.h=b", "tag.h"),
    ])
    func badQuery(_ query: String, _ field: String) async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/api/monitoring/performance-metrics?\(query)") { res in
                #expect(res.status == .badRequest, "\(query)")
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.code == "validation_failed")
                #expect(error.error.details.map(\.field).contains(field), "\(query): \(error.error.details)")
            }
        }
    }

    @Test("step units")
    func stepUnits() {
        #expect(PerformanceMetricsController.parseStep("60") == 60)
        #expect(PerformanceMetricsController.parseStep("45s") == 45)
        #expect(PerformanceMetricsController.parseStep("5m") == 300)
        #expect(PerformanceMetricsController.parseStep("2h") == 7200)
        #expect(PerformanceMetricsController.parseStep("1d") == 86_400)
        for bad in ["", "m", "0", "1.5", "-1", "1w", "366d", "٣"] { #expect(PerformanceMetricsController.parseStep(bad) == nil, "\(bad)") }
    }
}
