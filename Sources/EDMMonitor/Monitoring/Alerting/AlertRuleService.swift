import EDMMonitorCore
import FluentKit
import Foundation
import Mustache
import Vapor
import SQLKit

/// Errors of alert rules and alerts, answered by the API as their ``apiError``.
enum AlertRuleServiceError: DomainError, Equatable {
    /// 400: every problem of a rule body at once (unknown fields, bad values, cross-field rules).
    case invalid([APIErrorDetail])
    /// 404: no rule with this id.
    case ruleNotFound(UUID)
    /// 409: another rule has this name.
    case nameTaken(String)
    /// 404: no alert (episode) with this id.
    case alertNotFound(UUID)
    /// 409: only an active alert can be acknowledged; this one has the given status.
    case notAcknowledgeable(AlertHistory.Status)
    /// 409: the alert is already resolved (or expired).
    case notResolvable(AlertHistory.Status)

    var status: HTTPResponseStatus { apiError.status }
    var code: APIErrorCode { apiError.code }
    var message: String { apiError.message }
    var details: [APIErrorDetail] { apiError.details }

    /// The answer of each case (status, code, message, details).
    var apiError: APIError {
        switch self {
        case .invalid(let details): .validation("the alert rule is invalid", details)
        case .ruleNotFound(let id): .notFound("no alert rule with id \(id)")
        case .nameTaken(let name): APIError(.conflict, .conflict, "an alert rule named \(name) already exists", details: [.init(field: "name", reason: "already taken")])
        case .alertNotFound(let id): .notFound("no alert with id \(id)")
        case .notAcknowledgeable(let status): APIError(.conflict, .conflict, "only an active alert can be acknowledged; this one is \(status.rawValue)")
        case .notResolvable(let status): APIError(.conflict, .conflict, "the alert is already \(status.rawValue)")
        }
    }
}

/// How a rule body is applied (RFC 9110 §9.3.3–9.3.4, RFC 5789): `POST` creates a rule and
/// `PUT` replaces one — both need every required field and give every optional field left
/// out its default (`null` for the nullable ones) — while `PATCH` changes only the fields it
/// names. A `null` clears a nullable field (``AlertRuleBody/nullable``) and is refused for
/// any other.
enum AlertRuleWrite: Sendable, Equatable {
    case create, replace, patch
}

/// The fields of an alert rule body (snake_case, as stored) and what each accepts.
enum AlertRuleBody {
    /// The field names a body may contain (every other one is refused).
    static let fields = [
        "name", "description", "metric_name", "condition_type", "threshold_value", "comparison_operator", "time_window_minutes",
        "severity", "notification_channels", "is_active", "tag_matchers", "aggregation", "for_minutes", "resolve_threshold",
        "keep_firing_minutes", "repeat_interval_minutes", "no_data", "labels", "summary_template", "description_template",
    ]
    /// Needed on `POST` and `PUT`.
    static let required: Set<String> = ["name", "metric_name", "condition_type", "time_window_minutes", "severity"]
    /// May be `null` (clears the value); `null` for any other field is refused.
    static let nullable: Set<String> = [
        "description", "threshold_value", "comparison_operator", "resolve_threshold", "repeat_interval_minutes",
        "summary_template", "description_template",
    ]
    /// `time_window_minutes`: whole minutes, at most 7 days.
    static let windowMinutes = 1...10_080
}

/// Reads the fields of one rule body by their JSON type, collecting a problem for each field
/// that is missing, `null` where not allowed, or of the wrong type, so that one answer lists
/// every bad field.
private struct AlertRuleBodyReader {
    let body: [String: JSONValue]
    let write: AlertRuleWrite
    var details: [APIErrorDetail] = []

    /// What the body says about one field.
    enum Entry<T> {
        /// Not in the body.
        case absent
        /// In the body but refused (a problem was recorded).
        case refused
        /// `null` for a nullable field: clear it.
        case null
        case value(T)

        var value: T? { if case .value(let value) = self { value } else { nil } }

        /// What to store in a field with a default: the value, or `fallback` when absent and
        /// `defaults` (create, replace); `nil`: leave the field as it is.
        func orDefault(_ defaults: Bool, _ fallback: T) -> T? {
            switch self {
            case .value(let value): value
            case .absent: defaults ? fallback : nil
            case .null, .refused: nil
            }
        }

