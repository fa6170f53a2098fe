import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Vapor

/// Alert rules (`/api/monitoring/alert-rules`) and alerts (`/api/monitoring/alerts`).
struct AlertsController: RouteCollection {
    /// The clock of every time-based decision.
    let clock: any WallClock
    /// What webhook channels may reach.
    let outbound: OutboundPolicy
    /// The alerting service (its settings give the `externalURL` of payloads).
    let alerting: AlertManagerService

    func boot(routes: any RoutesBuilder) throws {
        let rules = routes.grouped("api", "monitoring", "alert-rules")
        rules.post(use: createRule)
        rules.get(use: listRules)
        rules.get(":id", use: getRule)
        rules.put(":id", use: replaceRule)
        rules.patch(":id", use: patchRule)
        rules.delete(":id", use: deleteRule)
        rules.post(":id", "test", use: testRule)
        let alerts = routes.grouped("api", "monitoring", "alerts")
        alerts.get(use: listAlerts)
        alerts.get(":id", use: getAlert)
        alerts.post(":id", "acknowledge", use: acknowledge)
        alerts.post(":id", "resolve", use: resolve)
    }

    // MARK: - Rules

    /// The rule service for this request (its database, the injected clock and outbound policy).
    func rules(_ req: Request) -> AlertRuleService {
        AlertRuleService(database: req.db, clock: clock, outbound: outbound, externalURL: alerting.settings.externalURL)
    }

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
        /// Only in the answers to POST, PUT and PATCH, and only when there is one
        /// (``AlertRuleService/warnings(for:)``): the rule was saved all the same.
        var warnings: [AlertRuleWarning]?

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

    @Sendable func createRule(_ req: Request) async throws -> Response {
        let service = rules(req)
        let rule = try await service.create(try req.jsonBody([String: JSONValue].self))
        var dto = try RuleDTO(rule)
        dto.warnings = try await service.warnings(for: rule).nilIfEmpty
        return try await dto.encodeResponse(status: .created, for: req)
    }

    @Sendable func listRules(_ req: Request) async throws -> Page<RuleDTO> {
        let page = try PageRequest(from: req)
        let (rules, total) = try await AlertRule.query(on: req.db).sort(\.$name).page(page)
        return Page(data: try rules.map(RuleDTO.init), page: page, total: total)
    }

    @Sendable func getRule(_ req: Request) async throws -> RuleDTO {
        try RuleDTO(try await rules(req).rule(try req.uuidParameter("id", resource: "alert rule")))
    }

    /// `PUT`: the body is the whole rule (see ``AlertRuleWrite``).
    @Sendable func replaceRule(_ req: Request) async throws -> RuleDTO {
        try await updateRule(req, write: .replace)
    }

    /// `PATCH`: the body names the fields to change.
    @Sendable func patchRule(_ req: Request) async throws -> RuleDTO {
        try await updateRule(req, write: .patch)
    }

    func updateRule(_ req: Request, write: AlertRuleWrite) async throws -> RuleDTO {
        // An unknown id is 404 whatever the body (looked up before the body is read).
        let service = rules(req)
        let rule = try await service.rule(try req.uuidParameter("id", resource: "alert rule"))
        var dto = try RuleDTO(try await service.update(rule, with: try req.jsonBody([String: JSONValue].self), write: write))
        dto.warnings = try await service.warnings(for: rule).nilIfEmpty
        return dto
    }

    @Sendable func deleteRule(_ req: Request) async throws -> HTTPStatus {
        try await rules(req).delete(try req.uuidParameter("id", resource: "alert rule"))
        return .noContent
    }

    struct TestResult: Content {
        var rule_id: UUID
        var evaluated_at: Date
        var series: [AlertRuleTestSeries]
    }

    /// Evaluates the rule now against the stored data and reports, per series, the value and
    /// what would happen, changing nothing.
    @Sendable func testRule(_ req: Request) async throws -> TestResult {
        let id = try req.uuidParameter("id", resource: "alert rule")
        let result = try await rules(req).testNow(id)
        return TestResult(rule_id: id, evaluated_at: result.evaluatedAt, series: result.series)
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
        let filters = try req.query.decode(AlertListQuery.self)
        let query = AlertHistory.query(on: req.db).join(AlertRule.self, on: \AlertHistory.$rule.$id == \AlertRule.$id)
        if let status = filters.status { query.filter(\.$status == status) }
        if let severity = filters.severity { query.filter(AlertRule.self, \.$severity == severity) }
        if let id = filters.ruleID { query.filter(\.$rule.$id == id) }
        if let from = filters.range.from { query.filter(\.$triggeredAt >= from) }
        if let to = filters.range.to { query.filter(\.$triggeredAt <= to) }
        let (rows, total) = try await query.sort(\.$triggeredAt, .descending).sort(\.$id).page(page)
        return Page(data: try rows.map { try AlertDTO($0, rule: try? $0.joined(AlertRule.self)) }, page: page, total: total)
    }

    @Sendable func getAlert(_ req: Request) async throws -> AlertDTO {
        let history = try await rules(req).alert(try req.uuidParameter("id", resource: "alert"))
        let rows = try await AlertNotificationStore(sql: req.db.sql).notifications(historyID: try history.requireID())
        return try AlertDTO(history, rule: try await AlertRule.find(history.$rule.id, on: req.db), notifications: rows.map {
            .init(channel: AlertChannel(storedText: $0.channel)?.receiver ?? "unknown", kind: $0.kind, status: $0.status, attempts: $0.attempts,
                  last_error: $0.last_error, delivered_at: $0.delivered_at, created_at: $0.created_at)
        })
    }

    struct ByBody: Content { var by: String? }

    @Sendable func acknowledge(_ req: Request) async throws -> AlertDTO {
        let id = try req.uuidParameter("id", resource: "alert")
        let by = (try? req.content.decode(ByBody.self))?.by ?? "operator"
        let history = try await rules(req).acknowledge(id, by: by)
        return try AlertDTO(history, rule: try await AlertRule.find(history.$rule.id, on: req.db))
    }

    /// Resolves an episode by hand (see ``AlertRuleService/resolve(_:)``).
    @Sendable func resolve(_ req: Request) async throws -> AlertDTO {
        let history = try await rules(req).resolve(try req.uuidParameter("id", resource: "alert"))
        return try AlertDTO(history, rule: try await AlertRule.find(history.$rule.id, on: req.db))
    }
}

extension Array {
    /// `nil` for an empty array (a field then left out of the JSON), else the array.
    var nilIfEmpty: [Element]? { isEmpty ? nil : self }
}
