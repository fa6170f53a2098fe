import EDMMonitorCore
import FluentKit
import Foundation
import Synchronization
import SQLKit

/// One point to store: a value of one series (name + tags) at one instant.
///
/// Limits (checked by ``MetricStore/validate(_:now:)``): `name` matches
/// `[a-zA-Z_:][a-zA-Z0-9_:]*` and has at most 100 characters; `value` is finite; `unit` is 1–20
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
    /// How far after the clock a timestamp may lie (clock skew between producers), seconds.
    public static let maxFutureSkew: TimeInterval = 300
    /// Raw rows per INSERT statement: 1,000 × 6 binds stays far below both databases' limits.
    static let rowsPerStatement = 1_000

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

    /// Stores `points` all or nothing: validates every point first, then inserts them with
    /// multi-row INSERTs and merges them into both rollup tables, in one transaction.
    /// - Throws: ``InvalidBatch`` listing every problem (nothing written) — also when the batch
    ///   has more than ``maxBatchSize`` points (index -1); the database's error otherwise.
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
        // Whole milliseconds: PostgreSQL keeps microseconds and SQLite a double, so an instant a
        // hair before a bucket boundary could otherwise land in different buckets in the raw
        // table (as read back) and in the rollups (computed here).
        let points = points.map { point in
            var point = point
            point.timestamp = Date(timeIntervalSince1970: (point.timestamp.timeIntervalSince1970 * 1000).rounded() / 1000)
            return point
        }

        let rollups = MetricRollupTable.allCases.map { ($0, Self.rollups(of: points, table: $0)) }
        try await database.transaction { tx in
            let sql = tx.sql
            let dialect = SQLDialectKind(sql)
            try await dialect.bulkInsert(
                into: SystemPerformanceMetric.schema,
                columns: ["metric_name", "metric_value", "metric_unit", "tags", "timestamp", "created_at"],
                rows: points.map { point in
                    [SQLBind(point.name), SQLBind(point.value), SQLBind(point.unit), dialect.jsonBind(point.seriesKey), SQLBind(point.timestamp), SQLBind(now)]
                },
                rowsPerStatement: Self.rowsPerStatement, on: sql
            )
            for (table, rows) in rollups {
                try await table.upsert(rows, dialect: dialect, on: sql)
            }
        }
    }

    /// The rollup rows of `points` for `table`: one per (name, series, bucket), merged in
    /// timestamp order, so one statement never touches a row twice.
    static func rollups(of points: [MetricPoint], table: MetricRollupTable) -> [MetricRollupRow] {
        var rows: [MetricRollupRow.Key: MetricRollupRow] = [:]
        let step = table.step
        for point in points.sorted(by: { $0.timestamp < $1.timestamp }) {
            let seconds = point.timestamp.timeIntervalSince1970
            let start = (seconds / step).rounded(.down) * step
            let key = MetricRollupRow.Key(name: point.name, seriesKey: point.seriesKey, bucketStart: start)
            let single = MetricRollup(sample: MetricSample(timestamp: seconds, value: point.value))
            if let existing = rows[key] {
                rows[key]?.rollup = existing.rollup.merged(with: single)
                rows[key]?.unit = point.unit
            } else {
                rows[key] = MetricRollupRow(key: key, unit: point.unit, rollup: single)
            }
        }
        return rows.values.sorted { ($0.key.name, $0.key.seriesKey, $0.key.bucketStart) < ($1.key.name, $1.key.seriesKey, $1.key.bucketStart) }
    }

    // MARK: - Helpers

    /// `tags` as JSON text with sorted keys and no whitespace.
    static func canonicalJSON(_ tags: [String: String]) -> String {
        guard !tags.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a [String: String] cannot fail.
        return (try? encoder.encode(tags)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
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
