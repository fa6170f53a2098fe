import EDMMonitorCore
import FluentKit
import Foundation

/// Fixes two default rules of ``SeedDefaultAlertRules`` that could never do their job (issue #15,
/// "no dead defaults"), on databases where they are still as seeded (a rule an operator edited —
/// another metric, operator or threshold — is left alone):
///
/// - **Database pool saturated** watched `edm_db_connection_pool_usage_percent`, which nothing
///   writes (neither Fluent driver exposes its pool's occupancy), so it could never fire. It
///   becomes **Database slow**: `edm_db_query_latency_seconds` (the database collector's
///   `SELECT 1` round trip, every collection) averaging above 0.5 s over 5 minutes for 2 — what a
///   saturated pool looks like from outside, since the probe queues behind the busy
///   connections; 0.5 s is the health check's `degraded` threshold (``HealthChecker``). The name
///   stays when another rule already has the new one.
/// - **Task stuck** compared `edm_task_stuck_duration_seconds` with a fixed 600 s, so changing
///   `stuck_threshold_seconds` at run time moved the detector but not the rule (a task stuck
///   for 5 minutes under a 300 s threshold never alerted). The series is written only for tasks
///   the detector judged stuck, so the rule now fires on any value (`> 0`): the one threshold is
///   the setting. Its window shrinks to 1 minute (two detection cycles) so the alert resolves
///   within a minute of the task moving again.
struct ReviseDeadDefaultAlertRules: AsyncMigration {
    var name: String { "ReviseDeadDefaultAlertRules" }

    /// One version of a rule: the seed's shape (name, description, metric, operator, threshold,
    /// window, for, severity, aggregation).
    typealias Revision = SeedDefaultAlertRules.Seed

    /// The seed's version of the rule named `name`.
    private static func seeded(_ name: String) -> Revision {
        SeedDefaultAlertRules.seeds.first { $0.name == name }!
    }

    /// Each dead default as seeded, and as revised.
    static let revisions: [(seeded: Revision, revised: Revision)] = [
        (seeded("Database pool saturated"),
         Revision(name: "Database slow",
                  description: "Database round trips (the collector's SELECT 1) averaged over 0.5 s for 5 minutes: the connection pool is saturated or the database is overloaded.",
                  metric: "edm_db_query_latency_seconds", op: ">", threshold: 0.5, windowMinutes: 5, forMinutes: 2, severity: "critical", aggregation: "avg")),
        (seeded("Task stuck"),
         Revision(name: "Task stuck",
                  description: "A task has sent nothing for stuck_threshold_seconds (10 minutes unless changed) while it has work left; see the task's stuck reason.",
                  metric: "edm_task_stuck_duration_seconds", op: ">", threshold: 0, windowMinutes: 1, forMinutes: 0, severity: "warning", aggregation: "last")),
    ]

    func prepare(on database: any Database) async throws {
        for (seeded, revised) in Self.revisions { try await apply(from: seeded, to: revised, on: database) }
    }

    func revert(on database: any Database) async throws {
        for (seeded, revised) in Self.revisions { try await apply(from: revised, to: seeded, on: database) }
    }

    /// Rewrites the rule in its `old` version (named as `old` or, when a rename was skipped, as
    /// `new`, with `old`'s metric, operator and threshold) to `new`; renames it only when no
    /// other rule has `new`'s name (names are unique).
    private func apply(from old: Revision, to new: Revision, on database: any Database) async throws {
        let candidates = try await AlertRule.query(on: database).filter(\.$name ~~ [old.name, new.name]).all()
        let oldOperator = try AlertComparisonOperator(parsing: old.op)
        guard let rule = candidates.first(where: { $0.metricName == old.metric && $0.comparisonOperator == oldOperator && $0.thresholdValue == old.threshold })
        else { return }
        if rule.name != new.name, !candidates.contains(where: { $0.name == new.name }) {
            rule.name = new.name
        }
        rule.ruleDescription = new.description
        rule.metricName = new.metric
        rule.comparisonOperator = try AlertComparisonOperator(parsing: new.op)
        rule.thresholdValue = new.threshold
        rule.timeWindowMinutes = new.windowMinutes
        rule.aggregation = new.aggregation
        rule.forMinutes = new.forMinutes
        rule.updatedAt = Date()
        try await rule.save(on: database)
    }
}
