import EDMMonitorCore
import FluentKit
import Foundation
import Mustache
import SQLKit
import Vapor

/// Alert rules (`/api/monitoring/alert-rules`) and alerts (`/api/monitoring/alerts`).
struct AlertsController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let rules = routes.grouped("api", "monitoring", "alert-rules")
        rules.post(use: createRule)
        rules.get(use: listRules)
        rules.get(":id", use: getRule)
        rules.put(":id", use: updateRule)
        rules.patch(":id", use: updateRule)
        rules.delete(":id", use: deleteRule)
        rules.post(":id", "test", use: testRule)
        let alerts = routes.grouped("api", "monitoring", "alerts")
        alerts.get(use: listAlerts)
        alerts.get(":id", use: getAlert)
        alerts.post(":id", "acknowledge", use: acknowledge)
        alerts.post(":id", "resolve", use: resolve)
    }

    // MARK: - Rules

    /// Create and update body (snake_case, as stored); on update absent fields keep their value.
    struct RuleBody: Content {
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
        var tag_matchers: [TagMatcherBody]?
        var aggregation: String?
        var for_minutes: Double?
        var resolve_threshold: Double?
        var keep_firing_minutes: Double?
        var repeat_interval_minutes: Double?
        var no_data: String?
        var labels: [String: String]?
        var summary_template: String?
        var description_template: String?
    }

    struct TagMatcherBody: Content { var key: String; var op: String?; var value: String }

    struct RuleDTO: Content {
        var id: UUID
        var name: String
        var description: String?
        var metric_name: String
        var condition_type: String
        var threshold_value: Double?
        var comparison_operator: String?
        var time_window_minutes: Int
        var severity: String
        var notification_channels: [JSONValue]
        var is_active: Bool
        var tag_matchers: [TagMatcher]
        var aggregation: String
        var for_minutes: Double
        var resolve_threshold: Double?
        var keep_firing_minutes: Double
        var repeat_interval_minutes: Double?
        var no_data: String
        var labels: [String: String]
        var summary_template: String?
        var description_template: String?
        var created_at: Date?
        var updated_at: Date?

        init(_ r: AlertRule) throws {
            id = try r.requireID()
            name = r.name
            description = r.ruleDescription
            metric_name = r.metricName
            condition_type = r.conditionType.rawValue
            threshold_value = r.thresholdValue
            comparison_operator = r.comparisonOperator?.rawValue
            time_window_minutes = r.timeWindowMinutes
            severity = r.severity.rawValue
            // Webhook URLs can carry credentials: write-only, shown redacted.
            notification_channels = OutboundURL.redactedChannels(r.notificationChannels)
            is_active = r.isActive
            tag_matchers = r.tagMatchers
            aggregation = r.aggregation
            for_minutes = r.forMinutes
            resolve_threshold = r.resolveThreshold
            keep_firing_minutes = r.keepFiringMinutes
            repeat_interval_minutes = r.repeatIntervalMinutes
            no_data = r.noData
            labels = r.labels
            summary_template = r.summaryTemplate
            description_template = r.descriptionTemplate
            created_at = r.createdAt
            updated_at = r.updatedAt
        }
    }

    /// Validates `body` and applies it to `rule`; lists every bad field (400).
    static func apply(_ body: RuleBody, to rule: AlertRule, creating: Bool, outbound: OutboundPolicy) throws {
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
                guard let data = try? JSONEncoder().encode(value), let channel = try? JSONDecoder().decode(AlertChannel.self, from: data) else {
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
            for key in labels.keys where !PrometheusName.isValidLabelName(key) { details.append(.init(field: "labels.\(key)", reason: "must be a label name")) }
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
            do { _ = try AlertManagerService.parameters(of: rule) } catch {
                details.append(.init(field: "resolve_threshold", reason: "\(error)"))
            }
        }
        guard details.isEmpty else { throw APIError.validation("the alert rule is invalid", details) }
    }

    @Sendable func createRule(_ req: Request) async throws -> Response {
        let rule = AlertRule()
        try Self.apply(try req.content.decode(RuleBody.self), to: rule, creating: true, outbound: req.edm.outbound)
        try await Self.ensureUniqueName(rule, on: req.db)
        rule.createdAt = req.edm.clock.now()
        rule.updatedAt = rule.createdAt
        try await rule.create(on: req.db)
        return try await RuleDTO(rule).encodeResponse(status: .created, for: req)
    }

    static func ensureUniqueName(_ rule: AlertRule, on db: any Database) async throws {
        let query = AlertRule.query(on: db).filter(\.$name == rule.name)
        if let id = rule.id { query.filter(\.$id != id) }
        if try await query.first() != nil {
            throw APIError(.conflict, .conflict, "an alert rule named \(rule.name) already exists", details: [.init(field: "name", reason: "already taken")])
        }
    }

    @Sendable func listRules(_ req: Request) async throws -> Page<RuleDTO> {
        let page = try PageRequest(from: req)
        let (rules, total) = try await AlertRule.query(on: req.db).sort(\.$name).page(page)
        return Page(data: try rules.map(RuleDTO.init), page: page, total: total)
    }

    @Sendable func getRule(_ req: Request) async throws -> RuleDTO { try RuleDTO(try await findRule(req)) }

    @Sendable func updateRule(_ req: Request) async throws -> RuleDTO {
        let rule = try await findRule(req)
        try Self.apply(try req.content.decode(RuleBody.self), to: rule, creating: false, outbound: req.edm.outbound)
        try await Self.ensureUniqueName(rule, on: req.db)
        rule.updatedAt = req.edm.clock.now()
        try await rule.save(on: req.db)
        return try RuleDTO(rule)
    }

    @Sendable func deleteRule(_ req: Request) async throws -> HTTPStatus {
        try await findRule(req).delete(on: req.db)
        return .noContent
    }

    func findRule(_ req: Request) async throws -> AlertRule {
        let id = try req.uuidParameter("id", resource: "alert rule")
        guard let rule = try await AlertRule.find(id, on: req.db) else { throw APIError.notFound("no alert rule with id \(id)") }
        return rule
    }

    struct TestResult: Content {
        struct Series: Content { var tags: [String: String]; var value: Double?; var condition_holds: Bool; var state_now: String; var would: String }
        var rule_id: UUID
        var evaluated_at: Date
        var series: [Series]
    }

    /// Evaluates the rule now against the stored data and reports, per series, the value and
    /// what would happen, changing nothing.
    @Sendable func testRule(_ req: Request) async throws -> TestResult {
        let rule = try await findRule(req)
        let ruleID = try rule.requireID()
        let params = try AlertManagerService.parameters(of: rule)
        let service = req.edm.alerting
        let now = req.edm.clock.now()
        let points = try await service.points(metric: rule.metricName, window: params.window, now: now, sql: req.db.sql)
            .filter { point in rule.tagMatchers.allSatisfy { $0.matches(point.tags) } }
        let instances = try await AlertInstanceRow.all(on: req.db.sql).filter { $0.rule_id == ruleID }
        var groups: [[String: String]: [MetricSample]] = [:]
        if case .absence = params.condition {
            groups[Dictionary(rule.tagMatchers.filter { $0.op == .equal }.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })] = points.map(\.sample)
        } else {
            for point in points { groups[point.tags, default: []].append(point.sample) }
        }
        var series: [TestResult.Series] = []
        for (tags, samples) in groups.sorted(by: { $0.key.description < $1.key.description }) {
            let observation = params.observation(of: samples, at: now.timeIntervalSince1970)
            let fingerprint = AlertManagerService.fingerprint(ruleID: ruleID, tags: tags)
            let previous = instances.first { $0.fingerprint == fingerprint }?.decodedState ?? .inactive
            let result = AlertStateMachine.evaluate(previous: previous, observation: observation, rule: params, now: now.timeIntervalSince1970)
            let holds = AlertStateMachine.evaluate(previous: .inactive, observation: observation, rule: params, now: now.timeIntervalSince1970).state != .inactive
            let would = result.events.map { event -> String in
                switch event { case .firing: "fire"; case .reminder: "remind"; case .resolved: "resolve" }
            }.joined(separator: ", ")
            series.append(.init(tags: tags, value: observation.value, condition_holds: holds, state_now: previous.name, would: would.isEmpty ? "become \(result.state.name)" : would))
        }
        return TestResult(rule_id: ruleID, evaluated_at: now, series: series)
    }

    // MARK: - Alerts

    struct AlertDTO: Content {
        struct Notification: Content { var channel: String; var kind: String; var status: String; var attempts: Int; var last_error: String?; var delivered_at: Date?; var created_at: Date }
        var id: UUID
        var rule_id: UUID
        var rule_name: String?
        var severity: String?
        var fingerprint: String
        var tags: [String: String]
        var status: String
        var triggered_at: Date
        var resolved_at: Date?
        var trigger_value: Double?
        var last_value: Double?
        var message: String
        var acknowledged_by: String?
        var acknowledged_at: Date?
        var notifications: [Notification]?

        init(_ h: AlertHistory, rule: AlertRule?, notifications: [Notification]? = nil) throws {
            id = try h.requireID()
            rule_id = h.$rule.id
            rule_name = rule?.name
            severity = rule?.severity.rawValue
            fingerprint = h.fingerprint
            tags = h.tags
            status = h.status.rawValue
            triggered_at = h.triggeredAt
            resolved_at = h.resolvedAt
            trigger_value = h.triggerValue
            last_value = h.lastValue
            message = h.message
            acknowledged_by = h.acknowledgedBy
            acknowledged_at = h.acknowledgedAt
            self.notifications = notifications
        }
    }

    @Sendable func listAlerts(_ req: Request) async throws -> Page<AlertDTO> {
        let page = try PageRequest(from: req)
        let (from, to) = try TaskMonitoringController.range(req)
        let query = AlertHistory.query(on: req.db).join(AlertRule.self, on: \AlertHistory.$rule.$id == \AlertRule.$id)
        var details: [APIErrorDetail] = []
        if let raw = req.query[String.self, at: "status"] {
            // `firing` is Alertmanager's word for an active episode (and what the CLI and dashboard print).
            if let status = raw == "firing" ? .active : AlertHistory.Status(rawValue: raw) { query.filter(\.$status == status) } else {
                details.append(.init(field: "status", reason: "must be one of " + AlertHistory.Status.allCases.map(\.rawValue).joined(separator: ", ") + " (firing = active)"))
            }
        }
        if let raw = req.query[String.self, at: "severity"] {
            if let severity = AlertRule.Severity(rawValue: raw) { query.filter(AlertRule.self, \.$severity == severity) } else {
                details.append(.init(field: "severity", reason: "must be one of info, warning, critical"))
            }
        }
        if let raw = req.query[String.self, at: "rule_id"] {
            if let id = UUID(uuidString: raw) { query.filter(\.$rule.$id == id) } else { details.append(.init(field: "rule_id", reason: "must be a UUID")) }
        }
        guard details.isEmpty else { throw APIError.validation("invalid filters", details) }
        if let from { query.filter(\.$triggeredAt >= from) }
        if let to { query.filter(\.$triggeredAt <= to) }
        let (rows, total) = try await query.sort(\.$triggeredAt, .descending).sort(\.$id).page(page)
        return Page(data: try rows.map { try AlertDTO($0, rule: try? $0.joined(AlertRule.self)) }, page: page, total: total)
    }

    @Sendable func getAlert(_ req: Request) async throws -> AlertDTO {
        let history = try await findAlert(req)
        struct Row: Decodable { var channel: String; var kind: String; var status: String; var attempts: Int; var last_error: String?; var delivered_at: Date?; var created_at: Date }
        let rows = try await req.db.sql.raw("SELECT channel, kind, status, attempts, last_error, delivered_at, created_at FROM alert_notifications WHERE history_id = \(bind: history.requireID()) ORDER BY created_at").all(decoding: Row.self)
        let channelName: (String) -> String = { json in (try? JSONDecoder().decode(AlertChannel.self, from: Data(json.utf8)))?.receiver ?? "unknown" }
        return try AlertDTO(history, rule: try await AlertRule.find(history.$rule.id, on: req.db), notifications: rows.map {
            .init(channel: channelName($0.channel), kind: $0.kind, status: $0.status, attempts: $0.attempts, last_error: $0.last_error, delivered_at: $0.delivered_at, created_at: $0.created_at)
        })
    }

    struct ByBody: Content { var by: String? }

    @Sendable func acknowledge(_ req: Request) async throws -> AlertDTO {
        let history = try await findAlert(req)
        guard history.status == .active else { throw APIError(.conflict, .conflict, "only an active alert can be acknowledged; this one is \(history.status.rawValue)") }
        let by = (try? req.content.decode(ByBody.self))?.by ?? "operator"
        history.status = .acknowledged
        history.acknowledgedBy = String(by.prefix(200))
        history.acknowledgedAt = req.edm.clock.now()
        history.updatedAt = history.acknowledgedAt
        try await history.save(on: req.db)
        return try AlertDTO(history, rule: try await AlertRule.find(history.$rule.id, on: req.db))
    }

    /// Resolves an episode by hand: resolved now, its instance back to inactive (if the
    /// condition still holds, a new episode starts after `for`), and a resolved notification.
    @Sendable func resolve(_ req: Request) async throws -> AlertDTO {
        let history = try await findAlert(req)
        guard history.status == .active || history.status == .acknowledged || history.status == .suppressed else {
            throw APIError(.conflict, .conflict, "the alert is already \(history.status.rawValue)")
        }
        let now = req.edm.clock.now()
        let rule = try await AlertRule.find(history.$rule.id, on: req.db)
        try await req.db.transaction { tx in
            history.status = .resolved
            history.resolvedAt = max(now, history.triggeredAt)
            history.updatedAt = now
            try await history.save(on: tx)
            try await tx.sql.raw("UPDATE alert_instances SET state = \(bind: #"{"inactive":{}}"#), history_id = NULL, updated_at = \(bind: now) WHERE history_id = \(bind: history.requireID())").run()
            if let rule {
                let alert = AlertManagerService.outgoing(rule: rule, tags: history.tags, value: history.lastValue, startsAt: history.triggeredAt, endsAt: history.resolvedAt, externalURL: req.edm.alerting.settings.externalURL)
                try await req.edm.alerting.enqueue(.resolved, alert: alert, rule: rule, historyID: try history.requireID(), now: now, sql: tx.sql)
            }
        }
        return try AlertDTO(history, rule: rule)
    }

    func findAlert(_ req: Request) async throws -> AlertHistory {
        let id = try req.uuidParameter("id", resource: "alert")
        guard let history = try await AlertHistory.find(id, on: req.db) else { throw APIError.notFound("no alert with id \(id)") }
        return history
    }
}
