import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit

/// A range query over one metric.
///
/// Buckets are `[k·step, (k+1)·step)` aligned to the Unix epoch; the answer holds every bucket
/// whose start lies in `[floor(from/step)·step, to)` and that has a value (empty buckets are
/// omitted). So `from` is widened down to its bucket start and a bucket that starts before `to`
/// is answered whole: a chart's edges never show half buckets, and every resolution answers the
/// same question.
public struct MetricQuery: Sendable, Equatable {
    /// The metric name (exact match).
    public var name: String
    /// Start of the range (widened down to a bucket start).
    public var from: Date
    /// End of the range, exclusive for bucket starts.
    public var to: Date
    /// Bucket width, seconds, > 0.
    public var step: Double
    /// What each bucket's value is.
    public var aggregation: MetricAggregation
    /// Only series whose tags include every `key: value` here.
    public var tagFilters: [String: String]
    /// Tag keys to group by: series with equal values of these keys are combined into one
    /// answer series whose tags are just these keys (a missing key is left out). Empty: every
    /// distinct tag set is its own series.
    ///
    /// Combining pools the samples (or rollups) of the group's series in each bucket, so `avg`,
    /// `min`, `max`, `sum`, `count`, `last` and quantiles are over all of them; `rate` and
    /// `increase` are computed per series and then summed (the group's total per-second rate).
    public var groupBy: [String]

    /// Memberwise; see each property.
    public init(name: String, from: Date, to: Date, step: Double, aggregation: MetricAggregation,
                tagFilters: [String: String] = [:], groupBy: [String] = []) {
        self.name = name
        self.from = from
        self.to = to
        self.step = step
        self.aggregation = aggregation
        self.tagFilters = tagFilters
        self.groupBy = groupBy
    }

    /// The first bucket start, `floor(from / step) · step`, Unix seconds.
    public var alignedFrom: Double { (from.timeIntervalSince1970 / step).rounded(.down) * step }
    /// The end of the last bucket, `ceil(to / step) · step`, Unix seconds.
    public var alignedTo: Double { (to.timeIntervalSince1970 / step).rounded(.up) * step }
    /// How many buckets the range spans (an upper bound on points per series).
    public var bucketCount: Double { max(0, (alignedTo - alignedFrom) / step) }
}

/// Where a query's answer came from.
public enum MetricResolution: String, Sendable, Codable, Equatable {
    /// Raw points of `system_performance_metrics`.
    case raw
    /// 1-minute rollups.
    case minute = "1m"
    /// 1-hour rollups.
    case hour = "1h"

    /// The rollup table, `nil` for raw.
    var table: MetricRollupTable? {
        switch self {
        case .raw: return nil
        case .minute: return .minute
        case .hour: return .hour
        }
    }
}

/// One answer series: its tags and its `(bucket start, value)` points in ascending time.
public struct MetricSeries: Sendable, Equatable {
    /// The series' tags (with `group_by`: only the grouped keys).
    public var tags: [String: String]
    /// Bucket values; bucket starts in Unix seconds.
    public var points: [MetricBucketValue]
}

/// A query's answer: series sorted by their tags (as sorted-key JSON), and the resolution used.
public struct MetricQueryResult: Sendable, Equatable {
    public var series: [MetricSeries]
    public var resolution: MetricResolution
}

/// Why a query cannot run.
public enum MetricQueryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `step` is not a finite number > 0.
    case invalidStep(Double)
    /// The range spans more buckets than ``MetricStore/maxBucketsPerQuery``.
    case tooManyBuckets(Double, limit: Int)
    /// `from` is after `to`.
    case emptyRange
    /// The query would read more raw rows than ``MetricStoreConfiguration/maxRawRowsPerQuery``.
    case tooManyRows(limit: Int)

    public var description: String {
        switch self {
        case .invalidStep(let step): return "step must be a finite number of seconds > 0, got \(step)"
        case let .tooManyBuckets(count, limit): return "the range spans \(Int(count)) steps; at most \(limit) are allowed (use a larger step)"
        case .emptyRange: return "from must not be after to"
        case .tooManyRows(let limit): return "the range holds more than \(limit) raw points; narrow it, filter by tags, or use an aggregation served from rollups (avg, min, max, sum, count, last)"
        }
    }
}

extension MetricStore {
    /// The most buckets one query may span (11,000: a week at one minute is 10,080).
    public static let maxBucketsPerQuery = 11_000

