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

/// A create or update body of an alert rule (snake_case, as stored); on update absent fields
/// keep their value.
struct AlertRuleInput: Codable, Sendable {
    var name: String?
    var description: String?
    var metric_name: String?
    var condition_type: String?
    var threshold_value: Double?
    var comparison_operator: String?
    var time_window_minutes: Int?
    var severity: String?
    var notification_channels: [JSONValue]?
    var is_active: Bool?
    var tag_matchers: [TagMatcherInput]?
    var aggregation: String?
    var for_minutes: Double?
    var resolve_threshold: Double?
    var keep_firing_minutes: Double?
    var repeat_interval_minutes: Double?
    var no_data: String?
    var labels: [String: String]?
    var summary_template: String?
    var description_template: String?

    /// One tag matcher; `op` defaults to `=`.
    struct TagMatcherInput: Codable, Sendable { var key: String; var op: String?; var value: String }

    /// The field names a body may contain (every other one is refused).
    static let fields = [
        "name", "description", "metric_name", "condition_type", "threshold_value", "comparison_operator", "time_window_minutes",
        "severity", "notification_channels", "is_active", "tag_matchers", "aggregation", "for_minutes", "resolve_threshold",
        "keep_firing_minutes", "repeat_interval_minutes", "no_data", "labels", "summary_template", "description_template",
    ]
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

    /// Decodes and validates `body` (a JSON object) and applies it to `rule`.
    /// - Throws: ``AlertRuleServiceError/invalid(_:)`` listing every unknown field, wrongly
    ///   typed field, bad value and cross-field problem; `rule` is then partly changed and must
    ///   not be saved.
    static func apply(_ body: [String: JSONValue], to rule: AlertRule, creating: Bool, outbound: OutboundPolicy) throws {
        var details: [APIErrorDetail] = []
        for key in body.keys.sorted() where !AlertRuleInput.fields.contains(key) {
            details.append(.init(field: key, reason: "is not an alert rule field; known: \(AlertRuleInput.fields.joined(separator: ", "))"))
        }
        let known = body.filter { AlertRuleInput.fields.contains($0.key) }
        let input: AlertRuleInput
        do {
            input = try JSONDecoder().decode(AlertRuleInput.self, from: JSONEncoder().encode(known))
        } catch {
            throw AlertRuleServiceError.invalid(details + APIErrorMiddleware.map(error).details)
        }
        details += problems(applying: input, to: rule, creating: creating, outbound: outbound)
        guard details.isEmpty else { throw AlertRuleServiceError.invalid(details) }
    }

