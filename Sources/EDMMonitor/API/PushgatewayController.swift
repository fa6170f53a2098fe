import EDMMonitorCore
import Foundation
import Vapor

/// `PUT|POST /metrics/job/{job}{/label/value…}`: Pushgateway-compatible ingest
/// (https://github.com/prometheus/pushgateway, README "Command line" / "API"), so that any
/// Prometheus client library's push support feeds the ``MetricStore``.
///
/// - Body: the Prometheus text exposition format 0.0.4 (``PrometheusTextParser``), content type
///   `text/plain` (any parameters) or none. The protobuf format (the Go client's default) is
///   415: configure the client for the text format.
/// - Grouping key: `job` and each `/label/value` pair of the path become tags of every sample;
///   a label name ending in `@base64` takes a base64url value (RFC 4648 §5, padding optional, `=`
///   alone for the empty value), as the Pushgateway reads it (not for `job` itself). A sample
///   label equal to a grouping label must carry the same value (else 400), as the Pushgateway says.
/// - Samples keep their names: counters their `_total`, histograms their `_bucket` (tag `le`),
///   `_sum` and `_count`, summaries their quantile series (tag `quantile`), `_sum` and `_count`.
///   The unit is inferred from the name (``MetricPoint/inferredUnit(of:)``).
/// - Timestamps: a sample's own (Unix milliseconds) when it has one, else the push time.
/// - `NaN` samples (a summary without observations) are skipped and counted in `skipped`:
///   the store holds finite values only; ±Inf and values beyond ±1e300 are refused like any bad
///   point.
/// - PUT and POST store the same thing. In the Pushgateway, PUT replaces the whole group and
///   POST only the pushed metric names, because it keeps one current value per series. This
///   store keeps history, so neither deletes anything: both append the pushed samples as points
///   at their time, and "replace" means that the pushed value is the latest one.
/// - All or nothing, at most 10,000 samples and 8 MB; 400 `validation_failed` lists every bad
///   line as `line N` (nothing stored); 200 `{"accepted":n,"skipped":k}` otherwise.
/// Access: the operator role, as for `POST /api/monitoring/performance-metrics`.
struct PushgatewayController: RouteCollection {
    /// Largest body, as for the JSON ingest.
    static let maxBody: ByteCount = PerformanceMetricsController.maxIngestBody

