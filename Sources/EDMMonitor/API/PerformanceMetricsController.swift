import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// `/api/monitoring/performance-metrics` and `/api/monitoring/metric-names`: ingest and range
/// queries over the ``MetricStore``.
struct PerformanceMetricsController: RouteCollection {
    /// Largest ingest body: 10,000 points with a few tags each fit with room to spare.
    static let maxIngestBody: ByteCount = "8mb"

    /// The clock of default timestamps and query ranges.
    let clock: any WallClock
    /// Where the points are stored and queried.
    let store: MetricStore
    /// The latest collector cycle (`system-health`).
    let systemMonitor: SystemMonitorService

    func boot(routes: any RoutesBuilder) throws {
        let monitoring = routes.grouped("api", "monitoring")
        monitoring.on(.POST, "performance-metrics", body: .collect(maxSize: Self.maxIngestBody), use: ingest)
        monitoring.get("performance-metrics", use: query)
        monitoring.get("metric-names", use: names)
        monitoring.get("system-health", use: systemHealth)
    }

    // MARK: - Ingest

    /// `{"points":[{"name","value","unit"?,"tags"?,"timestamp"?}, …]}`.
    struct IngestBody: Decodable {
        var points: [IngestPoint]
    }

    /// One point as sent. Decoding never fails on a field: each wrong field becomes a problem,
    /// so that one answer lists every problem of every point. Typed decoding (not a free JSON
    /// tree) keeps a 10,000-point batch cheap: well-formed points throw nothing while decoding.
    struct IngestPoint: Decodable {
        var name: String?
        var value: Double?
        var unit: String?
        var tags: [String: String] = [:]
        var seconds: Double?
        var timeText: String?
        /// Problems with the shape, `field` relative to the point (`""` for the point itself).
        var problems: [MetricStore.Problem] = []

        enum Key: String, CodingKey { case name, value, unit, tags, timestamp }

        init(from decoder: any Decoder) throws {
            guard let c = try? decoder.container(keyedBy: Key.self) else {
                problems.append(.init(field: "", reason: "must be an object {name, value, unit?, tags?, timestamp?}"))
                return
            }
            func present(_ key: Key) -> Bool { c.contains(key) && !((try? c.decodeNil(forKey: key)) ?? false) }
            if present(.name), let text = try? c.decode(String.self, forKey: .name) { name = text } else {
                problems.append(.init(field: "name", reason: "is required and must be a string"))
            }
            if present(.value), let number = try? c.decode(Double.self, forKey: .value) { value = number } else {
                problems.append(.init(field: "value", reason: "is required and must be a number"))
            }
            if present(.unit) {
                if let text = try? c.decode(String.self, forKey: .unit) { unit = text } else { problems.append(.init(field: "unit", reason: "must be a string")) }
            }
            if present(.tags) {
                if let strings = try? c.decode([String: String].self, forKey: .tags) {
                    tags = strings
                } else if let object = try? c.decode([String: JSONValue].self, forKey: .tags) {
                    for (key, entry) in object.sorted(by: { $0.key < $1.key }) {
                        if let text = entry.stringValue { tags[key] = text } else { problems.append(.init(field: "tags.\(key)", reason: "must be a string")) }
                    }
                } else {
                    problems.append(.init(field: "tags", reason: "must be an object of strings"))
                }
            }
            if present(.timestamp) {
                if let number = try? c.decode(Double.self, forKey: .timestamp) { seconds = number }
                else if let text = try? c.decode(String.self, forKey: .timestamp) { timeText = text }
                else { problems.append(.init(field: "timestamp", reason: "expected ISO 8601 or Unix seconds")) }
            }
        }
    }

    /// The answer to an accepted batch.
    struct IngestAnswer: Content {
        /// Points stored.
        var accepted: Int
    }

