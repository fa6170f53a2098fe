import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import SQLKit

/// One point to store: a value of one series (name + tags) at one instant.
///
/// Limits (checked by ``MetricStore/validate(_:now:)``): `name` matches
/// `[a-zA-Z_:][a-zA-Z0-9_:]*` and has at most 100 characters; `value` is finite with magnitude
/// at most ``MetricStore/maxMagnitude`` (1e300); `unit` is 1–20
/// characters; at most 16 tags, keys `[a-zA-Z_][a-zA-Z0-9_]*` of 1–64 characters (Prometheus label
/// names, so every stored series can be exposed on `/metrics`), values at most 256 characters;
/// `timestamp` not more than 5 minutes after the store's clock.
public struct MetricPoint: Sendable, Hashable {
    /// Prometheus-style metric name with its unit, e.g. `edm_system_cpu_usage_percent`.
    public var name: String
    /// The observed value (finite).
    public var value: Double
    /// The unit, e.g. `percent`, `bytes`, `seconds`, `count`.
    public var unit: String
    /// Series labels.
    public var tags: [String: String]
    /// When the value was observed.
    public var timestamp: Date

    /// A point; `unit` defaults to ``MetricPoint/inferredUnit(of:)`` of `name`.
    public init(name: String, value: Double, unit: String? = nil, tags: [String: String] = [:], timestamp: Date) {
        self.name = name
        self.value = value
        self.unit = unit ?? Self.inferredUnit(of: name)
        self.tags = tags
        self.timestamp = timestamp
    }

    /// The unit implied by a Prometheus-style name's suffix: `…_seconds` → `seconds`, `…_bytes` →
    /// `bytes`, `…_percent` → `percent`, `…_ratio` → `ratio`, `…_celsius` → `celsius`,
    /// `…_total`/`…_count` → `count`; anything else `none` (the column is never empty).
    public static func inferredUnit(of name: String) -> String {
        let suffix = name.split(separator: "_").last.map(String.init) ?? ""
        switch suffix {
        case "seconds", "bytes", "percent", "ratio", "celsius", "hertz", "volts", "joules", "meters": return suffix
        case "total", "count": return "count"
        default: return "none"
        }
    }

    /// The series identity: the tags as JSON with sorted keys (`{}` for none). Equal tag sets give
    /// equal keys on every database, so rollup rows are unique per (name, key, bucket).
    public var seriesKey: String { MetricStore.canonicalJSON(tags) }
}

/// What a ``MetricStore`` keeps and for how long. Durations are seconds.
public struct MetricStoreConfiguration: Sendable, Equatable {
    /// Raw points older than this are deleted (default 7 days).
    public var rawRetention: TimeInterval
    /// 1-minute rollups older than this are deleted (default 30 days).
    public var minuteRollupRetention: TimeInterval
    /// 1-hour rollups older than this are deleted (default 400 days).
    public var hourRollupRetention: TimeInterval
    /// Rows deleted per statement by the cleanup job (default 5,000), so that no single delete
    /// holds the (SQLite: only) writer for long.
    public var cleanupBatchSize: Int
    /// How often `serve` runs the cleanup job (default 10 minutes).
    public var cleanupInterval: TimeInterval
    /// Most raw rows one query may read (default 1,000,000, roughly 50 MB in memory); a query
    /// that would read more is refused with ``MetricQueryError/tooManyRows(limit:)`` rather than
    /// exhausting memory.
    public var maxRawRowsPerQuery: Int = 1_000_000
    /// Resolved alert episodes (and their notification log) older than this are deleted
    /// (default 90 days, the seed's alert-history retention); open episodes are never deleted.
    public var alertHistoryRetention: TimeInterval = 90 * 86_400

    /// Defaults listed on each property.
    public init(rawRetention: TimeInterval = 7 * 86_400, minuteRollupRetention: TimeInterval = 30 * 86_400,
                hourRollupRetention: TimeInterval = 400 * 86_400, cleanupBatchSize: Int = 5_000, cleanupInterval: TimeInterval = 600) {
        self.rawRetention = rawRetention
        self.minuteRollupRetention = minuteRollupRetention
        self.hourRollupRetention = hourRollupRetention
        self.cleanupBatchSize = cleanupBatchSize
        self.cleanupInterval = cleanupInterval
    }
}