        /// What to store in a nullable field: the value, `.some(nil)` to clear it (`null`, or
        /// absent when `defaults`); `nil`: leave the field as it is.
        func orNull(_ defaults: Bool) -> T?? {
            switch self {
            case .value(let value): .some(value)
            case .null: .some(nil)
            case .absent: defaults ? .some(nil) : nil
            case .refused: nil
            }
        }
    }

    /// Field `name` converted by `convert`; `expected` names the type for the problem text.
    mutating func read<T>(_ name: String, _ expected: String, _ convert: (JSONValue) -> T?) -> Entry<T> {
        guard let raw = body[name] else {
            if write != .patch && AlertRuleBody.required.contains(name) { details.append(.init(field: name, reason: "is required")) }
            return .absent
        }
        if raw == .null {
            if AlertRuleBody.nullable.contains(name) { return .null }
            details.append(.init(field: name, reason: AlertRuleBody.required.contains(name) ? "is required and must not be null" : "must not be null; leave it out to keep (PATCH) or default (POST, PUT) it"))
            return .refused
        }
        guard let value = convert(raw) else {
            details.append(.init(field: name, reason: "must be \(expected)"))
            return .refused
        }
        return .value(value)
    }

    mutating func string(_ name: String) -> Entry<String> { read(name, "a string") { $0.stringValue } }
    mutating func number(_ name: String) -> Entry<Double> { read(name, "a number") { $0.doubleValue } }
    mutating func bool(_ name: String) -> Entry<Bool> { read(name, "true or false") { if case .bool(let b) = $0 { b } else { nil } } }
    mutating func array(_ name: String, of expected: String) -> Entry<[JSONValue]> { read(name, "an array of \(expected)") { if case .array(let a) = $0 { a } else { nil } } }
    mutating func object(_ name: String, of expected: String) -> Entry<[String: JSONValue]> { read(name, "an object of \(expected)") { if case .object(let o) = $0 { o } else { nil } } }
}

/// A note about a rule that was saved all the same (`warnings` of the POST, PUT and PATCH
/// answers): `code` is stable, `field` the body field it is about.
struct AlertRuleWarning: Codable, Sendable, Equatable {
    var code: String
    var field: String
    var message: String
}

/// What "test now" found for one series of a rule: its value and what an evaluation now would do.
struct AlertRuleTestSeries: Codable, Sendable {
    var tags: [String: String]
    var value: Double?
    /// Whether the condition holds for this series now (ignoring `for`).
    var condition_holds: Bool
    /// The instance's state before (`inactive`, `pending`, `firing`…).
    var state_now: String
    /// `fire`, `remind`, `resolve` (comma-separated), or `become <state>`.
    var would: String
}

/// Alert rules and alerts as the API, the CLI and tests change them: validation (every problem
/// at once, unknown fields refused), create/update/delete, "test now" through the evaluator's
/// own series and observation code, and acknowledging and resolving episodes.
struct AlertRuleService: Sendable {
    let database: any Database
    let clock: any WallClock
    let outbound: OutboundPolicy
    /// The `externalURL` of notifications queued by a manual resolve.
    let externalURL: String

    // MARK: - Validation

    /// Validates `body` (a JSON object) and applies it to `rule` as `write` says.
    /// - Throws: ``AlertRuleServiceError/invalid(_:)`` listing every unknown field, missing or
    ///   `null` required field, wrongly typed field (nested ones by path, e.g.
    ///   `tag_matchers[1].key`), bad value and cross-field problem; `rule` is then partly
    ///   changed and must not be saved.
    static func apply(_ body: [String: JSONValue], to rule: AlertRule, write: AlertRuleWrite, outbound: OutboundPolicy) throws {
        let details = problems(applying: body, to: rule, write: write, outbound: outbound)
        guard details.isEmpty else { throw AlertRuleServiceError.invalid(details) }
    }