    /// `POST /api/monitoring/performance-metrics`: stores a batch of up to 10,000 points, all or
    /// nothing. 201 `{"accepted":n}`; 400 `validation_failed` listing every problem as
    /// `points[i].field` (nothing is stored); 413 above 8 MB.
    @Sendable func ingest(_ req: Request) async throws -> Response {
        let body = try req.jsonBody(IngestBody.self)
        guard body.points.count <= MetricStore.maxBatchSize else {
            throw APIError.validation("too many points", [.init(field: "points", reason: "at most \(MetricStore.maxBatchSize) points per request, got \(body.points.count)")])
        }
        let now = clock.now()
        var details: [APIErrorDetail] = []
        var points: [MetricPoint] = []
        points.reserveCapacity(body.points.count)
        for (index, raw) in body.points.enumerated() {
            let prefix = "points[\(index)]"
            switch Self.parsePoint(raw, now: now) {
            case .failure(let shape):
                details += shape.problems.map { .init(field: $0.field.isEmpty ? prefix : "\(prefix).\($0.field)", reason: $0.reason) }
            case .success(let point):
                let problems = MetricStore.validate(point, now: now)
                details += problems.map { .init(field: "\(prefix).\($0.field)", reason: $0.reason) }
                if problems.isEmpty { points.append(point) }
            }
        }
        guard details.isEmpty else {
            let bad = Set(details.map { $0.field.split(separator: "]").first ?? "" }).count
            throw APIError.validation("\(bad) of \(body.points.count) points are invalid; nothing was stored", details)
        }
        do {
            try await store.insert(points, on: req.db)
        } catch let invalid as MetricStore.InvalidBatch {
            // Judged again by the store (its clock may have moved on): still a 400, never a 500.
            throw APIError.validation("the batch is invalid; nothing was stored", invalid.problems.map {
                .init(field: $0.index < 0 ? $0.problem.field : "points[\($0.index)].\($0.problem.field)", reason: $0.problem.reason)
            })
        }
        return try await IngestAnswer(accepted: points.count).encodeResponse(status: .created, for: req)
    }

    /// Problems with a point's JSON shape: `field` relative to the point.
    struct ShapeProblems: Error {
        var problems: [MetricStore.Problem]
    }

    /// The point `raw` describes, its timestamp defaulting to `now` (Unix seconds or ISO 8601
    /// with any offset), or its shape problems (plus the name's, when the name is a string).
    static func parsePoint(_ raw: IngestPoint, now: Date) -> Result<MetricPoint, ShapeProblems> {
        var problems = raw.problems
        var timestamp = now
        if let seconds = raw.seconds {
            if let date = APIJSON.date(unixSeconds: seconds) { timestamp = date } else {
                problems.append(.init(field: "timestamp", reason: "Unix seconds out of range (0 to 1e11)"))
            }
        } else if let text = raw.timeText {
            if let date = APIJSON.parse(text) { timestamp = date } else {
                problems.append(.init(field: "timestamp", reason: "expected ISO 8601 (e.g. 2026-03-09T10:00:00Z) or Unix seconds"))
            }
        }
        guard problems.isEmpty, let name = raw.name, let value = raw.value else {
            // Still judge the name, so one answer lists every problem of the point.
            if let name = raw.name {
                do { try PrometheusName.validateIngestMetricName(name) } catch { problems.insert(.init(field: "name", reason: "\(error)"), at: 0) }
            }
            return .failure(ShapeProblems(problems: problems))
        }
        return .success(MetricPoint(name: name, value: value, unit: raw.unit, tags: raw.tags, timestamp: timestamp))
    }

    // MARK: - Query

    /// One series of a query answer: `points` are `[unix_seconds, value]` pairs.
    struct SeriesDTO: Content {
        var tags: [String: String]
        var points: [[Double]]
    }

    /// `{"series":[…],"resolution":"raw|1m|1h","step":s,"agg":"avg"}`.
    struct QueryAnswer: Content {
        var series: [SeriesDTO]
        var resolution: String
        var step: Double
        var agg: String
    }