/// The time-series store over `system_performance_metrics` and its two rollup tables
/// (`system_performance_metric_rollups_1m`, `…_1h`, see ``MetricRollupTable``).
///
/// Writes (``insert(_:on:)``) store the raw points and, in the same transaction, merge them into
/// the 1-minute and 1-hour rollups (count, sum, min, max, last), so rollups are exact even for
/// points that arrive late. Reads (``query(_:on:)``) serve a step from the coarsest table that
/// can answer it. ``cleanup(on:)`` applies the retention of ``MetricStoreConfiguration``.
/// Stateless apart from its clock and configuration: the database is passed to each call.
public struct MetricStore: Sendable {
    /// The source of "now" for the future-timestamp check and retention.
    public let clock: any WallClock
    /// Retention and cleanup settings, shared by every copy of this store and changeable at
    /// run time (``MonitoringService`` sets the retentions; the next cleanup uses them).
    public var configuration: MetricStoreConfiguration {
        get { configurationBox.value.withLock { $0 } }
        nonmutating set { configurationBox.value.withLock { $0 = newValue } }
    }
    private let configurationBox: SharedConfiguration

    private final class SharedConfiguration: Sendable {
        let value: Mutex<MetricStoreConfiguration>
        init(_ configuration: MetricStoreConfiguration) { value = Mutex(configuration) }
    }

    /// Most points accepted in one ``insert(_:on:)`` (and one HTTP batch).
    public static let maxBatchSize = 10_000
    /// Most tags per point.
    public static let maxTags = 16
    /// Tag key length bounds, characters.
    public static let tagKeyLength = 1...64
    /// Longest tag value, characters.
    public static let maxTagValueLength = 256
    /// Unit length bounds, characters (the column's CHECK).
    public static let unitLength = 1...20
    /// The largest magnitude a value may have, 1e300. A rollup bucket keeps the sum of its values
    /// (``MetricRollup/sum``); with |value| ≤ 1e300 that sum cannot overflow to infinity before
    /// a single (series, bucket) holds 1.7 × 10⁸ points, so `avg` and `sum` from the rollups
    /// stay finite and equal to the raw path's. Larger values are refused at ingest with a 400
    /// naming the point (issue #15: two points of 1e308 made the 1-minute sum `Inf`).
    public static let maxMagnitude: Double = 1e300
    /// How far after the clock a timestamp may lie (clock skew between producers), seconds.
    public static let maxFutureSkew: TimeInterval = 300

    /// A store reading time from `clock`.
    public init(clock: any WallClock, configuration: MetricStoreConfiguration = .init()) {
        self.clock = clock
        self.configurationBox = SharedConfiguration(configuration)
    }

    // MARK: - Validation

    /// One problem with one point: `field` is `name`, `value`, `unit`, `tags`, `tags.KEY` or
    /// `timestamp`, `reason` says what is wrong.
    public struct Problem: Sendable, Hashable {
        public var field: String
        public var reason: String
    }

    /// Every problem of `point` (empty when it may be stored), judged against `now`.
    public static func validate(_ point: MetricPoint, now: Date) -> [Problem] {
        var problems: [Problem] = []
        do {
            try PrometheusName.validateIngestMetricName(point.name)
        } catch {
            problems.append(Problem(field: "name", reason: "\(error)"))
        }
        if !point.value.isFinite {
            problems.append(Problem(field: "value", reason: "must be a finite number"))
        } else if abs(point.value) > maxMagnitude {
            problems.append(Problem(field: "value", reason: "must be between -1e300 and 1e300: a larger magnitude would overflow the sum of a rollup bucket (two points of 1e308 sum to infinity), and rollups must answer what the raw points answer"))
        }
        if !unitLength.contains(point.unit.count) {
            problems.append(Problem(field: "unit", reason: "must be \(unitLength.lowerBound) to \(unitLength.upperBound) characters"))
        }
        if point.tags.count > maxTags {
            problems.append(Problem(field: "tags", reason: "at most \(maxTags) tags are allowed, got \(point.tags.count)"))
        }
        for (key, value) in point.tags.sorted(by: { $0.key < $1.key }) {
            if !tagKeyLength.contains(key.count) || !PrometheusName.isValidLabelName(key) {
                problems.append(Problem(field: "tags.\(key)", reason: "tag keys must match [a-zA-Z_][a-zA-Z0-9_]* and be 1 to 64 characters"))
            } else if key.hasPrefix("__") {
                problems.append(Problem(field: "tags.\(key)", reason: "tag keys starting with __ are reserved"))
            }
            if value.count > maxTagValueLength {
                problems.append(Problem(field: "tags.\(key)", reason: "tag values must be at most \(maxTagValueLength) characters"))
            }
        }
        let limit = now.addingTimeInterval(maxFutureSkew)
        if point.timestamp > limit {
            problems.append(Problem(field: "timestamp", reason: "is more than 5 minutes in the future (after \(APIJSON.format(limit)))"))
        }
        return problems
    }