    /// Applies `body` to `rule` and returns every problem (empty: the rule is valid).
    static func problems(applying body: [String: JSONValue], to rule: AlertRule, write: AlertRuleWrite, outbound: OutboundPolicy) -> [APIErrorDetail] {
        var reader = AlertRuleBodyReader(body: body, write: write)
        for key in body.keys.sorted() where !AlertRuleBody.fields.contains(key) {
            reader.details.append(.init(field: key, reason: "is not an alert rule field; known: \(AlertRuleBody.fields.joined(separator: ", "))"))
        }
        /// Whether fields left out take their default (create and replace) or keep their value.
        let defaults = write != .patch
        func problem(_ field: String, _ reason: String) { reader.details.append(.init(field: field, reason: reason)) }

        if let name = reader.string("name").value {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.count > 200 { problem("name", "must be 1 to 200 characters") }
            rule.name = trimmed
        }
        if let text = reader.string("description").orNull(defaults) { rule.ruleDescription = text.flatMap { $0.isEmpty ? nil : $0 } }
        if let metric = reader.string("metric_name").value {
            if !PrometheusName.isValidMetricName(metric) || metric.count > 100 { problem("metric_name", "must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 100 characters)") }
            rule.metricName = metric
        }
        if let raw = reader.string("condition_type").value {
            if let type = AlertRule.ConditionType(rawValue: raw) { rule.conditionType = type } else { problem("condition_type", "must be one of threshold, rate, absence") }
        }
        if let raw = reader.string("comparison_operator").orNull(defaults) {
            rule.comparisonOperator = raw.flatMap { try? AlertComparisonOperator(parsing: $0) }
            if raw != nil && rule.comparisonOperator == nil { problem("comparison_operator", "must be one of > < >= <= = !=") }
        }
        if let threshold = reader.number("threshold_value").orNull(defaults) { rule.thresholdValue = threshold }
        let window = AlertRuleBody.windowMinutes
        let windowReason = "must be a whole number of minutes from \(window.lowerBound) to \(window.upperBound) (7 days)"
        if let minutes = reader.read("time_window_minutes", "a whole number of minutes", { $0.doubleValue }).value {
            // A JSON number is a double (RFC 8259 §6): 5.5 and 1e308 are numbers, not minutes.
            if minutes.rounded() == minutes, minutes >= Double(window.lowerBound), minutes <= Double(window.upperBound) {
                rule.timeWindowMinutes = Int(minutes)
            } else { problem("time_window_minutes", windowReason) }
        }
        if let raw = reader.string("severity").value {
            if let severity = AlertRule.Severity(rawValue: raw) { rule.severity = severity } else { problem("severity", "must be one of info, warning, critical") }
        }
        if let channels = reader.array("notification_channels", of: "channels")
            .orDefault(defaults, [.object(["type": .string("log")])]) {
            for (i, value) in channels.enumerated() {
                let shape = AlertChannel.shapeProblems(value)
                for found in shape { problem("notification_channels[\(i)]" + (found.field.isEmpty ? "" : ".\(found.field)"), found.reason) }
                guard shape.isEmpty, let channel = AlertChannel(value) else { continue }
                for found in channel.problems(outbound: outbound) { problem("notification_channels[\(i)].\(found.field)", found.reason) }
            }
            rule.notificationChannels = channels
        }
        if let active = reader.bool("is_active").orDefault(defaults, true) { rule.isActive = active }
        if let matchers = reader.array("tag_matchers", of: "{key, op, value}").orDefault(defaults, []) {
            var parsed: [TagMatcher] = []
            for (i, item) in matchers.enumerated() {
                guard case .object(let m) = item else { problem("tag_matchers[\(i)]", "must be an object {key, op, value}"); continue }
                let key = m["key"]?.stringValue, value = m["value"]?.stringValue
                let opText = m["op"].map { $0 == .null ? "=" : $0.stringValue } ?? "="
                if key.map({ $0.isEmpty || !PrometheusName.isValidLabelName($0) }) ?? true { problem("tag_matchers[\(i)].key", "must be a label name") }
                let op = opText.flatMap(TagMatcher.Op.init(rawValue:))
                if op == nil { problem("tag_matchers[\(i)].op", "must be = or !=") }
                if value == nil { problem("tag_matchers[\(i)].value", "must be a string") }
                for extra in m.keys.sorted() where !["key", "op", "value"].contains(extra) { problem("tag_matchers[\(i)].\(extra)", "is not a tag matcher field; known: key, op, value") }
                if let key, let op, let value { parsed.append(TagMatcher(key: key, op: op, value: value)) }
            }
            rule.tagMatchers = parsed
        }
        if let aggregation = reader.string("aggregation").orDefault(defaults, "last") {
            if !["last", "avg", "min", "max", "sum", "count", "p95"].contains(aggregation) { problem("aggregation", "must be one of last, avg, min, max, sum, count, p95") }
            rule.aggregation = aggregation
        }
        // Setters, not key paths: writing a Fluent field through a key path reads it first,
        // which traps while the field is unset (a new rule).
        let minutes: [(String, (Double) -> Void)] = [("for_minutes", { rule.forMinutes = $0 }), ("keep_firing_minutes", { rule.keepFiringMinutes = $0 })]
        for (field, set) in minutes {
            if let value = reader.number(field).orDefault(defaults, 0) {
                if value < 0 { problem(field, "must be ≥ 0") }
                set(value)
            }
        }
        if let minutes = reader.number("repeat_interval_minutes").orNull(defaults) {
            if let minutes, minutes <= 0 { problem("repeat_interval_minutes", "must be > 0") }
            rule.repeatIntervalMinutes = minutes
        }
        if let resolve = reader.number("resolve_threshold").orNull(defaults) { rule.resolveThreshold = resolve }
        if let noData = reader.string("no_data").orDefault(defaults, "ok") {
            if AlertNoDataPolicy(rawValue: noData) == nil { problem("no_data", "must be one of ok, alerting, keep_last") }
            rule.noData = noData
        }
        if let labels = reader.object("labels", of: "label names to strings").orDefault(defaults, [:]) {
            var parsed: [String: String] = [:]
            for key in labels.keys.sorted() {
                if !PrometheusName.isValidLabelName(key) { problem("labels.\(key)", "must be a label name") }
                if let text = labels[key]?.stringValue { parsed[key] = text } else { problem("labels.\(key)", "must be a string") }
            }
            rule.labels = parsed
        }
        let templates: [(String, (String?) -> Void)] = [("summary_template", { rule.summaryTemplate = $0 }), ("description_template", { rule.descriptionTemplate = $0 })]
        for (field, set) in templates {
            guard let template = reader.string(field).orNull(defaults) else { continue }
            if let template {
                do { _ = try MustacheTemplate(string: template) } catch let error as MustacheTemplate.ParserError {
                    problem(field, "template does not parse: \(error.error) at line \(error.context.lineNumber), column \(error.context.columnNumber)")
                } catch { problem(field, "template does not parse") }
            }
            set(template.flatMap { $0.isEmpty ? nil : $0 })
        }
        var details = reader.details

        // Cross-field rules (the database checks the first one too).
        if details.isEmpty, rule.conditionType != .absence {
            if rule.thresholdValue == nil { details.append(.init(field: "threshold_value", reason: "is required for threshold and rate rules")) }
            if rule.comparisonOperator == nil { details.append(.init(field: "comparison_operator", reason: "is required for threshold and rate rules")) }
        }
        if details.isEmpty {
            // The evaluator's own check, e.g. minutes that overflow once in seconds (1e308).
            do { _ = try AlertEvaluator.parameters(of: rule) } catch {
                details.append(.init(field: field(of: error), reason: "\(error)"))
            }
        }
        return details
    }
    /// The body field an evaluator parameter error is about.
    static func field(of error: any Error) -> String {
        guard let error = error as? EDMMonitorCore.AlertRuleError else { return "body" }
        switch error {
        case .unknownOperator: return "comparison_operator"
        case .invalidThreshold(let field, _): return field == "threshold" ? "threshold_value" : "resolve_threshold"
        case .invalidDuration(let field, _):
            switch field {
            case "window": return "time_window_minutes"
            case "for": return "for_minutes"
            case "keep_firing_for": return "keep_firing_minutes"
            case "repeat_interval": return "repeat_interval_minutes"
            default: return field
            }
        case .invalidResolveThreshold: return "resolve_threshold"
        }
    }

