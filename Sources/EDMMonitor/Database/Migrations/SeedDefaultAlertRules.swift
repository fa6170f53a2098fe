import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit

/// Seeds the six default rules once per database (the seed's intent), each notifying only the
/// `log` channel, so a fresh install sends nothing anywhere, and each written so that a healthy
/// fresh install raises none: the two "while work is pending" metrics are only written while
/// subtasks are pending, and a rule without data stays quiet (`no_data = ok`).
struct SeedDefaultAlertRules: AsyncMigration {
    var name: String { "SeedDefaultAlertRules" }

    struct Seed {
        var name: String
        var description: String
        var metric: String
        var op: String
        var threshold: Double
        var windowMinutes: Int
        var forMinutes: Double
        var severity: String
        var aggregation: String

        /// The seeded rule: a threshold rule notifying only the `log` channel, labelled
        /// `service="edm-monitor"`, quiet without data (`no_data = ok`).
        /// - Throws: an invalid `op`.
        func rule(now: Date) throws -> AlertRule {
            let rule = AlertRule()
            rule.name = name
            rule.ruleDescription = description
            rule.metricName = metric
            rule.conditionType = .threshold
            rule.comparisonOperator = try AlertComparisonOperator(parsing: op)
            rule.thresholdValue = threshold
            rule.timeWindowMinutes = windowMinutes
            rule.forMinutes = forMinutes
            rule.severity = AlertRule.Severity(rawValue: severity) ?? .warning
            rule.aggregation = aggregation
            rule.notificationChannels = [.object(["type": .string("log")])]
            rule.isActive = true
            rule.tagMatchers = []
            rule.keepFiringMinutes = 0
            rule.noData = "ok"
            rule.labels = ["service": "edm-monitor"]
            rule.createdAt = now
            rule.updatedAt = now
            return rule
        }
    }

    static let seeds: [Seed] = [
        Seed(name: "Task stuck", description: "A task has sent nothing for 10 minutes while it has work left; see the task's stuck reason.",
             metric: "edm_task_stuck_duration_seconds", op: ">=", threshold: 600, windowMinutes: 5, forMinutes: 0, severity: "warning", aggregation: "last"),
        Seed(name: "API error rate high", description: "More than 5 % of API requests failed with a 5xx over 5 minutes.",
             metric: "edm_api_error_rate_percent", op: ">", threshold: 5, windowMinutes: 5, forMinutes: 0, severity: "critical", aggregation: "avg"),
        Seed(name: "Queue throughput low", description: "Work is pending but fewer than 1 email per hour went out for 10 minutes.",
             metric: "edm_queue_pending_throughput_per_hour", op: "<", threshold: 1, windowMinutes: 5, forMinutes: 10, severity: "warning", aggregation: "last"),
        Seed(name: "No email service available", description: "Work is pending and no email service can send (all disabled, frozen or out of quota).",
             metric: "edm_email_services_available_while_pending", op: "<", threshold: 1, windowMinutes: 5, forMinutes: 2, severity: "critical", aggregation: "last"),
        Seed(name: "Memory usage high", description: "Memory use above 85 % for 5 minutes.",
             metric: "edm_system_memory_usage_percent", op: ">", threshold: 85, windowMinutes: 5, forMinutes: 5, severity: "warning", aggregation: "avg"),
        Seed(name: "Database pool saturated", description: "The database connection pool is more than 90 % busy.",
             metric: "edm_db_connection_pool_usage_percent", op: ">", threshold: 90, windowMinutes: 5, forMinutes: 2, severity: "critical", aggregation: "avg"),
    ]

    func prepare(on database: any Database) async throws {
        let now = Date()
        for seed in Self.seeds { try await seed.rule(now: now).create(on: database) }
    }

    func revert(on database: any Database) async throws {
        try await AlertRule.query(on: database).filter(\.$name ~~ Self.seeds.map(\.name)).delete()
    }
}
