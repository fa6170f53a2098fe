import Foundation

/// The persisted state of one alert instance (one rule × one series), between evaluations.
///
/// All timestamps are Unix seconds. It is `Codable` so the evaluator can store it in the database
/// and a restarted process continues where it left off: a pending instance keeps its `activeAt`
/// (the `for` clock is not reset) and a firing one keeps `firedAt`/`lastNotifiedAt` (no second
/// firing notification). Synthesized JSON shape, one key per case, e.g.
/// `{"pending":{"activeAt":90}}`, `{"firing":{"activeAt":90,"firedAt":210,"lastNotifiedAt":210}}`
/// (`keepFiringSince` only while a `keep_firing_for` countdown runs),
/// `{"resolved":{"activeAt":90,"firedAt":210,"resolvedAt":240}}`, `{"inactive":{}}`.
///
/// Lifecycle, after Prometheus's rule manager (`rules/alerting.go`, `AlertingRule.Eval`):
/// inactive → pending(activeAt) → firing(activeAt, firedAt) → resolved(resolvedAt) → inactive.
/// `resolved` lasts one evaluation: it records that the resolution happened at `resolvedAt`; the next
/// evaluation moves it to inactive, or straight to pending when the condition is true again.
/// (Prometheus keeps resolved alerts 15 minutes only to re-send the resolution to Alertmanager;
/// our notifications go through a durable outbox, so that retention is not needed here.)
public enum AlertInstanceState: Sendable, Hashable, Codable {
    /// The condition is false (or was never evaluated). Nothing is stored about the past.
    case inactive
    /// The condition has been true at every evaluation since `activeAt`, for less than `for`.
    case pending(activeAt: Double)
    /// Firing since `firedAt`; `lastNotifiedAt` is the last firing or reminder notification;
    /// `keepFiringSince` is the first evaluation of the current false streak while
    /// `keep_firing_for` holds the instance firing (`nil` while the condition is true).
    case firing(activeAt: Double, firedAt: Double, lastNotifiedAt: Double, keepFiringSince: Double?)
    /// Resolved at `resolvedAt` by this evaluation (a `resolved` event was emitted).
    case resolved(activeAt: Double, firedAt: Double, resolvedAt: Double)

    /// A short name for logs, APIs and `alert_histories.state`: `inactive`, `pending`, `firing`,
    /// `resolved`.
    public var name: String {
        switch self {
        case .inactive: return "inactive"
        case .pending: return "pending"
        case .firing: return "firing"
        case .resolved: return "resolved"
        }
    }
}

/// A notification to send, with the timestamps an Alertmanager webhook carries.
///
/// `startsAt` is the moment the instance **fired** (`firedAt`), not when it became pending, as
/// Prometheus sets `StartsAt: alert.FiredAt` when it sends alerts (`rules/manager.go`,
/// `SendAlerts`) and as reference case C13 requires. `endsAt` is the resolve time.
/// All timestamps are Unix seconds; `value` is the observation that triggered the event (`nil` on no data).
public enum AlertEvent: Sendable, Hashable, Codable {
    /// The instance started firing at `startsAt` (= this evaluation's `now`).
    case firing(startsAt: Double, value: Double?)
    /// Still firing; the repeat interval has elapsed since the last notification.
    case reminder(startsAt: Double, value: Double?)
    /// The instance that fired at `startsAt` resolved at `endsAt` (= this evaluation's `now`).
    case resolved(startsAt: Double, endsAt: Double, value: Double?)
}

/// The outcome of one evaluation: the state to persist and the notifications to enqueue.
public struct AlertEvaluationResult: Sendable, Hashable {
    /// The instance's new state.
    public var state: AlertInstanceState
    /// Notifications produced by this evaluation, in order (at most one today).
    public var events: [AlertEvent]

    public init(state: AlertInstanceState, events: [AlertEvent] = []) {
        self.state = state
        self.events = events
    }
}

/// The pure alert-instance state machine: `(previous state, observation, rule, now) → (state, events)`.
///
/// Semantics follow Prometheus alerting rules
/// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/) as implemented in
/// `rules/alerting.go` (`AlertingRule.Eval`) and `rules/manager.go`:
/// - the first true evaluation makes the instance pending with `activeAt = now`;
/// - it fires at the first evaluation with `now − activeAt ≥ for` (≥, so `for = 0` fires at once,
///   and C13 fires at 210 − 90 = 120);
/// - a pending instance whose condition turns false is dropped silently (no event, no resolved state);
/// - a firing instance whose condition turns false resolves, unless `keep_firing_for` > 0: then it
///   stays firing until `now − keepFiringSince ≥ keep_firing_for`, where `keepFiringSince` is the
///   first false evaluation of the current streak (a true evaluation clears it);
/// - with a resolve threshold (hysteresis), "false" for a firing instance means "the value crossed
///   the resolve threshold"; between the two thresholds it stays firing;
/// - while firing, a reminder goes out when `now − lastNotifiedAt ≥ repeatInterval` (≥ here, where
///   Prometheus's resend check is strict: the brief asks for ≥, and it makes reminders land on
///   evaluation ticks that are exact multiples of the interval).
///
/// No data is decided by ``AlertNoDataPolicy`` for threshold and rate rules; absence rules are true
/// exactly on no data. `now` should not go backwards between calls; if it does, no timer completes
/// early (differences are only compared with ≥ against non-negative durations).
/// Raising `for` on a firing rule does not demote it to pending (Prometheus does on reload); the
/// app may reset the state when it edits a rule.
public enum AlertStateMachine {