    // MARK: - Rules

    /// The rule with `id`. - Throws: ``AlertRuleServiceError/ruleNotFound(_:)``.
    func rule(_ id: UUID) async throws -> AlertRule {
        guard let rule = try await AlertRule.find(id, on: database) else { throw AlertRuleServiceError.ruleNotFound(id) }
        return rule
    }

    /// Creates a rule from `body`. - Throws: ``AlertRuleServiceError/invalid(_:)``, ``AlertRuleServiceError/nameTaken(_:)``.
    func create(_ body: [String: JSONValue]) async throws -> AlertRule {
        let rule = AlertRule()
        try Self.apply(body, to: rule, write: .create, outbound: outbound)
        try await ensureUniqueName(rule)
        rule.createdAt = clock.now()
        rule.updatedAt = rule.createdAt
        try await rule.create(on: database)
        return rule
    }

    /// Replaces `rule` (from ``rule(_:)``) with `body` (`write` ``AlertRuleWrite/replace``, PUT)
    /// or changes only the fields `body` names (``AlertRuleWrite/patch``, PATCH).
    /// - Throws: ``AlertRuleServiceError/invalid(_:)``, ``AlertRuleServiceError/nameTaken(_:)``.
    func update(_ rule: AlertRule, with body: [String: JSONValue], write: AlertRuleWrite) async throws -> AlertRule {
        try Self.apply(body, to: rule, write: write, outbound: outbound)
        try await ensureUniqueName(rule)
        rule.updatedAt = clock.now()
        try await rule.save(on: database)
        return rule
    }