    /// The clock of the push time.
    let clock: any WallClock
    /// Where samples are stored.
    let store: MetricStore

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("metrics", "job")
        for method in [HTTPMethod.PUT, .POST] {
            group.on(method, ":job", body: .collect(maxSize: Self.maxBody), use: push)
            group.on(method, ":job", "**", body: .collect(maxSize: Self.maxBody), use: push)
        }
    }

    /// The answer to an accepted push.
    struct PushAnswer: Content {
        /// Samples stored.
        var accepted: Int
        /// `NaN` samples skipped.
        var skipped: Int
    }

    @Sendable func push(_ req: Request) async throws -> PushAnswer {
        if let type = req.headers.contentType, !(type.type == "text" && type.subType == "plain") {
            throw APIError(.unsupportedMediaType, .unsupportedMediaType,
                           "send the Prometheus text format (Content-Type: text/plain; version=0.0.4); the protobuf format is not supported")
        }
        let grouping = try Self.groupingLabels(job: req.parameters.get("job") ?? "", rest: req.parameters.getCatchall())
        let buffer = req.body.data ?? ByteBuffer()
        guard let text = String(bytes: buffer.readableBytesView, encoding: .utf8) else {
            throw APIError.validation("the body is not UTF-8 text; nothing was stored", [.init(field: "body", reason: "must be UTF-8")])
        }
        let (points, skipped) = try Self.points(of: text, grouping: grouping, now: clock.now())
        do {
            try await store.insert(points.map(\.point), on: req.db)
        } catch let invalid as MetricStore.InvalidBatch {
            throw APIError.validation("the push is invalid; nothing was stored", invalid.problems.map {
                .init(field: $0.index < 0 ? "body" : "line \(points[$0.index].line)", reason: "\($0.problem.field): \($0.problem.reason)")
            })
        }
        return PushAnswer(accepted: points.count, skipped: skipped)
    }

    /// The tags of the grouping key: `job` and each `label/value` pair of `rest`.
    /// - Throws: ``APIError`` 400 (field `path`) for an odd number of segments, a bad label name,
    ///   a label given twice or bad base64.
    static func groupingLabels(job: String, rest: [String]) throws -> [String: String] {
        var labels = ["job": job]
        var details: [APIErrorDetail] = []
        if job.isEmpty { details.append(.init(field: "path", reason: "the job must not be empty")) }
        if rest.count % 2 != 0 {
            details.append(.init(field: "path", reason: "labels come in /name/value pairs; \(rest.last ?? "") has no value"))
        }
        for pair in stride(from: 0, to: rest.count - 1, by: 2) {
            var name = rest[pair]
            var value = rest[pair + 1]
            if name.hasSuffix("@base64") {
                name = String(name.dropLast("@base64".count))
                guard let decoded = Self.base64URLDecode(value) else {
                    details.append(.init(field: "path", reason: "the value of \(name)@base64 is not base64url (RFC 4648 §5)"))
                    continue
                }
                value = decoded
            }
            guard PrometheusName.isValidLabelName(name), !name.hasPrefix("__") else {
                details.append(.init(field: "path", reason: "\"\(name)\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"))
                continue
            }
            if labels.updateValue(value, forKey: name) != nil {
                details.append(.init(field: "path", reason: "label \(name) is given twice"))
            }
        }
        guard details.isEmpty else { throw APIError.validation("the grouping key in the path is invalid; nothing was stored", details) }
        return labels
    }

    /// base64url text (`-` and `_`, padding optional; `=` alone is the empty string) as UTF-8.
    static func base64URLDecode(_ text: String) -> String? {
        if text == "=" { return "" }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard = standard.trimmingCharacters(in: CharacterSet(charactersIn: "="))
        standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
        guard let data = Data(base64Encoded: standard) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// The points of a text body, each with its line, and how many NaN samples were skipped.
    /// - Throws: ``APIError`` 400 listing every bad line (`line N`): the parser's problems, a
    ///   sample label contradicting the grouping key, a point the store would refuse, or more
    ///   than ``MetricStore/maxBatchSize`` samples.
    static func points(of text: String, grouping: [String: String], now: Date) throws -> (points: [(point: MetricPoint, line: Int)], skipped: Int) {
        let samples: [PrometheusParsedSample]
        switch PrometheusTextParser.parse(text) {
        case .failure(let error):
            throw APIError.validation("\(error.problems.count) lines are invalid; nothing was stored",
                                      error.problems.map { .init(field: "line \($0.line)", reason: $0.reason) })
        case .success(let parsed):
            samples = parsed
        }
        var details: [APIErrorDetail] = []
        var points: [(point: MetricPoint, line: Int)] = []
        var skipped = 0
        points.reserveCapacity(samples.count)
        for sample in samples {
            if sample.value.isNaN {
                skipped += 1
                continue
            }
            var tags = sample.labels
            var conflict = false
            for (name, value) in grouping {
                if let own = tags[name], own != value {
                    details.append(.init(field: "line \(sample.line)", reason: "label \(name)=\"\(own)\" contradicts the grouping key's \(name)=\"\(value)\""))
                    conflict = true
                }
                tags[name] = value
            }
            if conflict { continue }
            let timestamp = sample.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) } ?? now
            let point = MetricPoint(name: sample.name, value: sample.value, tags: tags, timestamp: timestamp)
            let problems = MetricStore.validate(point, now: now)
            details += problems.map { .init(field: "line \(sample.line)", reason: "\($0.field): \($0.reason)") }
            if problems.isEmpty { points.append((point, sample.line)) }
        }
        if details.isEmpty, points.count > MetricStore.maxBatchSize {
            details.append(.init(field: "body", reason: "at most \(MetricStore.maxBatchSize) samples per push, got \(points.count)"))
        }
        guard details.isEmpty else {
            let lines = Set(details.map(\.field)).count
            throw APIError.validation("\(lines) lines are invalid; nothing was stored", details)
        }
        return (points, skipped)
    }
}
