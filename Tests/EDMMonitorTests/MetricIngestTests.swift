@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Issue #15's ingest: the columnar write path (all or nothing, counted), the canonical tag key,
/// the 1e308 case, the covering index of range queries, and the Pushgateway-compatible push.
@Suite("Metric ingest")
struct MetricIngestTests {
    /// The ManualClock's default start, 2026-03-09T10:00:00Z.
    static let now = 1_773_050_400.0

    static func count(_ app: Application, _ table: String) async throws -> Int {
        struct Row: Decodable { var n: Int }
        return try await app.sql.raw("SELECT count(*) AS n FROM \(ident: table)").first(decoding: Row.self)?.n ?? -1
    }

    static func counts(_ app: Application) async throws -> [Int] {
        [try await count(app, "system_performance_metrics"), try await count(app, MetricRollupTable.minute.schema),
         try await count(app, MetricRollupTable.hour.schema)]
    }

    /// 10,000 points: 200 metrics × 50 series, one point per series, timestamps over 50 minutes
    /// (the shape of `scripts/bench/ingest.py`), so SQLite needs several statements per table.
    static func benchBatch(seq: Int, now: Double) -> [MetricPoint] {
        (0..<MetricStore.maxBatchSize).map { i in
            MetricPoint(name: "edm_ingest_m\(i % 200)_percent", value: Double((i * 7919 + seq) % 1000) / 10,
                        tags: ["host": "h\((i / 200) % 50)", "batch": "\(seq)"],
                        timestamp: Date(timeIntervalSince1970: now - 3000 + Double(i % 3000)))
        }
    }