    /// `GET /api/monitoring/performance-metrics?name&from&to&step&agg&tag.KEY=VALUE&group_by=KEY`.
    ///
    /// `name` is required; `to` defaults to now and `from` to one hour before `to` (ISO 8601 or
    /// Unix seconds); `step` is whole seconds (`60`) or with a unit (`30s`, `5m`, `1h`, `1d`),
    /// default 60; `agg` one of avg, min, max, sum, count, last, p50, p95, p99, rate, increase
    /// (default avg); `tag.KEY=VALUE` filters (repeatable); `group_by` keys (comma-separated or
    /// repeated). 400 `validation_failed` names each bad parameter; unknown parameters are refused.
    @Sendable func query(_ req: Request) async throws -> QueryAnswer {
        let query = try Self.parseQuery(req.url.query ?? "", now: clock.now())
        do {
            let result = try await store.query(query, on: req.db)
            return QueryAnswer(
                series: result.series.map { SeriesDTO(tags: $0.tags, points: $0.points.map { [$0.start, $0.value] }) },
                resolution: result.resolution.rawValue, step: query.step, agg: query.aggregation.rawValue
            )
        } catch let error as MetricQueryError {
            let field: String
            switch error {
            case .tooManyRows: field = "from"
            case .emptyRange: field = "from"
            case .invalidStep, .tooManyBuckets: field = "step"
            }
            throw APIError.validation("the query is invalid", [.init(field: field, reason: error.description)])
        }
    }

    /// Parses and validates the query string of a range query (percent-encoded; `+` is a space).
    /// - Throws: ``APIError`` 400 listing every bad parameter.
    static func parseQuery(_ rawQuery: String, now: Date) throws -> MetricQuery {
        var items: [(String, String)] = []
        for part in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            items.append((decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : ""))
        }
        var details: [APIErrorDetail] = []
        var single: [String: String] = [:]
        var filters: [String: String] = [:]
        var groupBy: [String] = []
        for (key, value) in items {
            if key.hasPrefix("tag.") {
                let tag = String(key.dropFirst(4))
                if !PrometheusName.isValidLabelName(tag) || !MetricStore.tagKeyLength.contains(tag.count) {
                    details.append(.init(field: key, reason: "tag keys must match [a-zA-Z_][a-zA-Z0-9_]* and be 1 to 64 characters"))
                } else if let existing = filters[tag], existing != value {
                    details.append(.init(field: key, reason: "given twice with different values"))
                } else {
                    filters[tag] = value
                }
            } else if key == "group_by" {
                for tag in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !tag.isEmpty {
                    if PrometheusName.isValidLabelName(tag) && MetricStore.tagKeyLength.contains(tag.count) {
                        if !groupBy.contains(tag) { groupBy.append(tag) }
                    } else {
                        details.append(.init(field: "group_by", reason: "\"\(tag)\" is not a tag key ([a-zA-Z_][a-zA-Z0-9_]*, 1 to 64 characters)"))
                    }
                }
            } else if ["name", "from", "to", "step", "agg"].contains(key) {
                if single[key] != nil { details.append(.init(field: key, reason: "given more than once")) }
                single[key] = value
            } else {
                details.append(.init(field: key, reason: "unknown parameter; accepted: name, from, to, step, agg, tag.KEY, group_by"))
            }
        }

