@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor

/// The metric store on both databases: exact answers on a hand-computed fixture, rollups that
/// answer like raw points, and retention driven by a manual clock.
@Suite("Metric store")
struct MetricStoreTests {
    /// 2026-03-09T08:00:00Z, two hours before the ManualClock's default start (a whole hour).
    static let t0 = 1_773_043_200.0

    static func at(_ offset: Double) -> Date { Date(timeIntervalSince1970: t0 + offset) }

    /// Series A, B (region eu) and C (region us) of `edm_test_value`, and a counter with a reset.
    static let fixture: [MetricPoint] = {
        let a = ["host": "a", "region": "eu"], b = ["host": "b", "region": "eu"], c = ["host": "c", "region": "us"]
        var points: [MetricPoint] = []
        for (offset, value) in [(0.0, 1.0), (15, 3), (30, 5), (45, 7), (60, 2), (90, 4)] {
            points.append(MetricPoint(name: "edm_test_value", value: value, unit: "count", tags: a, timestamp: at(offset)))
        }
        points.append(MetricPoint(name: "edm_test_value", value: 10, unit: "count", tags: b, timestamp: at(10)))
        points.append(MetricPoint(name: "edm_test_value", value: 20, unit: "count", tags: b, timestamp: at(70)))
        points.append(MetricPoint(name: "edm_test_value", value: 100, unit: "count", tags: c, timestamp: at(20)))
        for (offset, value) in [(0.0, 10.0), (30, 40), (60, 70), (90, 5), (120, 35)] {
            points.append(MetricPoint(name: "edm_test_requests_total", value: value, tags: ["host": "a"], timestamp: at(offset)))
        }
        return points
    }()

    static func query(_ agg: MetricAggregation, name: String = "edm_test_value", from: Double = 0, to: Double = 120, step: Double = 60,
                      filters: [String: String] = [:], groupBy: [String] = []) -> MetricQuery {
        MetricQuery(name: name, from: at(from), to: at(to), step: step, aggregation: agg, tagFilters: filters, groupBy: groupBy)
    }

    /// `[tags as JSON: [(start offset, value)]]` for compact expectations.
    static func table(_ result: MetricQueryResult) -> [String: [[Double]]] {
        var out: [String: [[Double]]] = [:]
        for series in result.series {
            out[MetricStore.canonicalJSON(series.tags)] = series.points.map { [$0.start - t0, $0.value] }
        }
        return out
    }

    struct Expectation: Sendable, CustomTestStringConvertible {
        var agg: MetricAggregation
        var a: [[Double]]
        var testDescription: String { agg.rawValue }
    }

    // Series A: bucket 0 holds 1, 3, 5, 7; bucket 60 holds 2, 4.
    static let perSeriesA: [Expectation] = [
        .init(agg: .avg, a: [[0, 4], [60, 3]]),
        .init(agg: .min, a: [[0, 1], [60, 2]]),
        .init(agg: .max, a: [[0, 7], [60, 4]]),
        .init(agg: .sum, a: [[0, 16], [60, 6]]),
        .init(agg: .count, a: [[0, 4], [60, 2]]),
        .init(agg: .last, a: [[0, 7], [60, 4]]),
        // rank φ(n−1): p50 of [1,3,5,7] is 1.5 → 4; of [2,4] 0.5 → 3.
        .init(agg: .p50, a: [[0, 4], [60, 3]]),
        // p95: rank 2.85 → 5·0.15 + 7·0.85 = 6.7; rank 0.95 → 2·0.05 + 4·0.95 = 3.9.
        .init(agg: .p95, a: [[0, 6.7], [60, 3.9]]),
        // p99: rank 2.97 → 6.94; rank 0.99 → 3.98.
        .init(agg: .p99, a: [[0, 6.94], [60, 3.98]]),
    ]

