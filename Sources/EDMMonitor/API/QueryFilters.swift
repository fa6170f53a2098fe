import EDMMonitorCore
import Foundation
import Vapor

// Query strings decode into typed structs (`try req.query.decode(TaskListQuery.self)`), so a
// handler receives values, never raw strings. Each struct validates in its `init(from:)` and
// throws ``APIError`` 400 `validation_failed` naming every bad parameter, with the same
// messages and reasons the hand-written parsing had. Unknown parameters are ignored (except in
// the performance-metrics range query, which has its own parser for `tag.KEY`).

/// The string-keyed view of a query string that the structs below read from.
struct QueryReader {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private let container: KeyedDecodingContainer<Key>
    /// Problems found so far, in the order the parameters were read.
    var details: [APIErrorDetail] = []

    init(_ decoder: any Decoder) throws {
        container = try decoder.container(keyedBy: Key.self)
    }

    /// The parameter as text; `nil` when absent or not a single value (as `req.query[String.self, at:]`).
    func string(_ name: String) -> String? {
        (try? container.decodeIfPresent(String.self, forKey: Key(stringValue: name))) ?? nil
    }

    /// A UUID parameter; a malformed one is recorded as "must be a UUID".
    mutating func uuid(_ name: String) -> UUID? {
        guard let raw = string(name) else { return nil }
        guard let id = UUID(uuidString: raw) else {
            details.append(.init(field: name, reason: "must be a UUID"))
            return nil
        }
        return id
    }

    /// One of a string enum's values; anything else is recorded as "must be one of …".
    mutating func oneOf<Value: RawRepresentable & CaseIterable>(_ name: String, _ type: Value.Type) -> Value? where Value.RawValue == String {
        guard let raw = string(name) else { return nil }
        guard let value = Value(rawValue: raw) else {
            details.append(.init(field: name, reason: "must be one of " + Value.allCases.map(\.rawValue).joined(separator: ", ")))
            return nil
        }
        return value
    }

    /// Throws the problems recorded so far as one 400 with `message`.
    func check(_ message: String) throws {
        if !details.isEmpty { throw APIError.validation(message, details) }
    }
}

/// `from` and `to` (ISO 8601 or Unix seconds), both optional, `from` not after `to`.
struct TimeRangeQuery: Decodable, Equatable {
    var from: Date?
    var to: Date?

    init(from decoder: any Decoder) throws {
        let query = try QueryReader(decoder)
        func time(_ name: String) throws -> Date? {
            guard let raw = query.string(name) else { return nil }
            guard let date = APIJSON.parse(raw) else {
                throw APIError.validation("invalid time", [.init(field: name, reason: "must be ISO 8601 (e.g. 2026-03-09T10:00:00Z) or Unix seconds")])
            }
            return date
        }
        from = try time("from")
        to = try time("to")
        if let from, let to, from > to { throw APIError.validation("invalid range", [.init(field: "from", reason: "must not be after to")]) }
    }
}

/// Filters of `GET /api/tasks`: `status`, `user_id`.
struct TaskListQuery: Decodable, Equatable {
    var status: TaskRecord.Status?
    var userID: UUID?

    init(from decoder: any Decoder) throws {
        var query = try QueryReader(decoder)
        status = query.oneOf("status", TaskRecord.Status.self)
        userID = query.uuid("user_id")
        try query.check("invalid filters")
    }
}

/// Filters of `GET /api/monitoring/task-metrics`: the time range, then `task_id`, `user_id`,
/// `metric_type`.
struct TaskMetricsQuery: Decodable, Equatable {
    var range: TimeRangeQuery
    var taskID: UUID?
    var userID: UUID?
    var metricType: TaskProcessingMetric.MetricType?

    init(from decoder: any Decoder) throws {
        range = try TimeRangeQuery(from: decoder)
        var query = try QueryReader(decoder)
        taskID = query.uuid("task_id")
        userID = query.uuid("user_id")
        metricType = query.oneOf("metric_type", TaskProcessingMetric.MetricType.self)
        try query.check("invalid filters")
    }
}