    /// Deletes rule `id` (its episodes, instances and notifications go with it).
    /// - Throws: ``AlertRuleServiceError/ruleNotFound(_:)``.
    func delete(_ id: UUID) async throws {
        try await rule(id).delete(on: database)
    }

    /// Warnings about `rule` as saved, none when it is fine: `window_shorter_than_two_samples`
    /// when its window is shorter than twice its metric's sample interval
    /// (``sampleInterval(metric:)``): such a window often holds fewer than two samples, and
    /// `rate`/`increase` then have no value (the rule sees no data, never 0), while other
    /// aggregations swing between one sample and none. Absence rules are warned too: a window
    /// that can fall between two samples makes them fire on a healthy series.
    func warnings(for rule: AlertRule) async throws -> [AlertRuleWarning] {
        guard let interval = try await Self.sampleInterval(metric: rule.metricName, sql: database.sql) else { return [] }
        let window = Double(rule.timeWindowMinutes) * 60
        guard window < 2 * interval else { return [] }
        let seconds = interval.formatted(.number.precision(.fractionLength(0...1)).grouping(.never))
        return [AlertRuleWarning(
            code: "window_shorter_than_two_samples", field: "time_window_minutes",
            message: "the window (\(Int(window)) s) is shorter than twice the sample interval of \(rule.metricName) (\(seconds) s): it will often hold fewer than two samples, and rate or increase have no value then (the rule sees no data); use at least \(Int((2 * interval / 60).rounded(.up))) minutes")]
    }

    /// The sample interval of `metric`, seconds: the median gap between consecutive samples of
    /// one series among its latest 64 points (one indexed read); `nil` when no series has two.
    static func sampleInterval(metric: String, sql: any SQLDatabase) async throws -> Double? {
        struct Row: Decodable { var tags: String; var timestamp: Date }
        let rows = try await sql.raw("""
            SELECT CAST(tags AS TEXT) AS tags, "timestamp" FROM system_performance_metrics
            WHERE metric_name = \(bind: metric) ORDER BY "timestamp" DESC LIMIT 64
            """).all(decoding: Row.self)
        var previous: [String: Date] = [:]
        var gaps: [Double] = []
        for row in rows {
            if let later = previous[row.tags], later > row.timestamp { gaps.append(later.timeIntervalSince(row.timestamp)) }
            previous[row.tags] = row.timestamp
        }
        return MetricWindow.quantile(0.5, of: gaps)
    }

    func ensureUniqueName(_ rule: AlertRule) async throws {
        let query = AlertRule.query(on: database).filter(\.$name == rule.name)
        if let id = rule.id { query.filter(\.$id != id) }
        if try await query.first() != nil { throw AlertRuleServiceError.nameTaken(rule.name) }
    }