    static func close(_ lhs: [[Double]]?, _ rhs: [[Double]]) -> Bool {
        guard let lhs, lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).allSatisfy { $0[0] == $1[0] && abs($0[1] - $1[1]) < 1e-9 }
    }

    // One database per kind for all aggregations (not one per case): creating PostgreSQL
    // databases is the costly part, and the suite shares two cores.
    @Test("every aggregation gives the hand-computed answer per series", arguments: TestDatabase.enabled)
    func perSeries(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.metricStore.insert(Self.fixture, on: app.db)
            for expected in Self.perSeriesA {
                let result = try await app.metricStore.query(Self.query(expected.agg), on: app.db)
                let table = Self.table(result)
                #expect(table.count == 3, "\(expected.agg)")
                #expect(Self.close(table[#"{"host":"a","region":"eu"}"#], expected.a), "\(expected.agg): \(table)")
                // C has one point, in bucket 0: every non-counter aggregation of one value 100 is 100 (count 1).
                #expect(Self.close(table[#"{"host":"c","region":"us"}"#], [[0, expected.agg == .count ? 1 : 100]]), "\(expected.agg): \(table)")
                #expect(result.resolution == (expected.agg.isAvailableFromRollup ? .minute : .raw))
            }
        }
    }

    @Test("rate and increase handle a counter reset and read the sample before the range", arguments: TestDatabase.enabled)
    func counterRate(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.metricStore.insert(Self.fixture, on: app.db)
            let name = "edm_test_requests_total"
            // Bucket 0: 10 → 40 over 30 s = 1/s. Bucket 60: from 40 (T+30) → 70 → reset to 5: 30 + 5 = 35
            // over 60 s. Bucket 120: 5 → 35 over 30 s = 1/s.
            let rate = try await app.metricStore.query(Self.query(.rate, name: name, to: 180), on: app.db)
            #expect(rate.resolution == .raw)
            #expect(Self.close(Self.table(rate)[#"{"host":"a"}"#], [[0, 1], [60, 35.0 / 60], [120, 1]]), "\(Self.table(rate))")
            let increase = try await app.metricStore.query(Self.query(.increase, name: name, to: 180), on: app.db)
            #expect(Self.close(Self.table(increase)[#"{"host":"a"}"#], [[0, 30], [60, 35], [120, 30]]))
            // Starting at T+60, the first bucket still sees the sample at T+30.
            let late = try await app.metricStore.query(Self.query(.rate, name: name, from: 60, to: 180), on: app.db)
            #expect(Self.close(Self.table(late)[#"{"host":"a"}"#], [[60, 35.0 / 60], [120, 1]]), "\(Self.table(late))")
        }
    }

    @Test("reference case C15 through the store: increase and rate across counter resets", arguments: TestDatabase.enabled)
    func referenceC15(_ db: TestDatabase) async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EDMMonitorCoreTests/Fixtures/C15-counter-samples.csv")
        var points: [MetricPoint] = []
        for line in try String(contentsOf: fixture, encoding: .utf8).split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 3, let t = Double(fields[1]), let v = Double(fields[2]) else { continue }
            points.append(MetricPoint(name: "edm_c15_total", value: v, tags: ["series": fields[0]], timestamp: Self.at(t)))
        }
        #expect(points.count == 19)
        try await withApp(db) { app, _ in
            try await app.metricStore.insert(points, on: app.db)
            // One 1-hour bucket holds every sample (t = 0…1800 s).
            let increase = try await app.metricStore.query(Self.query(.increase, name: "edm_c15_total", to: 3600, step: 3600), on: app.db)
            let rate = try await app.metricStore.query(Self.query(.rate, name: "edm_c15_total", to: 3600, step: 3600), on: app.db)
            // C has one sample: no value, so no series (not 0).
            let expectedIncrease: [String: [[Double]]] = [#"{"series":"A"}"#: [[0, 8]], #"{"series":"B"}"#: [[0, 7]], #"{"series":"D"}"#: [[0, 70]]]
            let expectedRate: [String: [[Double]]] = [#"{"series":"A"}"#: [[0, 8.0 / 360]], #"{"series":"B"}"#: [[0, 7.0 / 1800]], #"{"series":"D"}"#: [[0, 70.0 / 180]]]
            #expect(Self.table(increase) == expectedIncrease)
            #expect(Self.table(rate) == expectedRate)
        }
    }

    @Test("tag filters and group_by", arguments: TestDatabase.enabled)
    func filtersAndGroups(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.metricStore.insert(Self.fixture, on: app.db)
            let store = app.metricStore
            let b = try await store.query(Self.query(.avg, filters: ["host": "b"]), on: app.db)
            #expect(Self.table(b) == [#"{"host":"b","region":"eu"}"#: [[0, 10], [60, 20]]])
            let none = try await store.query(Self.query(.avg, filters: ["host": "b", "region": "us"]), on: app.db)
            #expect(none.series.isEmpty)
            // eu pools A and B: bucket 0 = 1,3,5,7,10; bucket 60 = 2,4,20.
            let pooled: [(MetricAggregation, [[Double]])] = [
                (.sum, [[0, 26], [60, 26]]), (.count, [[0, 5], [60, 3]]), (.avg, [[0, 5.2], [60, 26.0 / 3]]),
                (.max, [[0, 10], [60, 20]]), (.last, [[0, 7], [60, 4]]), (.p50, [[0, 5], [60, 4]]),
            ]
            for (agg, eu) in pooled {
                let grouped = try await store.query(Self.query(agg, groupBy: ["region"]), on: app.db)
                let table = Self.table(grouped)
                #expect(Set(table.keys) == [#"{"region":"eu"}"#, #"{"region":"us"}"#], "\(agg)")
                #expect(Self.close(table[#"{"region":"eu"}"#], eu), "\(agg): \(table)")
            }
            // Grouping by a key no series has puts everything in one series without tags.
            let all = try await store.query(Self.query(.count, groupBy: ["zone"]), on: app.db)
            #expect(Self.table(all) == ["{}": [[0, 6], [60, 3]]])
            // Rates are per series, then summed per group.
            let rates = try await store.query(Self.query(.rate, name: "edm_test_requests_total", to: 180, groupBy: ["host"]), on: app.db)
            #expect(Self.close(Self.table(rates)[#"{"host":"a"}"#], [[0, 1], [60, 35.0 / 60], [120, 1]]))
        }
    }

    @Test("a raw query reading more rows than the limit is refused; rollup queries are not limited")
    func rawRowLimit() async throws {
        try await withApp(.sqlite) { app, _ in
            var configuration = MetricStoreConfiguration()
            configuration.maxRawRowsPerQuery = 9
            let store = MetricStore(clock: app.edm.clock, configuration: configuration)
            try await store.insert(Self.fixture, on: app.db)
            // edm_test_value has exactly 9 points: at the limit is fine, one fewer allowed is not.
            #expect(try await store.query(Self.query(.p50), on: app.db).series.count == 3)
            configuration.maxRawRowsPerQuery = 8
            let tight = MetricStore(clock: app.edm.clock, configuration: configuration)
            await #expect(throws: MetricQueryError.tooManyRows(limit: 8)) { try await tight.query(Self.query(.p50), on: app.db) }
            let fromRollups = try await tight.query(Self.query(.avg), on: app.db)
            #expect(fromRollups.resolution == .minute && fromRollups.series.count == 3)
        }
    }

    @Test("buckets align to the epoch and empty buckets are omitted", arguments: TestDatabase.enabled)
    func alignment(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.metricStore.insert([
                MetricPoint(name: "edm_gap_value", value: 1, timestamp: Self.at(5)),
                MetricPoint(name: "edm_gap_value", value: 2, timestamp: Self.at(600 + 59.5)),
            ], on: app.db)
            // from T+17 widens to T+0; the buckets 60…540 have nothing and are left out.
            let result = try await app.metricStore.query(Self.query(.sum, name: "edm_gap_value", from: 17, to: 601), on: app.db)
            #expect(Self.table(result) == ["{}": [[0, 1], [600, 2]]])
            let raw = try await app.metricStore.query(Self.query(.sum, name: "edm_gap_value", from: 17, to: 601), on: app.db, resolution: .raw)
            #expect(Self.table(raw) == Self.table(result))
            // Bucket starts before `to` only: to = T+600 excludes the bucket starting at 600.
            let short = try await app.metricStore.query(Self.query(.sum, name: "edm_gap_value", from: 0, to: 600), on: app.db)
            #expect(Self.table(short) == ["{}": [[0, 1]]])
        }
    }

    /// Deterministic pseudo-random integers (a 64-bit LCG), so the rollup comparison is repeatable.
    struct LCG {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    @Test("a query served from rollups equals the same query over raw points", arguments: TestDatabase.enabled)
    func rollupsEqualRaw(_ db: TestDatabase) async throws {
        // The clock stands after the three hours of points (none may lie in the future).
        try await withApp(db, clock: ManualClock(start: Self.at(4 * 3600))) { app, _ in
            var random = LCG(state: 42)
            var points: [MetricPoint] = []
            // Three hours, 3 series, irregular times (some exactly on minute and hour boundaries),
            // integer values so that sums are exact whatever the order of additions.
            for host in ["a", "b", "c"] {
                var offset = 0.0
                while offset < 3 * 3600 {
                    points.append(MetricPoint(name: "edm_mix_value", value: Double(random.next(1000)) - 300,
                                              tags: ["host": host, "tier": host == "c" ? "2" : "1"], timestamp: Self.at(offset)))
                    offset += Double([1, 7, 15, 60, 45][random.next(5)])
                }
            }
            // Inserted in two batches out of order: rollup rows are merged across batches.
            let half = points.count / 2
            try await app.metricStore.insert(Array(points[half...]), on: app.db)
            try await app.metricStore.insert(Array(points[..<half]), on: app.db)
            var compared = 0
            for agg in MetricAggregation.allCases where agg.isAvailableFromRollup {
                for step in [60.0, 300, 3600, 7200] {
                    for (filters, groupBy) in [([String: String](), [String]()), (["tier": "1"], []), ([:], ["tier"])] {
                        let query = Self.query(agg, name: "edm_mix_value", from: 130, to: 3 * 3600 - 10, step: step, filters: filters, groupBy: groupBy)
                        let fromRollups = try await app.metricStore.query(query, on: app.db)
                        let fromRaw = try await app.metricStore.query(query, on: app.db, resolution: .raw)
                        #expect(fromRollups.resolution == (step.truncatingRemainder(dividingBy: 3600) == 0 ? .hour : .minute))
                        #expect(fromRaw.resolution == .raw)
                        #expect(fromRollups.series == fromRaw.series, "\(agg) step \(step) \(filters) \(groupBy)")
                        #expect(!fromRaw.series.isEmpty)
                        // The minute table answers hour steps the same way too.
                        if step >= 3600 {
                            let fromMinutes = try await app.metricStore.query(query, on: app.db, resolution: .minute)
                            #expect(fromMinutes.series == fromRaw.series, "\(agg) step \(step) from 1m")
                        }
                        compared += 1
                    }
                }
            }
            #expect(compared == 6 * 4 * 3)
        }
    }

    @Test("retention deletes old rows in batches; rollups outlive raw points", arguments: TestDatabase.enabled)
    func retention(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let store = MetricStore(clock: clock, configuration: MetricStoreConfiguration(cleanupBatchSize: 3))
            let now = clock.now().timeIntervalSince1970
            let day = 86_400.0
            // 7 points 8 days old (three minutes of one hour), 2 points 1 day old.
            var points: [MetricPoint] = []
            for i in 0..<7 {
                points.append(MetricPoint(name: "edm_old_value", value: Double(i), timestamp: Date(timeIntervalSince1970: now - 8 * day + Double(i) * 20)))
            }
            points.append(MetricPoint(name: "edm_old_value", value: 50, timestamp: Date(timeIntervalSince1970: now - day)))
            points.append(MetricPoint(name: "edm_old_value", value: 60, timestamp: Date(timeIntervalSince1970: now - day + 1)))
            try await store.insert(points, on: app.db)
            #expect(try await Self.count(app, "system_performance_metrics") == 9)
            #expect(try await Self.count(app, MetricRollupTable.minute.schema) == 4)
            #expect(try await Self.count(app, MetricRollupTable.hour.schema) == 2)

            let first = try await store.cleanup(on: app.db)
            #expect(first == .init(raw: 7, minute: 0, hour: 0))
            #expect(try await Self.count(app, "system_performance_metrics") == 2)
            // Nothing more to delete: a second run is a no-op.
            #expect(try await store.cleanup(on: app.db) == .init(raw: 0, minute: 0, hour: 0))

            // The 8-day-old hour is still answered, from rollups: sum 0+…+6 = 21.
            let oldHour = (now - 8 * day) / 3600
            let query = MetricQuery(name: "edm_old_value", from: Date(timeIntervalSince1970: oldHour.rounded(.down) * 3600),
                                    to: Date(timeIntervalSince1970: now), step: 3600, aggregation: .sum)
            let answer = try await store.query(query, on: app.db)
            #expect(answer.resolution == .hour)
            #expect(answer.series.first?.points.map(\.value) == [21, 110])

            // 31 days later: every raw point and the 1-minute rollups of 8 days ago are gone (39 days
            // old); those of 1 day ago (32 days) too; the hour rollups stay.
            clock.advance(by: 31 * day)
            let second = try await store.cleanup(on: app.db)
            #expect(second == .init(raw: 2, minute: 4, hour: 0))
            #expect(try await store.query(query, on: app.db).series.first?.points.map(\.value) == [21, 110])
            // 400 days after that nothing is left.
            clock.advance(by: 400 * day)
            #expect(try await store.cleanup(on: app.db) == .init(raw: 0, minute: 0, hour: 2))
            #expect(try await Self.count(app, MetricRollupTable.hour.schema) == 0)
        }
    }

    static func count(_ app: Application, _ table: String) async throws -> Int {
        struct Row: Decodable { var n: Int }
        return try await app.sql.raw("SELECT count(*) AS n FROM \(ident: table)").first(decoding: Row.self)?.n ?? -1
    }

    @Test("validation names each problem of a point", arguments: TestDatabase.enabled)
    func validation(_ db: TestDatabase) async throws {
        let now = Date(timeIntervalSince1970: Self.t0)
        func fields(_ point: MetricPoint) -> [String] { MetricStore.validate(point, now: now).map(\.field) }
        #expect(fields(MetricPoint(name: "edm_ok_seconds", value: 1, timestamp: now)) == [])
        #expect(fields(MetricPoint(name: "1bad", value: 1, timestamp: now)) == ["name"])
        #expect(fields(MetricPoint(name: String(repeating: "m", count: 101), value: 1, timestamp: now)) == ["name"])
        #expect(fields(MetricPoint(name: "edm_x", value: .infinity, timestamp: now)) == ["value"])
        #expect(fields(MetricPoint(name: "edm_x", value: .nan, timestamp: now)) == ["value"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, unit: "", timestamp: now)) == ["unit"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, tags: ["bad-key": "v"], timestamp: now)) == ["tags.bad-key"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, tags: ["__reserved": "v"], timestamp: now)) == ["tags.__reserved"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, tags: ["k": String(repeating: "v", count: 257)], timestamp: now)) == ["tags.k"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, tags: ["k": String(repeating: "v", count: 256)], timestamp: now)) == [])
        let tags = Dictionary(uniqueKeysWithValues: (0..<17).map { ("k\($0)", "v") })
        #expect(fields(MetricPoint(name: "edm_x", value: 1, tags: tags, timestamp: now)) == ["tags"])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, timestamp: now.addingTimeInterval(300))) == [])
        #expect(fields(MetricPoint(name: "edm_x", value: 1, timestamp: now.addingTimeInterval(301))) == ["timestamp"])
        #expect(MetricPoint(name: "edm_db_query_latency_seconds", value: 1, timestamp: now).unit == "seconds")
        #expect(MetricPoint(name: "edm_emails_sent_total", value: 1, timestamp: now).unit == "count")
        #expect(MetricPoint(name: "edm_mystery", value: 1, timestamp: now).unit == "none")

        // A batch with one bad point writes nothing.
        try await withApp(db) { app, _ in
            let good = MetricPoint(name: "edm_x", value: 1, timestamp: app.edm.clock.now())
            let bad = MetricPoint(name: "edm_x", value: .infinity, timestamp: app.edm.clock.now())
            await #expect(throws: MetricStore.InvalidBatch.self) { try await app.metricStore.insert([good, bad, good], on: app.db) }
            let raw = try await Self.count(app, "system_performance_metrics")
            let minute = try await Self.count(app, MetricRollupTable.minute.schema)
            #expect(raw == 0 && minute == 0)
        }
    }
}