        let name = single["name"] ?? ""
        if single["name"] == nil {
            details.append(.init(field: "name", reason: "is required"))
        } else {
            do { try PrometheusName.validateIngestMetricName(name) } catch { details.append(.init(field: "name", reason: "\(error)")) }
        }
        var to = now
        if let raw = single["to"] {
            if let date = APIJSON.parse(raw) { to = date } else { details.append(.init(field: "to", reason: "expected ISO 8601 or Unix seconds")) }
        }
        var from = to.addingTimeInterval(-3600)
        if let raw = single["from"] {
            if let date = APIJSON.parse(raw) { from = date } else { details.append(.init(field: "from", reason: "expected ISO 8601 or Unix seconds")) }
        }
        if from > to { details.append(.init(field: "from", reason: "must not be after to")) }
        var step = 60.0
        if let raw = single["step"] {
            if let seconds = parseStep(raw) { step = seconds } else {
                details.append(.init(field: "step", reason: "expected whole seconds from 1 to 31536000, optionally with a unit: 60, 30s, 5m, 1h, 1d"))
            }
        }
        var aggregation = MetricAggregation.avg
        if let raw = single["agg"] {
            if let parsed = MetricAggregation(rawValue: raw) { aggregation = parsed } else {
                details.append(.init(field: "agg", reason: "expected one of \(MetricAggregation.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        let query = MetricQuery(name: name, from: from, to: to, step: step, aggregation: aggregation, tagFilters: filters, groupBy: groupBy)
        if details.isEmpty, query.bucketCount > Double(MetricStore.maxBucketsPerQuery) {
            details.append(.init(field: "step", reason: MetricQueryError.tooManyBuckets(query.bucketCount, limit: MetricStore.maxBucketsPerQuery).description))
        }
        guard details.isEmpty else { throw APIError.validation("the query is invalid", details) }
        return query
    }

    /// `60`, `60s`, `5m`, `1h`, `1d` → seconds; whole seconds from 1 to 365 days, else `nil`.
    static func parseStep(_ raw: String) -> Double? {
        let text = raw.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var multiplier = 1.0
        var digits = Substring(text)
        if let (suffix, factor) = units.first(where: { text.hasSuffix($0.0) }) {
            multiplier = factor
            digits = digits.dropLast(suffix.count)
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let number = Double(digits) else { return nil }
        let seconds = number * multiplier
        guard seconds >= 1, seconds <= 31_536_000 else { return nil }
        return seconds
    }

    // MARK: - Names

    /// `{"metrics":[{"name","unit","series_count","latest_value","latest_timestamp"}]}`.
    struct NamesAnswer: Content {
        struct Entry: Content {
            var name: String
            var unit: String
            var series_count: Int
            var latest_value: Double
            var latest_timestamp: Date
        }
        var metrics: [Entry]
    }

    /// `GET /api/monitoring/metric-names`: every metric the store knows, sorted by name.
    @Sendable func names(_ req: Request) async throws -> NamesAnswer {
        let names = try await store.metricNames(on: req.db)
        return NamesAnswer(metrics: names.map {
            .init(name: $0.name, unit: $0.unit, series_count: $0.seriesCount, latest_value: $0.latestValue, latest_timestamp: $0.latestTimestamp)
        })
    }
}

extension PerformanceMetricsController {
    /// One point of the system-health snapshot.
    struct SnapshotPoint: Content {
        var name: String
        var value: Double
        var unit: String
        var tags: [String: String]
    }

    /// `{"collected_at","host":[…],"process":[…],"database":[…],"failures":{collector: error}}`.
    struct SystemHealthAnswer: Content {
        var collected_at: Date
        var host: [SnapshotPoint]
        var process: [SnapshotPoint]
        var database: [SnapshotPoint]
        var failures: [String: String]
    }

    /// `GET /api/monitoring/system-health`: the latest system monitor cycle's host, process and
    /// database figures in one call; 503 `unavailable` before the first cycle has run.
    @Sendable func systemHealth(_ req: Request) async throws -> SystemHealthAnswer {
        guard let snapshot = systemMonitor.latestSnapshot else {
            throw APIError(.serviceUnavailable, .unavailable, "no system monitor cycle has run yet; try again in a few seconds")
        }
        func points(_ collector: String) -> [SnapshotPoint] {
            (snapshot.points[collector] ?? []).map { SnapshotPoint(name: $0.name, value: $0.value, unit: $0.unit, tags: $0.tags) }
        }
        return SystemHealthAnswer(collected_at: snapshot.collectedAt, host: points("host"), process: points("process"),
                                  database: points("database"), failures: snapshot.failures)
    }
}