    /// The coarsest resolution that answers `query` exactly: a rollup table whose step divides
    /// the query's step when the aggregation is answerable from rollups
    /// (``MetricAggregation/isAvailableFromRollup``), else raw points.
    ///
    /// Raw points are kept for a shorter time than rollups (``MetricStoreConfiguration``), so
    /// quantiles and rates reach back only as far as the raw retention.
    public static func resolution(for query: MetricQuery) -> MetricResolution {
        guard query.aggregation.isAvailableFromRollup else { return .raw }
        if query.step.truncatingRemainder(dividingBy: MetricRollupTable.hour.step) == 0 { return .hour }
        if query.step.truncatingRemainder(dividingBy: MetricRollupTable.minute.step) == 0 { return .minute }
        return .raw
    }

    /// Answers `query` (see ``MetricQuery`` for the bucket rules) from the resolution chosen by
    /// ``resolution(for:)``, or from `resolution` when given (tests compare resolutions; a rollup
    /// resolution that cannot answer the aggregation or step falls back to the chosen one).
    /// Counter aggregations (`rate`, `increase`) read one extra step before the range so the
    /// first bucket has its preceding sample.
    /// - Throws: ``MetricQueryError`` (also when raw rows exceed
    ///   ``MetricStoreConfiguration/maxRawRowsPerQuery``); the database's error.
    public func query(_ query: MetricQuery, on database: any Database, resolution forced: MetricResolution? = nil) async throws -> MetricQueryResult {
        guard query.step.isFinite, query.step > 0 else { throw MetricQueryError.invalidStep(query.step) }
        guard query.from <= query.to else { throw MetricQueryError.emptyRange }
        guard query.bucketCount <= Double(Self.maxBucketsPerQuery) else {
            throw MetricQueryError.tooManyBuckets(query.bucketCount, limit: Self.maxBucketsPerQuery)
        }
        var resolution = Self.resolution(for: query)
        if let forced {
            let usable = forced.table.map { query.aggregation.isAvailableFromRollup && query.step.truncatingRemainder(dividingBy: $0.step) == 0 } ?? true
            if usable { resolution = forced }
        }
        let sql = database.sql
        let series: [MetricSeries]
        if let table = resolution.table {
            series = try await queryRollups(query, table: table, sql: sql)
        } else {
            series = try await queryRaw(query, sql: sql)
        }
        return MetricQueryResult(series: series, resolution: resolution)
    }

    // MARK: - Raw

    private struct RawRow: Decodable {
        var timestamp: Date
        var metric_value: Double
        var tags_text: String
    }

    private func queryRaw(_ query: MetricQuery, sql: any SQLDatabase) async throws -> [MetricSeries] {
        let dialect = SQLDialectKind(sql)
        let isCounter = query.aggregation == .rate || query.aggregation == .increase
        let fetchFrom = query.alignedFrom - (isCounter ? query.step : 0)
        let rows = try await sql.raw("""
            SELECT timestamp, metric_value, \(dialect.jsonText("tags")) AS tags_text
            FROM system_performance_metrics
            WHERE metric_name = \(bind: query.name)
              AND timestamp >= \(bind: Date(timeIntervalSince1970: fetchFrom))
              AND timestamp < \(bind: Date(timeIntervalSince1970: query.alignedTo))\(Self.tagFilterSQL(query.tagFilters, dialect))
            ORDER BY timestamp, id
            LIMIT \(literal: configuration.maxRawRowsPerQuery + 1)
            """).all(decoding: RawRow.self)
        guard rows.count <= configuration.maxRawRowsPerQuery else { throw MetricQueryError.tooManyRows(limit: configuration.maxRawRowsPerQuery) }

        // Series in first-seen order, samples in row order (timestamp, then insertion). The tags
        // JSON is parsed once per distinct text (once per series), not once per row.
        var seriesSamples: [String: (tags: [String: String], samples: [MetricSample])] = [:]
        var keyOfText: [String: String] = [:]
        for row in rows {
            let key: String
            if let known = keyOfText[row.tags_text] {
                key = known
            } else {
                let tags = Self.parseTags(row.tags_text)
                key = Self.canonicalJSON(tags)
                keyOfText[row.tags_text] = key
                if seriesSamples[key] == nil { seriesSamples[key] = (tags, []) }
            }
            seriesSamples[key]?.samples.append(MetricSample(timestamp: row.timestamp.timeIntervalSince1970, value: row.metric_value))
        }
        var groups: [String: (tags: [String: String], members: [[MetricSample]])] = [:]
        for key in seriesSamples.keys.sorted() {
            let (tags, samples) = seriesSamples[key]!
            let groupTags = Self.groupTags(tags, query.groupBy)
            groups[Self.canonicalJSON(groupTags), default: (groupTags, [])].members.append(samples)
        }

        var result: [MetricSeries] = []
        for key in groups.keys.sorted() {
            let (tags, members) = groups[key]!
            var values: [MetricBucketValue]
            if isCounter {
                var sums: [Double: Double] = [:]
                for samples in members {
                    for value in try MetricWindow.aggregateBuckets(query.aggregation, of: samples, step: query.step) {
                        sums[value.start, default: 0] += value.value
                    }
                }
                values = sums.map { MetricBucketValue(start: $0.key, value: $0.value) }.sorted { $0.start < $1.start }
            } else {
                // Equal timestamps across series: the series with the greater key counts as
                // later, the same order in which rollups are merged (see `queryRollups`).
                let pooled = members.count == 1 ? members[0] : members.flatMap { $0 }.enumerated()
                    .sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(\.element)
                values = try MetricWindow.aggregateBuckets(query.aggregation, of: pooled, step: query.step)
            }
            values = values.filter { $0.start >= query.alignedFrom && $0.start < query.alignedTo && $0.value.isFinite }
            if !values.isEmpty { result.append(MetricSeries(tags: tags, points: values)) }
        }
        return result
    }

