import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import SQLKit

/// Evaluates active rules against `system_performance_metrics` at one instant, keeps each
/// (rule, series) instance's state in `alert_instances`, records episodes in `alert_histories`
/// and queues notifications in the `alert_notifications` outbox in the same transaction as the
/// state change. It never sends anything (``NotificationOutbox`` does).
///
/// Semantics (Prometheus alerting rules, via EDMMonitorCore's `AlertStateMachine`): threshold
/// compares the window aggregate; rate is the per-second increase over the window with counter
/// resets handled, **without** extrapolation (Prometheus `rate()` extrapolates to the window
/// edges; we report the observed increase only, reference case C15); absence fires when no
/// matching sample exists in the whole window (`absent_over_time`), one instance per rule and
/// matcher set; `for` pends from the first true evaluation and fires at the first evaluation at
/// or after it elapsed; a pending instance that turns false is dropped silently.
///
/// With several instances on one database, one evaluates at a time: the holder of the
/// `alert-evaluator` lease (``LeaseStore``), which expires after three evaluation intervals.
final class AlertEvaluator: Sendable {
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let settings: @Sendable () -> AlertingSettings
    let logger: Logger
    /// This instance's id as the evaluator lease holder.
    let instanceID = SchedulerConfiguration.defaultInstanceID()

    init(database: @escaping @Sendable () -> any Database, clock: any WallClock, settings: @escaping @Sendable () -> AlertingSettings, logger: Logger) {
        self.database = database
        self.clock = clock
        self.settings = settings
        self.logger = logger
    }

    // MARK: - Rules and series

    /// Parameters of `rule` for the state machine.
    /// - Throws: EDMMonitorCore's `AlertRuleError` for an invalid rule.
    static func parameters(of rule: AlertRule) throws -> AlertRuleParameters {
        let condition: AlertCondition
        switch rule.conditionType {
        case .absence:
            condition = .absence
        case .rate:
            condition = .rate(op: rule.comparisonOperator ?? .greaterThan, threshold: rule.thresholdValue ?? 0)
        case .threshold:
            condition = .threshold(aggregation: MetricAggregation(rawValue: rule.aggregation) ?? .last, op: rule.comparisonOperator ?? .greaterThan, threshold: rule.thresholdValue ?? 0)
        }
        return try AlertRuleParameters(
            condition: condition, window: Double(rule.timeWindowMinutes) * 60, forDuration: rule.forMinutes * 60,
            keepFiringFor: rule.keepFiringMinutes * 60, resolveThreshold: rule.resolveThreshold,
            repeatInterval: rule.repeatIntervalMinutes.map { $0 * 60 }, noData: AlertNoDataPolicy(rawValue: rule.noData) ?? .ok
        )
    }

    /// One series of a metric as stored: its tags and its samples in time order.
    struct StoredSeries: Sendable {
        var tags: [String: String]
        var samples: [MetricSample]

        /// The samples in `(end − length, end]` (Unix seconds): a slice found by binary search,
        /// since `samples` are in time order.
        func window(endingAt end: Double, length: Double) -> ArraySlice<MetricSample> {
            let start = end - length
            var low = 0, high = samples.count
            while low < high {
                let mid = (low + high) / 2
                if samples[mid].timestamp > start { high = mid } else { low = mid + 1 }
            }
            var upper = samples.count
            while upper > low && samples[upper - 1].timestamp > end { upper -= 1 }
            return samples[low..<upper]
        }
    }