/// Filters of `GET /api/monitoring/alerts`: the time range (of `triggered_at`), then `status`
/// (`firing` is Alertmanager's word for `active`), `severity`, `rule_id`.
struct AlertListQuery: Decodable, Equatable {
    var range: TimeRangeQuery
    var status: AlertHistory.Status?
    var severity: AlertRule.Severity?
    var ruleID: UUID?

    init(from decoder: any Decoder) throws {
        range = try TimeRangeQuery(from: decoder)
        var query = try QueryReader(decoder)
        if let raw = query.string("status") {
            status = raw == "firing" ? .active : AlertHistory.Status(rawValue: raw)
            if status == nil {
                query.details.append(.init(field: "status", reason: "must be one of " + AlertHistory.Status.allCases.map(\.rawValue).joined(separator: ", ") + " (firing = active)"))
            }
        }
        severity = query.oneOf("severity", AlertRule.Severity.self)
        ruleID = query.uuid("rule_id")
        try query.check("invalid filters")
    }
}

/// Filter of `GET /api/tokens`: `state`.
struct TokenListQuery: Decodable, Equatable {
    /// A token's state at a moment.
    enum State: String, CaseIterable {
        case active, expired, revoked
    }

    var state: State?

    init(from decoder: any Decoder) throws {
        var query = try QueryReader(decoder)
        state = query.oneOf("state", State.self)
        try query.check("invalid filter")
    }
}

/// Filter of `GET /api/monitoring/config/changes`: `key`, one of the configuration's keys.
struct ConfigChangesQuery: Decodable, Equatable {
    var key: String?

    init(from decoder: any Decoder) throws {
        let query = try QueryReader(decoder)
        key = query.string("key")
        if let key, !MonitoringConfig.fields.contains(where: { $0.key == key }) {
            throw APIError.validation("invalid filter", [.init(field: "key", reason: "must be one of \(MonitoringConfig.fields.map(\.key).joined(separator: ", "))")])
        }
    }
}

/// The query string of `POST /api/tasks` with `Content-Type: text/csv` (the body is the CSV):
/// `user_id`, `name`, `subject`, `text_body` required; `html_body`, `scheduled_at`, `skip_invalid`.
struct TaskCSVQuery: Decodable {
    var userID: UUID
    var name: String
    var subject: String
    var textBody: String
    var htmlBody: String?
    var scheduledAt: Date?
    var skipInvalid: Bool

    init(from decoder: any Decoder) throws {
        var query = try QueryReader(decoder)
        func required(_ name: String) -> String {
            guard let value = query.string(name) else {
                query.details.append(.init(field: name, reason: "is required (query parameter)"))
                return ""
            }
            return value
        }
        let userRaw = required("user_id")
        let userID = UUID(uuidString: userRaw)
        if userID == nil && !userRaw.isEmpty { query.details.append(.init(field: "user_id", reason: "must be a UUID")) }
        name = required("name")
        subject = required("subject")
        textBody = required("text_body")
        htmlBody = query.string("html_body")
        if let raw = query.string("scheduled_at") {
            scheduledAt = APIJSON.parse(raw)
            if scheduledAt == nil { query.details.append(.init(field: "scheduled_at", reason: "must be ISO 8601 or Unix seconds")) }
        }
        let skipRaw = query.string("skip_invalid") ?? "false"
        guard let skip = ["true": true, "1": true, "false": false, "0": false][skipRaw.lowercased()] else {
            throw APIError.validation("invalid query", query.details + [.init(field: "skip_invalid", reason: "must be true or false")])
        }
        skipInvalid = skip
        guard query.details.isEmpty, let userID else { throw APIError.validation("the task is invalid", query.details) }
        self.userID = userID
    }
}