    // MARK: - Rollups

    /// One rollup row as read: its series (an index into the query's distinct `tags_key`s).
    private struct RollupRow {
        var bucketStart: Double
        var series: Int
        var rollup: MetricRollup
    }

    /// Reads the rollup rows of `query` and merges them per answer series and bucket.
    ///
    /// The hot path of a chart: the statement reads only columns held by the covering index
    /// (`AddCoveringIndexToMetricRollups`), each row is decoded column by column (no `Codable`
    /// row decoder), series are identified by their `tags_key` text and its JSON is parsed once
    /// per series, not per row. Rows are merged in (bucket start, tags key) order — sorted here on
    /// (Double, Int) pairs, not by ORDER BY, so that text order does not depend on a collation.
    private func queryRollups(_ query: MetricQuery, table: MetricRollupTable, sql: any SQLDatabase) async throws -> [MetricSeries] {
        let dialect = SQLDialectKind(sql)
        let found = try await sql.raw("""
            SELECT bucket_start, sample_count, value_sum, value_min, value_max, value_last, last_timestamp, tags_key
            FROM \(ident: table.schema)
            WHERE metric_name = \(bind: query.name)
              AND bucket_start >= \(bind: Date(timeIntervalSince1970: query.alignedFrom))
              AND bucket_start < \(bind: Date(timeIntervalSince1970: query.alignedTo))\(Self.tagFilterSQL(query.tagFilters, dialect))
            """).all()
        var seriesNumbers = Numbering<String>()
        var rows: [RollupRow] = []
        rows.reserveCapacity(found.count)
        for row in found {
            let series = seriesNumbers.number(of: try row.decode(column: "tags_key", as: String.self))
            let rollup = MetricRollup(
                count: try row.decode(column: "sample_count", as: Int.self), sum: try row.decode(column: "value_sum", as: Double.self),
                min: try row.decode(column: "value_min", as: Double.self), max: try row.decode(column: "value_max", as: Double.self),
                last: try row.decode(column: "value_last", as: Double.self),
                lastTimestamp: try row.decode(column: "last_timestamp", as: Date.self).timeIntervalSince1970)
            rows.append(RollupRow(bucketStart: try row.decode(column: "bucket_start", as: Date.self).timeIntervalSince1970, series: series, rollup: rollup))
        }
        let seriesKeys = seriesNumbers.values
        // Rank of each series in tags-key order, then rows in (bucket start, tags key) order.
        var rank = [Int](repeating: 0, count: seriesKeys.count)
        for (position, series) in seriesKeys.indices.sorted(by: { seriesKeys[$0] < seriesKeys[$1] }).enumerated() { rank[series] = position }
        rows.sort { ($0.bucketStart, rank[$0.series]) < ($1.bucketStart, rank[$1.series]) }

        // Each series' group (tags parsed once per series), then group → bucket start → rollups
        // in chronological (row) order.
        var groupNumbers = Numbering<String>()
        var groupOfSeries: [Int] = []
        var groupTags: [[String: String]] = []
        for key in seriesKeys {
            let tags = Self.groupTags(Self.parseTags(key), query.groupBy)
            let group = groupNumbers.number(of: Self.canonicalJSON(tags))
            if group == groupTags.count { groupTags.append(tags) }
            groupOfSeries.append(group)
        }
        let groupKeys = groupNumbers.values
        var buckets = [[Double: MetricRollup]](repeating: [:], count: groupKeys.count)
        for row in rows {
            let start = (row.bucketStart / query.step).rounded(.down) * query.step
            let group = groupOfSeries[row.series]
            if let existing = buckets[group][start] {
                buckets[group][start] = existing.merged(with: row.rollup)
            } else {
                buckets[group][start] = row.rollup
            }
        }
        var result: [MetricSeries] = []
        for group in groupKeys.indices.sorted(by: { groupKeys[$0] < groupKeys[$1] }) {
            let points = buckets[group].keys.sorted().compactMap { start -> MetricBucketValue? in
                guard let value = buckets[group][start]?.value(of: query.aggregation), value.isFinite else { return nil }
                return MetricBucketValue(start: start, value: value)
            }
            if !points.isEmpty { result.append(MetricSeries(tags: groupTags[group], points: points)) }
        }
        return result
    }

