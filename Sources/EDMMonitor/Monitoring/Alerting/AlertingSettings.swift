/// Settings of alerting; changeable at run time.
public struct AlertingSettings: Sendable, Equatable {
    /// When `false`, evaluation cycles do nothing (`alerting_enabled`); alert state is kept as
    /// it is and notifications already queued are still delivered.
    public var enabled = true
    /// How often rules are evaluated, seconds.
    public var evaluationIntervalSeconds: Double = 30
    /// How often the outbox is drained, seconds.
    public var deliveryIntervalSeconds: Double = 5
    /// Backoff before retry n of a notification: `base × 2^(n−1)`, at most `maxBackoff`.
    public var retryBaseSeconds: Double = 10
    public var maxBackoffSeconds: Double = 600
    /// A notification still undelivered this long after it was queued is given up (`failed`).
    public var giveUpAfterSeconds: Double = 24 * 3600
    /// The `externalURL` of webhook payloads.
    public var externalURL: String = ""

    public init() {}
}

/// What one evaluation cycle did.
public struct AlertEvaluationReport: Sendable, Equatable {
    public var rules = 0
    public var instances = 0
    /// Reads of `system_performance_metrics`: one per metric watched by an active rule.
    public var metricQueries = 0
    /// Instances whose state, episode or notifications were written (each in its transaction).
    public var writes = 0
    /// Unchanged instances whose last value was rewritten (at most every 300 s each).
    public var valueRefreshes = 0
    public var firing = 0
    public var resolved = 0
    public var reminders = 0
    /// Another instance holds the evaluator lease; nothing was evaluated.
    public var skipped = false
    /// Alerting is disabled; nothing was evaluated.
    public var disabled = false
}