    /// Why a batch was refused: each problem with the index of its point.
    public struct InvalidBatch: Error, Sendable, Equatable {
        /// `(index, problem)` in index order.
        public var problems: [(index: Int, problem: Problem)]

        public static func == (lhs: InvalidBatch, rhs: InvalidBatch) -> Bool {
            lhs.problems.map(\.index) == rhs.problems.map(\.index) && lhs.problems.map(\.problem) == rhs.problems.map(\.problem)
        }
    }

    // MARK: - Writing

    /// Stores `points` all or nothing: validates every point first, then, in one transaction,
    /// writes the raw rows and merges them into both rollup tables, each with
    /// ``SQLDialectKind/insertColumns(into:alias:columns:suffix:on:)`` (PostgreSQL: one `UNNEST`
    /// statement per table; SQLite: bound multi-row statements within its bind limit).
    ///
    /// Each point's tag set is canonicalised once (``canonicalJSON(_:)``) and each series is
    /// numbered once, so that the rollup rows — one per (series, bucket) per table, merged here in
    /// timestamp order — are keyed by integers, not by re-encoded tags.
    /// - Throws: ``InvalidBatch`` listing every problem (nothing written) — also when the batch
    ///   has more than ``maxBatchSize`` points (index -1); the database's error otherwise
    ///   (nothing written either: the transaction is rolled back).
    public func insert(_ points: [MetricPoint], on database: any Database) async throws {
        guard points.count <= Self.maxBatchSize else {
            throw InvalidBatch(problems: [(-1, Problem(field: "points", reason: "at most \(Self.maxBatchSize) points per batch, got \(points.count)"))])
        }
        let now = clock.now()
        var problems: [(index: Int, problem: Problem)] = []
        for (index, point) in points.enumerated() {
            problems += Self.validate(point, now: now).map { (index, $0) }
        }
        guard problems.isEmpty else { throw InvalidBatch(problems: problems) }
        guard !points.isEmpty else { return }
        let batch = RawBatch(points)
        let rollups = MetricRollupTable.allCases.map { ($0, batch.rollups(table: $0)) }
        try await database.transaction { tx in
            let sql = tx.sql
            let dialect = SQLDialectKind(sql)
            try await dialect.insertColumns(into: SystemPerformanceMetric.schema, columns: [
                ("metric_name", .text(batch.names)), ("metric_value", .double(batch.values)), ("metric_unit", .text(batch.units)),
                ("tags", .json(batch.seriesKeys)), ("timestamp", .date(batch.timestamps)),
                ("created_at", .date(Array(repeating: now, count: batch.names.count))),
            ], on: sql)
            for (table, rows) in rollups {
                try await table.upsert(rows, dialect: dialect, on: sql)
            }
        }
    }

    /// A validated batch as columns, timestamps rounded, tag sets canonicalised once per point
    /// and series numbered (`series[i]` indexes `seriesIdentity`).
    struct RawBatch {
        var names: [String] = []
        var values: [Double] = []
        var units: [String] = []
        /// ``MetricPoint/seriesKey`` of each point.
        var seriesKeys: [String] = []
        var timestamps: [Date] = []
        /// The series number of each point.
        var series: [Int] = []
        /// Per series number: its name and key.
        var seriesIdentity: [(name: String, key: String)] = []

        private struct SeriesIdentity: Hashable {
            var name: String
            var key: String
        }

        init(_ points: [MetricPoint]) {
            names.reserveCapacity(points.count)
            values.reserveCapacity(points.count)
            units.reserveCapacity(points.count)
            seriesKeys.reserveCapacity(points.count)
            timestamps.reserveCapacity(points.count)
            series.reserveCapacity(points.count)
            var numbers = Numbering<SeriesIdentity>()
            for point in points {
                let key = point.seriesKey
                let number = numbers.number(of: SeriesIdentity(name: point.name, key: key))
                if number == seriesIdentity.count { seriesIdentity.append((point.name, key)) }
                names.append(point.name)
                values.append(point.value)
                units.append(point.unit)
                seriesKeys.append(key)
                // Whole milliseconds: PostgreSQL keeps microseconds and SQLite a double, so an
                // instant a hair before a bucket boundary could otherwise land in different
                // buckets in the raw table (as read back) and in the rollups (computed here).
                timestamps.append(Date(timeIntervalSince1970: (point.timestamp.timeIntervalSince1970 * 1000).rounded() / 1000))
                series.append(number)
            }
        }