    /// Evaluates one instance at `now` (Unix seconds). Pure: no clock, no I/O.
    public static func evaluate(
        previous: AlertInstanceState,
        observation: AlertObservation,
        rule: AlertRuleParameters,
        now: Double
    ) -> AlertEvaluationResult {
        let value = observation.value
        switch previous {
        case .inactive, .resolved:
            // A resolved instance starts a new episode exactly like an inactive one (C13 at t=270).
            guard verdictToFire(observation, rule) == .holds else { return AlertEvaluationResult(state: .inactive) }
            return promoteIfDue(activeAt: now, rule: rule, now: now, value: value)

        case .pending(let activeAt):
            switch verdictToFire(observation, rule) {
            case .holds: return promoteIfDue(activeAt: activeAt, rule: rule, now: now, value: value)
            case .fails: return AlertEvaluationResult(state: .inactive)  // dropped silently
            case .unknown: return AlertEvaluationResult(state: previous)  // keep_last
            }

        case .firing(let activeAt, let firedAt, let lastNotifiedAt, let keepFiringSince):
            let verdict = verdictToStayFiring(observation, rule)
            var since = keepFiringSince
            switch verdict {
            case .holds:
                since = nil
            case .unknown:
                break  // keep_last: the countdown, if any, is paused
            case .fails:
                let streakStart = keepFiringSince ?? now
                // Prometheus keeps firing while `ts − KeepFiringSince < keepFiringFor`.
                guard rule.keepFiringFor > 0, now - streakStart < rule.keepFiringFor else {
                    return AlertEvaluationResult(
                        state: .resolved(activeAt: activeAt, firedAt: firedAt, resolvedAt: now),
                        events: [.resolved(startsAt: firedAt, endsAt: now, value: value)])
                }
                since = streakStart
            }
            var notified = lastNotifiedAt
            var events: [AlertEvent] = []
            if let repeatInterval = rule.repeatInterval, now - lastNotifiedAt >= repeatInterval {
                notified = now
                events.append(.reminder(startsAt: firedAt, value: value))
            }
            return AlertEvaluationResult(
                state: .firing(activeAt: activeAt, firedAt: firedAt, lastNotifiedAt: notified, keepFiringSince: since),
                events: events)
        }
    }

    /// Convenience for a whole series of evaluations (replays, tests): folds ``evaluate`` over
    /// `(now, observation)` pairs in order and returns each step's result.
    public static func replay(
        from initial: AlertInstanceState = .inactive,
        observations: [(now: Double, observation: AlertObservation)],
        rule: AlertRuleParameters
    ) -> [AlertEvaluationResult] {
        var state = initial
        return observations.map { step in
            let result = evaluate(previous: state, observation: step.observation, rule: rule, now: step.now)
            state = result.state
            return result
        }
    }

    // MARK: Private

    /// The outcome of testing a condition once. `unknown` only arises from `keep_last` on no data.
    private enum Verdict { case holds, fails, unknown }

    private static func promoteIfDue(
        activeAt: Double, rule: AlertRuleParameters, now: Double, value: Double?
    ) -> AlertEvaluationResult {
        guard now - activeAt >= rule.forDuration else { return AlertEvaluationResult(state: .pending(activeAt: activeAt)) }
        return AlertEvaluationResult(
            state: .firing(activeAt: activeAt, firedAt: now, lastNotifiedAt: now, keepFiringSince: nil),
            events: [.firing(startsAt: now, value: value)])
    }

    /// Is the firing condition true? Used for inactive and pending instances.
    private static func verdictToFire(_ observation: AlertObservation, _ rule: AlertRuleParameters) -> Verdict {
        switch (rule.condition, observation) {
        case (.absence, .noData): return .holds
        case (.absence, .value): return .fails
        case (.threshold(_, let op, let threshold), .value(let value)),
             (.rate(let op, let threshold), .value(let value)):
            return op.compare(value, threshold) ? .holds : .fails
        case (.threshold, .noData), (.rate, .noData):
            return noDataVerdict(rule.noData)
        }
    }

    /// Should a firing instance stay firing? Without a resolve threshold this is the firing
    /// condition; with one, it holds until the value crosses the resolve threshold.
    private static func verdictToStayFiring(_ observation: AlertObservation, _ rule: AlertRuleParameters) -> Verdict {
        guard let resolveThreshold = rule.resolveThreshold else { return verdictToFire(observation, rule) }
        switch (rule.condition, observation) {
        case (.threshold(_, let op, _), .value(let value)), (.rate(let op, _), .value(let value)):
            let crossed: Bool
            switch op {
            case .greaterThan, .greaterThanOrEqual: crossed = value < resolveThreshold
            case .lessThan, .lessThanOrEqual: crossed = value > resolveThreshold
            // Validation rejects hysteresis for these; fall back to the plain condition.
            case .equal, .notEqual: return verdictToFire(observation, rule)
            }
            return crossed ? .fails : .holds
        default:
            return verdictToFire(observation, rule)
        }
    }

    private static func noDataVerdict(_ policy: AlertNoDataPolicy) -> Verdict {
        switch policy {
        case .ok: return .fails
        case .alerting: return .holds
        case .keepLast: return .unknown
        }
    }
}