    /// Loads the points of `metric` in `(now − window, now]` (`window` in seconds) in one
    /// statement and groups them into series in one pass: tags JSON is decoded once per distinct
    /// tags text, not once per point; texts that decode to the same tags (key order) are one series.
    /// - Returns: the series, each with its samples in time order.
    static func series(metric: String, window: Double, now: Date, sql: any SQLDatabase) async throws -> [StoredSeries] {
        struct Row: Decodable { var metric_value: Double; var tags: String; var timestamp: Date }
        let rows = try await sql.raw("""
            SELECT metric_value, CAST(tags AS TEXT) AS tags, "timestamp" FROM system_performance_metrics
            WHERE metric_name = \(bind: metric) AND "timestamp" > \(bind: now.addingTimeInterval(-window)) AND "timestamp" <= \(bind: now)
            ORDER BY "timestamp"
            """).all(decoding: Row.self)
        var byText: [String: Int] = [:]
        var byTags: [[String: String]: Int] = [:]
        var series: [StoredSeries] = []
        for row in rows {
            let index: Int
            if let known = byText[row.tags] {
                index = known
            } else {
                let tags = (try? JSONDecoder().decode([String: String].self, from: Data(row.tags.utf8))) ?? [:]
                if let same = byTags[tags] {
                    index = same
                } else {
                    index = series.count
                    series.append(StoredSeries(tags: tags, samples: []))
                    byTags[tags] = index
                }
                byText[row.tags] = index
            }
            series[index].samples.append(MetricSample(date: row.timestamp, value: row.metric_value))
        }
        return series
    }

    /// One series of a rule at one instant: its identity, tags and what the rule observes.
    struct Series: Sendable {
        var fingerprint: String
        var tags: [String: String]
        var observation: AlertObservation
    }