        private struct BucketKey: Hashable {
            var series: Int
            var bucketStart: Double
        }

        /// The rollup rows for `table`: one per (series, bucket), merged in timestamp order
        /// (points with equal timestamps in batch order), so one statement never touches a row
        /// twice; sorted by (name, series key, bucket).
        func rollups(table: MetricRollupTable) -> [MetricRollupRow] {
            let step = table.step
            // A stable order by time: the index breaks ties.
            let order = timestamps.indices.sorted { (timestamps[$0], $0) < (timestamps[$1], $1) }
            var rowIndex: [BucketKey: Int] = [:]
            var rows: [MetricRollupRow] = []
            for index in order {
                let seconds = timestamps[index].timeIntervalSince1970
                let start = (seconds / step).rounded(.down) * step
                let single = MetricRollup(sample: MetricSample(timestamp: seconds, value: values[index]))
                let key = BucketKey(series: series[index], bucketStart: start)
                if let existing = rowIndex[key] {
                    rows[existing].rollup = rows[existing].rollup.merged(with: single)
                    rows[existing].unit = units[index]
                } else {
                    rowIndex[key] = rows.count
                    let identity = seriesIdentity[series[index]]
                    rows.append(MetricRollupRow(key: .init(name: identity.name, seriesKey: identity.key, bucketStart: start), unit: units[index], rollup: single))
                }
            }
            return rows.sorted { ($0.key.name, $0.key.seriesKey, $0.key.bucketStart) < ($1.key.name, $1.key.seriesKey, $1.key.bucketStart) }
        }
    }

    /// The rollup rows of `points` for `table`: one per (name, series, bucket), merged in
    /// timestamp order, so one statement never touches a row twice.
    static func rollups(of points: [MetricPoint], table: MetricRollupTable) -> [MetricRollupRow] {
        RawBatch(points).rollups(table: table)
    }

    // MARK: - Helpers

    /// `tags` as JSON text with keys sorted by their Unicode scalars and no whitespace: the
    /// bytes `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes (earlier
    /// versions stored that; `tags_key` must not change), without its cost (~1 µs against
    /// ~7 µs a tag set, measured in a release build). Escapes `"`, `\\`, `\b`, `\f`, `\n`,
    /// `\r`, `\t` and other controls below U+0020 as `\u00XX` (lower-case hex); everything
    /// else, `/` and non-ASCII included, is written as it is (RFC 8259 §7).
    static func canonicalJSON(_ tags: [String: String]) -> String {
        guard !tags.isEmpty else { return "{}" }
        var out = "{"
        var first = true
        for key in tags.keys.sorted() {
            if !first { out += "," }
            first = false
            appendJSONString(key, to: &out)
            out += ":"
            appendJSONString(tags[key] ?? "", to: &out)
        }
        out += "}"
        return out
    }

    /// Appends `text` as a JSON string literal (``JSONStringEscaping``, `JSONEncoder`'s escapes).
    private static func appendJSONString(_ text: String, to out: inout String) {
        out += "\""
        JSONStringEscaping.append(text, to: &out)
        out += "\""
    }

    /// Parses a stored tags column (JSON text) back into a dictionary; non-string values are
    /// kept as their JSON text so that nothing is silently lost.
    static func parseTags(_ text: String) -> [String: String] {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) else { return [:] }
        return object.mapValues { value in
            if let string = value.stringValue { return string }
            return (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }
}

/// Numbers distinct values 0, 1, 2… in order of first appearance, so that a batch or a query
/// result keys its work by integers after one hash of each value.
struct Numbering<Value: Hashable> {
    /// The values in the order they were numbered (`values[n]` has number `n`).
    private(set) var values: [Value] = []
    private var numbers: [Value: Int] = [:]

    /// The number of `value`, given the next free one when it is new.
    mutating func number(of value: Value) -> Int {
        if let known = numbers[value] { return known }
        numbers[value] = values.count
        values.append(value)
        return values.count - 1
    }
}