    /// Applies `body` to `rule` and returns every problem (empty: the rule is valid).
    static func problems(applying body: AlertRuleInput, to rule: AlertRule, creating: Bool, outbound: OutboundPolicy) -> [APIErrorDetail] {
        var details: [APIErrorDetail] = []
        func required<T>(_ value: T?, _ field: String) -> T? {
            if value == nil && creating { details.append(.init(field: field, reason: "is required")) }
            return value
        }
        if let name = required(body.name, "name") {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.count > 200 { details.append(.init(field: "name", reason: "must be 1 to 200 characters")) }
            rule.name = trimmed
        }
        if let description = body.description { rule.ruleDescription = description.isEmpty ? nil : description }
        if let metric = required(body.metric_name, "metric_name") {
            if !PrometheusName.isValidMetricName(metric) || metric.count > 100 { details.append(.init(field: "metric_name", reason: "must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 100 characters)")) }
            rule.metricName = metric
        }
        if let raw = required(body.condition_type, "condition_type") {
            if let type = AlertRule.ConditionType(rawValue: raw) { rule.conditionType = type } else {
                details.append(.init(field: "condition_type", reason: "must be one of threshold, rate, absence"))
            }
        }
        if let raw = body.comparison_operator {
            if let op = try? AlertComparisonOperator(parsing: raw) { rule.comparisonOperator = op } else {
                details.append(.init(field: "comparison_operator", reason: "must be one of > < >= <= = !="))
            }
        }
        if let threshold = body.threshold_value {
            if !threshold.isFinite { details.append(.init(field: "threshold_value", reason: "must be a finite number")) }
            rule.thresholdValue = threshold
        }
        if let window = required(body.time_window_minutes, "time_window_minutes") {
            if window <= 0 || window > 10_080 { details.append(.init(field: "time_window_minutes", reason: "must be from 1 to 10080 (7 days)")) }
            rule.timeWindowMinutes = window
        }
        if let raw = required(body.severity, "severity") {
            if let severity = AlertRule.Severity(rawValue: raw) { rule.severity = severity } else {
                details.append(.init(field: "severity", reason: "must be one of info, warning, critical"))
            }
        }
        if let channels = body.notification_channels {
            for (i, value) in channels.enumerated() {
                guard let channel = AlertChannel(value) else {
                    details.append(.init(field: "notification_channels[\(i)].type", reason: "must be one of " + AlertChannel.Kind.allCases.map(\.rawValue).joined(separator: ", ")))
                    continue
                }
                for problem in channel.problems(outbound: outbound) { details.append(.init(field: "notification_channels[\(i)].\(problem.field)", reason: problem.reason)) }
            }
            rule.notificationChannels = channels
        } else if creating {
            rule.notificationChannels = [.object(["type": .string("log")])]
        }
        if let active = body.is_active { rule.isActive = active } else if creating { rule.isActive = true }
        if let matchers = body.tag_matchers {
            var parsed: [TagMatcher] = []
            for (i, m) in matchers.enumerated() {
                guard !m.key.isEmpty, PrometheusName.isValidLabelName(m.key) else { details.append(.init(field: "tag_matchers[\(i)].key", reason: "must be a label name")); continue }
                guard let op = TagMatcher.Op(rawValue: m.op ?? "=") else { details.append(.init(field: "tag_matchers[\(i)].op", reason: "must be = or !=")); continue }
                parsed.append(TagMatcher(key: m.key, op: op, value: m.value))
            }
            rule.tagMatchers = parsed
        } else if creating { rule.tagMatchers = [] }
        if let aggregation = body.aggregation {
            if !["last", "avg", "min", "max", "sum", "count", "p95"].contains(aggregation) { details.append(.init(field: "aggregation", reason: "must be one of last, avg, min, max, sum, count, p95")) }
            rule.aggregation = aggregation
        } else if creating { rule.aggregation = "last" }
        for (field, value) in [("for_minutes", body.for_minutes), ("keep_firing_minutes", body.keep_firing_minutes)] {
            if let value, !value.isFinite || value < 0 { details.append(.init(field: field, reason: "must be ≥ 0")) }
        }
        rule.forMinutes = body.for_minutes ?? (creating ? 0 : rule.forMinutes)
        rule.keepFiringMinutes = body.keep_firing_minutes ?? (creating ? 0 : rule.keepFiringMinutes)
        if let repeatMinutes = body.repeat_interval_minutes {
            if !repeatMinutes.isFinite || repeatMinutes <= 0 { details.append(.init(field: "repeat_interval_minutes", reason: "must be > 0")) }
            rule.repeatIntervalMinutes = repeatMinutes
        }
        if let resolve = body.resolve_threshold { rule.resolveThreshold = resolve }
        if let noData = body.no_data {
            if AlertNoDataPolicy(rawValue: noData) == nil { details.append(.init(field: "no_data", reason: "must be one of ok, alerting, keep_last")) }
            rule.noData = noData
        } else if creating { rule.noData = "ok" }
        if let labels = body.labels {
            for key in labels.keys.sorted() where !PrometheusName.isValidLabelName(key) { details.append(.init(field: "labels.\(key)", reason: "must be a label name")) }
            rule.labels = labels
        } else if creating { rule.labels = [:] }
        for (field, template) in [("summary_template", body.summary_template), ("description_template", body.description_template)] {
            guard let template else { continue }
            do { _ = try MustacheTemplate(string: template) } catch let error as MustacheTemplate.ParserError {
                details.append(.init(field: field, reason: "template does not parse: \(error.error) at line \(error.context.lineNumber), column \(error.context.columnNumber)"))
            } catch { details.append(.init(field: field, reason: "template does not parse")) }
        }
        if let template = body.summary_template { rule.summaryTemplate = template.isEmpty ? nil : template }
        if let template = body.description_template { rule.descriptionTemplate = template.isEmpty ? nil : template }

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
        try Self.apply(body, to: rule, creating: true, outbound: outbound)
        try await ensureUniqueName(rule)
        rule.createdAt = clock.now()
        rule.updatedAt = rule.createdAt
        try await rule.create(on: database)
        return rule
    }

    /// Changes the fields of `rule` (from ``rule(_:)``) named in `body` (PUT and PATCH alike).
    /// - Throws: ``AlertRuleServiceError/invalid(_:)``, ``AlertRuleServiceError/nameTaken(_:)``.
    func update(_ rule: AlertRule, with body: [String: JSONValue]) async throws -> AlertRule {
        try Self.apply(body, to: rule, creating: false, outbound: outbound)
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
        let points = try await AlertEvaluator.points(metric: rule.metricName, window: params.window, now: now, sql: sql)
        let instances = try await AlertInstanceStore(sql: sql).all().filter { $0.rule_id == ruleID }
        let series = AlertEvaluator.series(of: rule, ruleID: ruleID, parameters: params, points: points, instances: instances, carryingQuiet: false, now: now)
        let results = series.sorted { $0.tags.description < $1.tags.description }.map { series -> AlertRuleTestSeries in
            let previous = instances.first { $0.fingerprint == series.fingerprint }?.decodedState ?? .inactive
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