/// The metric settings read from the environment.
@Suite("Metric settings")
struct MetricSettingsTests {
    @Test("defaults, overrides, and malformed values named")
    func load() throws {
        #expect(try MetricSettings.load(environment: [:]) == .defaults)
        #expect(MetricSettings.defaults.storeConfiguration.rawRetention == 7 * 86_400)
        let set = try MetricSettings.load(environment: ["EDM_METRICS_RAW_RETENTION_DAYS": "0.5", "EDM_METRICS_ROLLUP_1H_RETENTION_DAYS": "800", "EDM_SYSTEM_MONITOR_INTERVAL_SECONDS": "30"])
        #expect(set.rawRetentionDays == 0.5 && set.hourRollupRetentionDays == 800 && set.collectorIntervalSeconds == 30)
        #expect(set.storeConfiguration.rawRetention == 43_200)
        for (name, value) in [("EDM_METRICS_RAW_RETENTION_DAYS", "-1"), ("EDM_METRICS_ROLLUP_1M_RETENTION_DAYS", "x"),
                              ("EDM_METRICS_ROLLUP_1M_RETENTION_DAYS", "3"), ("EDM_METRICS_ROLLUP_1H_RETENTION_DAYS", "10"),
                              ("EDM_SYSTEM_MONITOR_INTERVAL_SECONDS", "inf")] {
            let error = #expect(throws: SettingsError.self) { try MetricSettings.load(environment: [name: value]) }
            #expect(error?.setting == name, "\(name)=\(value)")
        }
        // Settings.load carries them.
        #expect(try Settings.load(environment: ["EDM_METRICS_RAW_RETENTION_DAYS": "2"]).metrics.rawRetentionDays == 2)
    }
}