    /// The series `rule` looks at `now`, and the observation of each: the rule's tag matchers
    /// select stored series (`stored`, from ``series(metric:window:now:sql:)`` with a window at
    /// least the rule's); absence rules have one series (labels: the `=` matchers), other rules
    /// one per distinct tag set with a sample in the rule's window. Of the rule's `instances`
    /// (by fingerprint), those not inactive whose series sent nothing are series too (with no
    /// data), so that they can resolve; their tags are decoded only then. Used by evaluation
    /// and by "test now" (which passes none).
    static func series(of rule: AlertRule, ruleID: UUID, parameters params: AlertRuleParameters, stored: [StoredSeries], instances: [String: AlertInstanceRow], now: Date) -> [Series] {
        let end = now.timeIntervalSince1970
        let matchers = rule.tagMatchers
        let matching = stored.lazy.filter { series in matchers.allSatisfy { $0.matches(series.tags) } }
        if case .absence = params.condition {
            let labels = Dictionary(rule.tagMatchers.filter { $0.op == .equal }.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            let samples = matching.flatMap { $0.window(endingAt: end, length: params.window) }
            return [Series(fingerprint: fingerprint(ruleID: ruleID, tags: labels), tags: labels, observation: params.observation(of: Array(samples), at: end))]
        }
        var result: [Series] = []
        var seen = Set<String>()
        for series in matching {
            let samples = series.window(endingAt: end, length: params.window)
            guard !samples.isEmpty else { continue }
            let print = fingerprint(ruleID: ruleID, tags: series.tags)
            seen.insert(print)
            result.append(Series(fingerprint: print, tags: series.tags, observation: params.observation(of: Array(samples), at: end)))
        }
        for (print, row) in instances where !row.isInactive && !seen.contains(print) {
            result.append(Series(fingerprint: print, tags: row.decodedTags, observation: params.observation(of: [], at: end)))
        }
        return result
    }

    /// `FNV-1a` fingerprint of the series tags plus the rule id (instance identity).
    static func fingerprint(ruleID: UUID, tags: [String: String]) -> String {
        LabelSetFingerprint(labels: tags.merging(["__rule_id__": ruleID.uuidString.lowercased()]) { a, _ in a }).description
    }

    /// How often, at most, an instance whose state does not change has its `last_value` (and its
    /// episode's) rewritten: **N = 300 s**. Between those writes an unchanged instance costs no
    /// statement at all; a transition or a notification is always written at once.
    static let lastValueRefreshSeconds: Double = 300

    /// The instant `date` rounded to the millisecond: the one rounding every evaluation instant
    /// gets, so that the stored `triggered_at` (microseconds on PostgreSQL), the API's ISO 8601
    /// text and the webhook's RFC 3339 text all name the same millisecond.
    static func millisecond(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    // MARK: - One cycle

    /// Takes or renews the `alert-evaluator` lease for three evaluation intervals (at least 30 s).
    func acquireLease(now: Date, sql: any SQLDatabase) async throws -> Bool {
        let expires = now.addingTimeInterval(max(30, settings().evaluationIntervalSeconds * 3))
        return try await LeaseStore(sql: sql).acquire(LeaseStore.alertEvaluator, holder: instanceID, expires: expires, now: now)
    }

    /// One iteration over every active rule, every rule evaluated at the same instant: `slot`
    /// (the rule group's slot, ``RuleGroupSchedule``) or the clock's now, rounded to the
    /// millisecond (``millisecond(_:)``). Each metric is read once for all its rules (one
    /// statement), instances are looked up by fingerprint, and only what changed is written: a
    /// transition or a notification in its own transaction (``apply``), an unchanged instance's
    /// value at most every ``lastValueRefreshSeconds`` (one transaction for all of them).
    /// Does nothing (and reports `skipped`) while another instance holds the evaluator lease, or
    /// `disabled` while alerting is off.
    /// - Throws: the database's error; a change is written in its own transaction, so a failure
    ///   leaves every instance either before or after its change.
    func evaluateOnce(at slot: Date? = nil) async throws -> AlertEvaluationReport {
        let db = database()
        let sql = db.sql
        let now = Self.millisecond(slot ?? clock.now())
        let settings = self.settings()
        var report = AlertEvaluationReport()
        guard settings.enabled else {
            report.disabled = true
            return report
        }
        guard try await acquireLease(now: now, sql: sql) else {
            report.skipped = true
            return report
        }
        let silences = try await Silence.query(on: db).filter(\.$endsAt > now).all()
        let rules = try await AlertRule.query(on: db).filter(\.$isActive == true).all()
        var instances: [UUID: [String: AlertInstanceRow]] = [:]
        for row in try await AlertInstanceStore(sql: sql).all() { instances[row.rule_id, default: [:]][row.fingerprint] = row }
        var refreshes: [AlertInstanceStore.ValueRefresh] = []
        for (metric, group) in Dictionary(grouping: rules, by: \.metricName) {
            let window = group.map { Double($0.timeWindowMinutes) * 60 }.max() ?? 0
            let stored = try await Self.series(metric: metric, window: window, now: now, sql: sql)
            report.metricQueries += 1
            for rule in group {
                guard let ruleID = rule.id, let params = try? Self.parameters(of: rule) else { continue }
                report.rules += 1
                let ruleInstances = instances[ruleID] ?? [:]
                for series in Self.series(of: rule, ruleID: ruleID, parameters: params, stored: stored, instances: ruleInstances, now: now) {
                    let existing = ruleInstances[series.fingerprint]
                    let previous = existing?.decodedState ?? .inactive
                    let result = AlertStateMachine.evaluate(previous: previous, observation: series.observation, rule: params, now: now.timeIntervalSince1970)
                    if existing == nil && result.state == .inactive { continue }
                    report.instances += 1
                    let silenced = !silences.isEmpty && silences.contains { $0.mutes(AlertTemplating.labels(rule: rule, tags: series.tags), at: now) }
                    var changed = !result.events.isEmpty || result.state != previous
                    if !changed, case .firing = result.state, let status = existing?.history_status {
                        // A silence began or ended while it fires: the episode's status changes.
                        changed = (status == AlertHistory.Status.suppressed.rawValue && !silenced) || (status == AlertHistory.Status.active.rawValue && silenced)
                    }
                    if changed {
                        try await apply(result, rule: rule, series: series, existing: existing, silenced: silenced, externalURL: settings.externalURL, now: now, db: db)
                        report.writes += 1
                    } else if result.state != .inactive, let existing,
                              now.timeIntervalSince(existing.updated_at ?? .distantPast) >= Self.lastValueRefreshSeconds {
                        refreshes.append(.init(ruleID: ruleID, fingerprint: series.fingerprint, historyID: existing.history_id, value: series.observation.value))
                    }
                    for event in result.events {
                        switch event {
                        case .firing: report.firing += 1
                        case .resolved: report.resolved += 1
                        case .reminder: report.reminders += 1
                        }
                    }
                }
            }
        }
        if !refreshes.isEmpty {
            let batch = refreshes
            try await db.transaction { tx in try await AlertInstanceStore(sql: tx.sql).refreshValues(batch, now: now) }
            report.valueRefreshes = refreshes.count
        }
        return report
    }

    /// Persists the new state and, in the same transaction, the episode and its notifications.
    ///
    /// Silences: an episode that starts silenced is `suppressed` and notifies no one; one that
    /// becomes silenced stops its reminders; when the silence ends while it still fires, it
    /// becomes `active` and the firing notification goes out then; a suppressed episode that
    /// resolves notifies no one (nobody was told it fired).
    func apply(_ result: AlertEvaluationResult, rule: AlertRule, series: Series, existing: AlertInstanceRow?, silenced: Bool, externalURL: String, now: Date, db: any Database) async throws {
        let ruleID = try rule.requireID()
        let tags = series.tags
        let value = series.observation.value
        let channels = rule.channels
        try await db.transaction { tx in
            let outbox = AlertNotificationStore(sql: tx.sql)
            var historyID = existing?.history_id
            for event in result.events {
                switch event {
                case .firing(let startsAt, let value):
                    let history = AlertHistory()
                    history.$rule.id = ruleID
                    history.triggeredAt = Date(timeIntervalSince1970: startsAt)
                    history.status = silenced ? .suppressed : .active
                    history.triggerValue = value
                    history.lastValue = value
                    history.fingerprint = series.fingerprint
                    history.tags = tags
                    let alert = AlertTemplating.outgoing(rule: rule, tags: tags, value: value, startsAt: history.triggeredAt, endsAt: nil, externalURL: externalURL)
                    history.message = alert.annotations["summary"] ?? rule.name
                    history.createdAt = now
                    history.updatedAt = now
                    try await history.create(on: tx)
                    historyID = history.id
                    if !silenced {
                        try await outbox.enqueue(.firing, alert: alert, channels: channels, historyID: try history.requireID(), now: now)
                    }
                case .reminder(let startsAt, let value):
                    guard let id = historyID, let history = try await AlertHistory.find(id, on: tx) else { continue }
                    history.lastValue = value
                    history.updatedAt = now
                    try await history.save(on: tx)
                    if history.status == .acknowledged || history.status == .suppressed || silenced { continue }  // no reminders
                    let alert = AlertTemplating.outgoing(rule: rule, tags: tags, value: value, startsAt: Date(timeIntervalSince1970: startsAt), endsAt: nil, externalURL: externalURL)
                    try await outbox.enqueue(.reminder, alert: alert, channels: channels, historyID: id, now: now)
                case .resolved(let startsAt, let endsAt, let value):
                    guard let id = historyID, let history = try await AlertHistory.find(id, on: tx) else { continue }
                    let wasSuppressed = history.status == .suppressed
                    // A resolved notification carries the annotations of the last firing
                    // evaluation, as Prometheus sends them (reference case C17).
                    let firingValue = history.lastValue ?? history.triggerValue
                    history.status = .resolved
                    history.resolvedAt = Date(timeIntervalSince1970: endsAt)
                    history.lastValue = value
                    history.updatedAt = now
                    try await history.save(on: tx)
                    if !wasSuppressed {
                        let alert = AlertTemplating.outgoing(rule: rule, tags: tags, value: firingValue, startsAt: Date(timeIntervalSince1970: startsAt), endsAt: history.resolvedAt, externalURL: externalURL)
                        try await outbox.enqueue(.resolved, alert: alert, channels: channels, historyID: id, now: now)
                    }
                    historyID = nil
                }
            }
            if case .firing = result.state, let id = historyID, let history = try await AlertHistory.find(id, on: tx) {
                history.lastValue = value ?? history.lastValue
                history.updatedAt = now
                if history.status == .suppressed && !silenced {
                    // The silence ended while it still fires: tell the receivers now.
                    history.status = .active
                    let alert = AlertTemplating.outgoing(rule: rule, tags: tags, value: value, startsAt: history.triggeredAt, endsAt: nil, externalURL: externalURL)
                    try await outbox.enqueue(.firing, alert: alert, channels: channels, historyID: id, now: now)
                } else if history.status == .active && silenced {
                    history.status = .suppressed
                }
                try await history.save(on: tx)
            }
            try await AlertInstanceStore(sql: tx.sql).upsert(ruleID: ruleID, fingerprint: series.fingerprint, tags: tags, state: result.state, historyID: historyID, value: value, now: now)
        }
    }
}
