import FluentKit
import Foundation

/// Seeds the default rule "Alert evaluation missing iterations": it fires when the evaluator
/// skipped a slot in the last 10 minutes (a `rate` rule: the per-second increase of
/// `edm_alert_evaluation_iterations_missed_total` > 0, per process: tag `instance`), that is when an iteration ran longer than the evaluation
/// interval and alerts were evaluated late. Quiet on a fresh install: the counter is written as
/// 0 by every iteration that missed nothing, a window with fewer than two points has no value
/// (`no_data = ok`), and a restart starts a new series at 0.
struct SeedEvaluationMissedIterationsRule: AsyncMigration {
    var name: String { "SeedEvaluationMissedIterationsRule" }

    static let seed = SeedDefaultAlertRules.Seed(
        name: "Alert evaluation missing iterations",
        description: "An alert evaluation iteration ran past the next slot, so rules were evaluated late; see edm_alert_evaluation_duration_seconds and reduce the rules or raise evaluation_interval_seconds.",
        metric: AlertManagerService.missedIterationsMetric, op: ">", threshold: 0, windowMinutes: 10, forMinutes: 0,
        severity: "warning", aggregation: "last")

    func prepare(on database: any Database) async throws {
        let rule = try Self.seed.rule(now: Date())
        rule.conditionType = .rate
        try await rule.create(on: database)
    }

    func revert(on database: any Database) async throws {
        try await AlertRule.query(on: database).filter(\.$name == Self.seed.name).delete()
    }
}
