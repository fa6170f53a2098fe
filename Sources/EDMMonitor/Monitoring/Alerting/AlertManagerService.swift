import AsyncHTTPClient
import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import Prometheus
import Synchronization

/// Alerting as the rest of the application sees it: the settings in force, the
/// ``AlertEvaluator`` (rules → state, history and queued notifications) and the
/// ``NotificationOutbox`` (queued notifications → receivers), and the health of evaluation.
///
/// It runs no loop of its own: the application's service group calls
/// ``runDueIteration()`` whenever ``secondsUntilNextIteration()`` reaches 0 — the rule group's
/// schedule (``RuleGroupSchedule``, reference case C31: slots every `evaluationIntervalSeconds`
/// on the grid from the Unix epoch, never overlapping, a late iteration followed by one run
/// stamped with the latest due slot, the skipped slots counted) — and ``deliverOnce(limit:)``
/// every `deliveryIntervalSeconds`.
///
/// Metrics (in the application's swift-prometheus registry, on `GET /metrics`):
/// `edm_alert_evaluation_duration_seconds` (histogram of iteration wall time) and
/// `edm_alert_evaluation_iterations_missed_total` (slots skipped, as Prometheus's
/// `prometheus_rule_group_iterations_missed_total`). The missed count is also stored as a point
/// of that name (tag `instance`, this process) after every iteration, so that the seeded
/// default rule "Alert evaluation missing iterations" can fire on it.
public final class AlertManagerService: Sendable {
    let evaluator: AlertEvaluator
    let outbox: NotificationOutbox
    let logger: Logger
    let clock: any WallClock
    private let settingsBox: SettingsBox
    /// Failures of whole evaluation cycles, logged once per streak; health reads its last error.
    private let evaluationStreak: FailureStreak
    /// The rule group's schedule: the last slot run and the slots missed.
    private let schedule = Mutex(RuleGroupSchedule())
    /// Where the missed-iterations point is stored; `nil`: not stored.
    private let store: MetricStore?
    private let durationHistogram: DurationHistogram?
    private let missedCounter: Counter?