    @Test("a 10,000-point batch is stored whole and counted; a batch with bad points or a failing statement stores nothing", arguments: TestDatabase.enabled)
    func allOrNothing(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let batch = Self.benchBatch(seq: 1, now: Self.now)
            try await app.metricStore.insert(batch, on: app.db)
            // Every point its own series: one rollup row per point and table.
            #expect(try await Self.counts(app) == [10_000, 10_000, 10_000])

            // The same series again, one minute on: the minute rollups gain rows, the hour rows
            // whose hour did not change are merged.
            let later = batch.map { point -> MetricPoint in
                var point = point
                point.timestamp = point.timestamp.addingTimeInterval(60)
                return point
            }
            try await app.metricStore.insert(later, on: app.db)
            struct Total: Decodable { var n: Int }
            let hourSamples = try await app.sql.raw("SELECT CAST(SUM(sample_count) AS BIGINT) AS n FROM \(ident: MetricRollupTable.hour.schema)").first(decoding: Total.self)?.n
            let minuteSamples = try await app.sql.raw("SELECT CAST(SUM(sample_count) AS BIGINT) AS n FROM \(ident: MetricRollupTable.minute.schema)").first(decoding: Total.self)?.n
            #expect(hourSamples == 20_000 && minuteSamples == 20_000)
            let before = try await Self.counts(app)
            #expect(before[0] == 20_000)

            // Bad points anywhere: every one is listed, nothing is written.
            var bad = Self.benchBatch(seq: 2, now: Self.now)
            bad[3].value = .nan
            bad[9_999].name = "1bad"
            bad[5_000].tags["__x"] = "y"
            do {
                try await app.metricStore.insert(bad, on: app.db)
                Issue.record("a batch with bad points was stored")
            } catch let invalid as MetricStore.InvalidBatch {
                #expect(invalid.problems.map(\.index) == [3, 5_000, 9_999])
                #expect(invalid.problems.map(\.problem.field) == ["value", "tags.__x", "name"])
            }
            #expect(try await Self.counts(app) == before)

            // The last statement of the transaction (the hour rollups) fails: the raw rows and
            // minute rollups written before it are rolled back.
            switch db {
            case .sqlite:
                try await app.sql.raw("""
                    CREATE TRIGGER refuse_hour BEFORE INSERT ON system_performance_metric_rollups_1h
                    WHEN NEW.metric_name = 'edm_refused_value' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                    """).run()
            case .postgres:
                try await app.sql.raw("""
                    CREATE FUNCTION refuse_hour() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF NEW.metric_name = 'edm_refused_value' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$
                    """).run()
                try await app.sql.raw("""
                    CREATE TRIGGER refuse_hour BEFORE INSERT ON system_performance_metric_rollups_1h
                    FOR EACH ROW EXECUTE FUNCTION refuse_hour()
                    """).run()
            }
            var failing = Self.benchBatch(seq: 3, now: Self.now)
            failing[7_000].name = "edm_refused_value"
            await #expect(throws: (any Error).self) { try await app.metricStore.insert(failing, on: app.db) }
            #expect(try await Self.counts(app) == before)
        }
    }

    @Test("the canonical tags key is byte for byte what JSONEncoder with sorted keys writes")
    func canonicalKey() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var cases: [[String: String]] = [[:], ["a": ""], ["b": "1", "a": "2", "a10": "x", "a9": "y", "B": "z", "_x": "w", "aB": "v", "a_": "u"]]
        // Every scalar below U+0300 (controls, quotes, backslash, DEL, Latin-1), plus wide ones.
        for value in 0..<0x300 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            cases.append(["k": "a\(Character(scalar))b", "K": String(Character(scalar))])
        }
        cases.append(["host": "服务器/1", "emoji": "🙂\u{2028}\u{7f}"])
        for tags in cases {
            let expected = String(decoding: try encoder.encode(tags), as: UTF8.self)
            #expect(MetricStore.canonicalJSON(tags) == expected, "\(tags)")
        }
    }

    // MARK: - The 1e308 case

    @Test("two points of 1e308 are refused at ingest naming each; at the limit, rollups answer avg, sum and count as raw points do", arguments: TestDatabase.enabled)
    func hugeValues(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let body = #"{"points":[{"name":"edm_huge_value","value":1e308,"timestamp":\#(Self.now - 30)},{"name":"edm_huge_value","value":1e308,"timestamp":\#(Self.now - 20)}]}"#
            try await app.testing().test(.POST, "/api/monitoring/performance-metrics", beforeRequest: { req in
                req.headers.contentType = .json
                req.body = ByteBuffer(string: body)
            }) { res in
                #expect(res.status == .badRequest)
                let fields = Self.errorFields(res)
                #expect(fields == ["points[0].value", "points[1].value"])
                #expect(res.body.string.contains("1e300"))
            }
            #expect(try await Self.counts(app) == [0, 0, 0])

            // At the limit: 1e300 + 1e300 = 2e300 in one minute bucket, split over two batches so
            // that the database adds the sums (the merge path), plus a third in the next minute.
            let points = [(-110.0, 1e300), (-100, 1e300), (-30, -1e300)].map {
                MetricPoint(name: "edm_huge_value", value: $0.1, timestamp: Date(timeIntervalSince1970: Self.now + $0.0))
            }
            try await app.metricStore.insert([points[0]], on: app.db)
            try await app.metricStore.insert([points[1], points[2]], on: app.db)
            for agg in [MetricAggregation.avg, .sum, .count] {
                let query = MetricQuery(name: "edm_huge_value", from: Date(timeIntervalSince1970: Self.now - 600),
                                        to: Date(timeIntervalSince1970: Self.now), step: 60, aggregation: agg)
                let rollup = try await app.metricStore.query(query, on: app.db)
                let raw = try await app.metricStore.query(query, on: app.db, resolution: .raw)
                #expect(rollup.resolution == .minute)
                #expect(rollup.series == raw.series, "\(agg)")
                #expect(rollup.series.count == 1, "\(agg): an answer, not series: []")
            }
            let sum = try await app.metricStore.query(MetricQuery(name: "edm_huge_value", from: Date(timeIntervalSince1970: Self.now - 600),
                                                                  to: Date(timeIntervalSince1970: Self.now), step: 60, aggregation: .sum), on: app.db)
            #expect(sum.series.first?.points.map(\.value) == [2e300, -1e300])
        }
    }

    /// The `field`s of an error answer's details, in order.
    static func errorFields(_ res: TestingHTTPResponse) -> [String] {
        struct Answer: Decodable {
            struct Inner: Decodable {
                struct Detail: Decodable { var field: String; var reason: String }
                var code: String
                var details: [Detail]
            }
            var error: Inner
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(res.body.readableBytesView)) else {
            Issue.record("not an error answer: \(res.body.string)")
            return []
        }
        return answer.error.details.map(\.field)
    }

    // MARK: - Range queries

    @Test("rollup range queries read the covering index only (SQLite query plan)")
    func coveringIndex() async throws {
        try await withApp(.sqlite) { app, _ in
            for table in MetricRollupTable.allCases {
                struct Plan: Decodable { var detail: String }
                let plan = try await app.sql.raw("""
                    EXPLAIN QUERY PLAN SELECT bucket_start, sample_count, value_sum, value_min, value_max, value_last, last_timestamp, tags_key
                    FROM \(ident: table.schema) WHERE metric_name = 'x' AND bucket_start >= 0 AND bucket_start < 100
                    """).all(decoding: Plan.self).map(\.detail).joined(separator: "; ")
                #expect(plan.contains("USING COVERING INDEX \(table.schema)_query_covering_idx"), "\(plan)")
            }
        }
    }

    // MARK: - Pushgateway

    struct PushAnswer: Decodable, Equatable { var accepted: Int; var skipped: Int }

    struct StoredPoint: Decodable, Equatable {
        var metric_name: String
        var metric_value: Double
        var metric_unit: String
        var tags_text: String
        var ts: Double
    }

    static func stored(_ app: Application) async throws -> [StoredPoint] {
        let d = SQLDialectKind(app.sql)
        let epoch: SQLQueryString = d == .postgres ? "EXTRACT(EPOCH FROM timestamp)::float8" : "timestamp"
        return try await app.sql.raw("""
            SELECT metric_name, metric_value, metric_unit, \(d.jsonText("tags")) AS tags_text, \(epoch) AS ts
            FROM system_performance_metrics ORDER BY id
            """).all(decoding: StoredPoint.self)
            .map { row in
                var row = row
                // PostgreSQL's jsonb text has spaces; compare canonical keys.
                row.tags_text = MetricStore.canonicalJSON(MetricStore.parseTags(row.tags_text))
                return row
            }
    }

    static func push(_ app: Application, _ method: HTTPMethod, _ path: String, _ body: String, contentType: String? = "text/plain; version=0.0.4",
                     _ check: (TestingHTTPResponse) throws -> Void) async throws {
        try await app.testing().test(method, path, beforeRequest: { req in
            if let contentType { req.headers.replaceOrAdd(name: .contentType, value: contentType) }
            req.body = ByteBuffer(string: body)
        }, afterResponse: { try check($0) })
    }

    @Test("a push stores counters, gauges, histograms and summaries with the path's labels as tags", arguments: TestDatabase.enabled)
    func pushTypes(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let body = """
                # HELP edm_push_jobs_total Jobs done.
                # TYPE edm_push_jobs_total counter
                edm_push_jobs_total{queue="a"} 42
                # TYPE edm_push_temperature_celsius gauge
                edm_push_temperature_celsius 21.5 1773050340000
                # TYPE edm_push_duration_seconds histogram
                edm_push_duration_seconds_bucket{le="0.5"} 3
                edm_push_duration_seconds_bucket{le="+Inf"} 5
                edm_push_duration_seconds_sum 4.25
                edm_push_duration_seconds_count 5
                # TYPE edm_push_size_bytes summary
                edm_push_size_bytes{quantile="0.5"} NaN
                edm_push_size_bytes_sum 0
                edm_push_size_bytes_count 0
                edm_push_untyped 7

                """
            // `region@base64/ZXUtd2VzdA` is region="eu-west"; the job and labels come from the path.
            try await Self.push(app, .PUT, "/metrics/job/nightly/instance/db1/region@base64/ZXUtd2VzdA", body) { res in
                #expect(res.status == .ok, "\(res.body.string)")
                #expect((try? res.content.decode(PushAnswer.self)) == PushAnswer(accepted: 9, skipped: 1))
            }
            let group = ["instance": "db1", "job": "nightly", "region": "eu-west"]
            func tags(_ extra: [String: String] = [:]) -> String { MetricStore.canonicalJSON(group.merging(extra) { $1 }) }
            let now = Self.now
            let rows = try await Self.stored(app)
            #expect(rows == [
                .init(metric_name: "edm_push_jobs_total", metric_value: 42, metric_unit: "count", tags_text: tags(["queue": "a"]), ts: now),
                .init(metric_name: "edm_push_temperature_celsius", metric_value: 21.5, metric_unit: "celsius", tags_text: tags(), ts: now - 60),
                .init(metric_name: "edm_push_duration_seconds_bucket", metric_value: 3, metric_unit: "none", tags_text: tags(["le": "0.5"]), ts: now),
                .init(metric_name: "edm_push_duration_seconds_bucket", metric_value: 5, metric_unit: "none", tags_text: tags(["le": "+Inf"]), ts: now),
                .init(metric_name: "edm_push_duration_seconds_sum", metric_value: 4.25, metric_unit: "none", tags_text: tags(), ts: now),
                .init(metric_name: "edm_push_duration_seconds_count", metric_value: 5, metric_unit: "count", tags_text: tags(), ts: now),
                .init(metric_name: "edm_push_size_bytes_sum", metric_value: 0, metric_unit: "none", tags_text: tags(), ts: now),
                .init(metric_name: "edm_push_size_bytes_count", metric_value: 0, metric_unit: "count", tags_text: tags(), ts: now),
                .init(metric_name: "edm_push_untyped", metric_value: 7, metric_unit: "none", tags_text: tags(), ts: now),
            ])
            // POST appends in the same way (history is kept); the points are queryable.
            try await Self.push(app, .POST, "/metrics/job/nightly", "edm_push_jobs_total{queue=\"a\"} 43\n") { res in
                #expect(res.status == .ok)
            }
            let query = MetricQuery(name: "edm_push_jobs_total", from: Date(timeIntervalSince1970: now - 600), to: Date(timeIntervalSince1970: now + 1),
                                    step: 60, aggregation: .last, groupBy: ["job"])
            #expect(try await app.metricStore.query(query, on: app.db).series.map(\.points) == [[MetricBucketValue(start: now, value: 43)]])
        }
    }

    @Test("a bad push is 400 naming each bad line and stores nothing; protobuf is 415; a bad path is 400", arguments: TestDatabase.enabled)
    func pushErrors(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let body = """
                edm_push_ok 1
                edm_push_bad{host="a" 2
                edm_push_words one
                # TYPE edm_push_h histogram
                edm_push_h_bucket 1
                edm_push_ok 3
                """
            try await Self.push(app, .PUT, "/metrics/job/j", body) { res in
                #expect(res.status == .badRequest)
                #expect(Self.errorFields(res) == ["line 2", "line 3", "line 5", "line 6"])
                #expect(res.body.string.contains("edm_push_h_bucket needs an le label"))
                #expect(res.body.string.contains("\\\"one\\\" is not a number"))
            }
            // Lines the store refuses: infinite, out of range, a label contradicting the path.
            let refused = "edm_push_a +Inf\nedm_push_b 1e308\nedm_push_c{job=\"other\"} 1\nedm_push_d{job=\"j\"} 1\n"
            try await Self.push(app, .POST, "/metrics/job/j", refused) { res in
                #expect(res.status == .badRequest)
                #expect(Self.errorFields(res) == ["line 1", "line 2", "line 3"])
            }
            try await Self.push(app, .PUT, "/metrics/job/j", "edm_push_ok 1\n", contentType: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited") { res in
                #expect(res.status == .unsupportedMediaType)
            }
            try await Self.push(app, .PUT, "/metrics/job/j/instance", "edm_push_ok 1\n") { res in
                #expect(res.status == .badRequest)
                #expect(Self.errorFields(res) == ["path"])
            }
            try await Self.push(app, .PUT, "/metrics/job/j/bad-name/x", "edm_push_ok 1\n") { res in
                #expect(res.status == .badRequest)
            }
            #expect(try await Self.counts(app) == [0, 0, 0])
            // Pushes need the operator role, as the JSON ingest does.
            #expect(RoutePolicy.access("PUT /metrics/job/:job/**", metricsRequireToken: false) == .role(.operator))
            #expect(RoutePolicy.access("POST /metrics/job/:job", metricsRequireToken: true) == .role(.operator))
            #expect(RoutePolicy.access("POST /api/monitoring/performance-metrics", metricsRequireToken: false) == .role(.operator))
        }
    }

    // MARK: - The dialect member

    @Test("insertColumns writes every column kind in one call and applies an upsert suffix", arguments: TestDatabase.enabled)
    func insertColumns(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let sql = app.sql
            let d = SQLDialectKind(sql)
            try await sql.create(table: "columnar_probe")
                .column("id", type: d.bigint, .primaryKey(autoIncrement: false))
                .column("label", type: d.text, .notNull)
                .column("amount", type: d.double, .notNull)
                .column("doc", type: d.json, .notNull)
                .column("at", type: d.timestamp, .notNull)
                .run()
            // More rows than one SQLite statement may bind (32,766 / 5 columns).
            let n = 7_000
            let at = Date(timeIntervalSince1970: Self.now)
            try await d.insertColumns(into: "columnar_probe", columns: [
                ("id", .integer(Array(0..<n))), ("label", .text((0..<n).map { "row \($0) \"q\"" })),
                ("amount", .double((0..<n).map { Double($0) / 4 })), ("doc", .json((0..<n).map { #"{"i":"\#($0)"}"# })),
                ("at", .date(Array(repeating: at, count: n))),
            ], on: sql)
            // An upsert: existing ids add to amount.
            try await d.insertColumns(into: "columnar_probe", alias: "p", columns: [
                ("id", .integer([1, n + 1])), ("label", .text(["x", "new"])), ("amount", .double([10, 5])),
                ("doc", .json(["{}", "{}"])), ("at", .date([at, at])),
            ], suffix: d.onConflictDoUpdate(["id"], set: [("amount", SQLBinaryExpression(SQLColumn("amount", table: "p"), .add, SQLDialectKind.excluded("amount")))]), on: sql)
            struct Row: Decodable, Equatable { var id: Int; var label: String; var amount: Double; var doc: String; var at: Date }
            let rows = try await sql.raw("SELECT id, label, amount, \(d.jsonText("doc")) AS doc, at FROM columnar_probe WHERE id IN (0, 1, 6999, 7001) ORDER BY id")
                .all(decoding: Row.self)
            #expect(rows.map(\.id) == [0, 1, 6_999, 7_001])
            #expect(rows.map(\.label) == ["row 0 \"q\"", "row 1 \"q\"", "row 6999 \"q\"", "new"])
            #expect(rows.map(\.amount) == [0, 10.25, 1_749.75, 5])
            #expect(rows.map { MetricStore.parseTags($0.doc) } == [["i": "0"], ["i": "1"], ["i": "6999"], [:]])
            #expect(rows.allSatisfy { $0.at == at })
            #expect(try await Self.count(app, "columnar_probe") == n + 1)
        }
    }
}