    // MARK: - Shared

    /// `tags` reduced to the `groupBy` keys; `tags` itself when `groupBy` is empty.
    static func groupTags(_ tags: [String: String], _ groupBy: [String]) -> [String: String] {
        guard !groupBy.isEmpty else { return tags }
        return tags.filter { groupBy.contains($0.key) }
    }

    /// ` AND …` conditions requiring every filter tag (``SQLDialectKind/jsonContains(_:_:)``:
    /// `@>` on PostgreSQL, served by the GIN index; `json_extract` per tag on SQLite); empty
    /// without filters. Keys are validated label names, and both are bound, never interpolated.
    static func tagFilterSQL(_ filters: [String: String], _ dialect: SQLDialectKind) -> SQLQueryString {
        filters.isEmpty ? "" : " AND \(dialect.jsonContains("tags", filters))"
    }
}

/// One known metric, as `GET /api/monitoring/metric-names` lists it.
public struct MetricNameInfo: Sendable, Equatable {
    /// The metric name.
    public var name: String
    /// The unit of its latest point.
    public var unit: String
    /// Distinct tag sets seen within the 1-hour rollup retention (400 days by default).
    public var seriesCount: Int
    /// Value of the latest point of any of its series (the series with the greatest tags key on a tie).
    public var latestValue: Double
    /// When that point was observed.
    public var latestTimestamp: Date
}

extension MetricStore {
    private struct SeriesCountRow: Decodable {
        var metric_name: String
        var series_count: Int
    }

    private struct LatestRow: Decodable {
        var metric_name: String
        var metric_unit: String
        var value_last: Double
        var last_timestamp: Date
        var tags_key: String
    }

    /// Every metric in the store with its unit, series count and latest value, sorted by name.
    /// Read from the 1-hour rollups (every point is merged there on insert), which are far
    /// smaller than the raw table.
    /// - Throws: the database's error.
    public func metricNames(on database: any Database) async throws -> [MetricNameInfo] {
        let sql = database.sql
        let table = MetricRollupTable.hour.schema
        let counts = try await sql.raw("""
            SELECT metric_name, COUNT(DISTINCT tags_key) AS series_count FROM \(ident: table) GROUP BY metric_name
            """).all(decoding: SeriesCountRow.self)
        let latest = try await sql.raw("""
            SELECT r.metric_name, r.metric_unit, r.value_last, r.last_timestamp, r.tags_key
            FROM \(ident: table) r
            JOIN (SELECT metric_name, MAX(last_timestamp) AS ts FROM \(ident: table) GROUP BY metric_name) m
              ON r.metric_name = m.metric_name AND r.last_timestamp = m.ts
            """).all(decoding: LatestRow.self)
        var latestByName: [String: LatestRow] = [:]
        for row in latest where latestByName[row.metric_name].map({ $0.tags_key < row.tags_key }) ?? true {
            latestByName[row.metric_name] = row
        }
        return counts.compactMap { count in
            guard let row = latestByName[count.metric_name] else { return nil }
            return MetricNameInfo(name: count.metric_name, unit: row.metric_unit, seriesCount: count.series_count,
                                  latestValue: row.value_last, latestTimestamp: row.last_timestamp)
        }.sorted { $0.name < $1.name }
    }
}