    /// Upper bounds of the `edm_alert_evaluation_duration_seconds` buckets, seconds: from a few
    /// rules (milliseconds) to an iteration longer than the default 30 s interval.
    public static let durationBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60].map { .milliseconds(Int64($0 * 1000)) }

    /// The metric (a counter, Unix-seconds timestamped at the slot) the missed iterations are
    /// stored as, and the name on `GET /metrics`.
    public static let missedIterationsMetric = "edm_alert_evaluation_iterations_missed_total"

    /// - Parameters:
    ///   - store: where the missed-iterations point goes after each iteration (`nil`: nowhere).
    ///   - registry: the swift-prometheus registry of `GET /metrics` (`nil`: no histogram, counter).
    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, httpClient: HTTPClient, mailers: any MailerFactory, outbound: OutboundPolicy = .init(), settings: AlertingSettings = .init(),
                store: MetricStore? = nil, registry: PrometheusCollectorRegistry? = nil, logger: Logger = Logger(label: "edm.alerting")) {
        let box = SettingsBox(settings)
        settingsBox = box
        self.logger = logger
        self.clock = clock
        self.store = store
        durationHistogram = registry?.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "edm", subsystem: "alert", metricName: "evaluation_duration", unitName: "seconds",
                                             helpText: "Wall time of one alert evaluation iteration (every active rule at one slot), seconds."),
            buckets: Self.durationBuckets)
        missedCounter = registry?.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "edm", subsystem: "alert", metricName: "evaluation_iterations_missed", unitName: "total",
                                             helpText: "Evaluation slots skipped because the previous iteration ran past them (never run later)."))
        evaluationStreak = FailureStreak(subject: "alert evaluation", logger: logger)
        let current: @Sendable () -> AlertingSettings = { box.value.withLock { $0 } }
        evaluator = AlertEvaluator(database: database, clock: clock, settings: current, logger: logger)
        outbox = NotificationOutbox(database: database, clock: clock,
                                    senders: NotificationSenders(database: database, httpClient: httpClient, mailers: mailers, outbound: outbound, logger: logger),
                                    settings: current, logger: logger)
    }

    /// The settings in force.
    public var settings: AlertingSettings {
        get { settingsBox.value.withLock { $0 } }
        set { settingsBox.value.withLock { $0 = newValue } }
    }

    /// The error of the last evaluation cycle, `nil` when it succeeded (the health check and the
    /// evaluator meta-alert read it).
    public var lastEvaluationError: String? { evaluationStreak.lastError }

    /// One evaluation cycle at the clock's instant (see ``AlertEvaluator/evaluateOnce(at:)``).
    public func evaluateOnce() async throws -> AlertEvaluationReport {
        try await evaluator.evaluateOnce()
    }

    /// One evaluation cycle with every rule evaluated at `slot`.
    public func evaluateOnce(at slot: Date) async throws -> AlertEvaluationReport {
        try await evaluator.evaluateOnce(at: slot)
    }

    /// One iteration of the rule group, when one is due at the clock's now: stamped with the
    /// latest due slot, counting the slots skipped since the last one (``RuleGroupSchedule``).
    /// Records its duration and missed slots in the metrics and stores the missed total as a
    /// point at the slot before evaluating (a failure to store it is logged at debug level and
    /// changes nothing else).
    /// - Returns: `nil` when no slot is due yet.
    /// - Throws: the evaluation's error (also logged once per streak, see
    ///   ``evaluateOnceRecordingErrors()``).
    @discardableResult
    public func runDueIteration() async throws -> AlertIteration? {
        let interval = max(1, settings.evaluationIntervalSeconds)
        let now = clock.now().timeIntervalSince1970
        let due = schedule.withLock { schedule -> (slot: Double, missed: Int, total: Int)? in
            guard case .run(let slot, let missed) = schedule.decision(at: now, interval: interval) else { return nil }
            schedule.started(slot: slot, missed: missed)
            return (slot, missed, schedule.missedTotal)
        }
        guard let due else { return nil }
        if due.missed > 0 {
            missedCounter?.increment(by: Int64(due.missed))
            logger.warning("alert evaluation missed \(due.missed) slot\(due.missed == 1 ? "" : "s") of \(interval) s: the previous iteration ran past them")
        }
        let slot = Date(timeIntervalSince1970: due.slot)
        let started = ContinuousClock.now
        defer { durationHistogram?.record(ContinuousClock.now - started) }
        if let store, settings.enabled {
            // Stored before the evaluation, at the slot, so that this iteration's rules see it.
            let point = MetricPoint(name: Self.missedIterationsMetric, value: Double(due.total), unit: "count", tags: ["instance": evaluator.instanceID], timestamp: slot)
            do { try await store.insert([point], on: evaluator.database()) } catch {
                // The evaluation below fails the same way and is logged once per streak.
                logger.debug("cannot store \(Self.missedIterationsMetric)", metadata: ["error": "\(error)"])
            }
        }
        let report = try await evaluateOnceRecordingErrors(at: slot)
        return AlertIteration(slot: slot, missed: due.missed, report: report)
    }

    /// Seconds from the clock's now until the next slot is due (0: one is due now).
    public func secondsUntilNextIteration() -> Double {
        let interval = max(1, settings.evaluationIntervalSeconds)
        let now = clock.now().timeIntervalSince1970
        guard case .wait(let seconds) = schedule.withLock({ $0.decision(at: now, interval: interval) }) else { return 0 }
        return seconds
    }

    /// Slots skipped since this service started (the value of
    /// `edm_alert_evaluation_iterations_missed_total`).
    public var missedIterations: Int { schedule.withLock { $0.missedTotal } }

    /// ``evaluateOnce()`` with the failure streak logged once (``FailureStreak``) and remembered
    /// in ``lastEvaluationError``. An evaluation that fails (database unreachable) changes no state
    /// and resolves nothing.
    public func evaluateOnceRecordingErrors(at slot: Date? = nil) async throws -> AlertEvaluationReport {
        do {
            let report = try await evaluator.evaluateOnce(at: slot)
            evaluationStreak.succeeded()
            return report
        } catch {
            evaluationStreak.failed(error)
            throw error
        }
    }

    /// One delivery pass over the outbox (see ``NotificationOutbox/deliverOnce(limit:)``).
    /// - Returns: how many notifications were delivered.
    @discardableResult
    public func deliverOnce(limit: Int = 100) async throws -> Int {
        try await outbox.deliverOnce(limit: limit)
    }
}

/// One iteration of the rule group (``AlertManagerService/runDueIteration()``).
public struct AlertIteration: Sendable, Equatable {
    /// The slot every rule was evaluated at.
    public var slot: Date
    /// Slots skipped just before this one.
    public var missed: Int
    /// What the evaluation did.
    public var report: AlertEvaluationReport
}

/// The settings in force, shared by the service, its evaluator and its outbox.
private final class SettingsBox: Sendable {
    let value: Mutex<AlertingSettings>
    init(_ settings: AlertingSettings) { value = Mutex(settings) }
}