    /// Evaluates rule `id` now against the stored data with the evaluator's own series and
    /// observation code, changing nothing.
    /// - Returns: the instant and, per series (sorted by tags), value and what would happen.
    func testNow(_ id: UUID) async throws -> (evaluatedAt: Date, series: [AlertRuleTestSeries]) {
        let rule = try await rule(id)
        let ruleID = try rule.requireID()
        let params: AlertRuleParameters
        do { params = try AlertEvaluator.parameters(of: rule) } catch {
            throw AlertRuleServiceError.invalid([.init(field: Self.field(of: error), reason: "\(error)")])
        }
        let now = clock.now()
        let sql = database.sql
        let stored = try await AlertEvaluator.series(metric: rule.metricName, window: params.window, now: now, sql: sql)
        var instances: [String: AlertInstanceRow] = [:]
        for row in try await AlertInstanceStore(sql: sql).all() where row.rule_id == ruleID { instances[row.fingerprint] = row }
        let series = AlertEvaluator.series(of: rule, ruleID: ruleID, parameters: params, stored: stored, instances: [:], now: now)
        let results = series.sorted { $0.tags.description < $1.tags.description }.map { series -> AlertRuleTestSeries in
            let previous = instances[series.fingerprint]?.decodedState ?? .inactive
            let result = AlertStateMachine.evaluate(previous: previous, observation: series.observation, rule: params, now: now.timeIntervalSince1970)
            let holds = AlertStateMachine.evaluate(previous: .inactive, observation: series.observation, rule: params, now: now.timeIntervalSince1970).state != .inactive
            let would = result.events.map { event -> String in
                switch event { case .firing: "fire"; case .reminder: "remind"; case .resolved: "resolve" }
            }.joined(separator: ", ")
            return AlertRuleTestSeries(tags: series.tags, value: series.observation.value, condition_holds: holds, state_now: previous.name, would: would.isEmpty ? "become \(result.state.name)" : would)
        }
        return (now, results)
    }

    // MARK: - Alerts

    /// The episode with `id`. - Throws: ``AlertRuleServiceError/alertNotFound(_:)``.
    func alert(_ id: UUID) async throws -> AlertHistory {
        guard let history = try await AlertHistory.find(id, on: database) else { throw AlertRuleServiceError.alertNotFound(id) }
        return history
    }

    /// Acknowledges active episode `id` (no reminders any more) by `by` (at most 200 characters).
    /// - Throws: ``AlertRuleServiceError/alertNotFound(_:)``, ``AlertRuleServiceError/notAcknowledgeable(_:)``.
    func acknowledge(_ id: UUID, by: String) async throws -> AlertHistory {
        let history = try await alert(id)
        guard history.status == .active else { throw AlertRuleServiceError.notAcknowledgeable(history.status) }
        history.status = .acknowledged
        history.acknowledgedBy = String(by.prefix(200))
        history.acknowledgedAt = clock.now()
        history.updatedAt = history.acknowledgedAt
        try await history.save(on: database)
        return history
    }

    /// Resolves episode `id` by hand, in one transaction: resolved now, its instance back to
    /// inactive (if the condition still holds, a new episode starts after `for`), and a resolved
    /// notification queued to the rule's channels.
    /// - Throws: ``AlertRuleServiceError/alertNotFound(_:)``, ``AlertRuleServiceError/notResolvable(_:)``.
    func resolve(_ id: UUID) async throws -> AlertHistory {
        let history = try await alert(id)
        guard history.status == .active || history.status == .acknowledged || history.status == .suppressed else {
            throw AlertRuleServiceError.notResolvable(history.status)
        }
        let now = clock.now()
        let rule = try await AlertRule.find(history.$rule.id, on: database)
        let externalURL = self.externalURL
        try await database.transaction { tx in
            history.status = .resolved
            history.resolvedAt = max(now, history.triggeredAt)
            history.updatedAt = now
            try await history.save(on: tx)
            let historyID = try history.requireID()
            try await AlertInstanceStore(sql: tx.sql).endEpisode(historyID: historyID, now: now)
            if let rule {
                let alert = AlertTemplating.outgoing(rule: rule, tags: history.tags, value: history.lastValue, startsAt: history.triggeredAt, endsAt: history.resolvedAt, externalURL: externalURL)
                try await AlertNotificationStore(sql: tx.sql).enqueue(.resolved, alert: alert, channels: rule.channels, historyID: historyID, now: now)
            }
        }
        return history
    }
}
