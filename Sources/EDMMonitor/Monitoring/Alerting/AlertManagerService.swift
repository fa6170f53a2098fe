import AsyncHTTPClient
import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import Mustache
import NIOCore
import NIOHTTP1
import SQLKit
import Synchronization

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
    public var firing = 0
    public var resolved = 0
    public var reminders = 0
    /// Another instance holds the evaluator lease; nothing was evaluated.
    public var skipped = false
    /// Alerting is disabled; nothing was evaluated.
    public var disabled = false
}

/// The alert manager: evaluates active rules against `system_performance_metrics`, keeps each
/// (rule, series) instance's state in `alert_instances`, records episodes in `alert_histories`
/// and queues notifications in the `alert_notifications` outbox in the same transaction as the
/// state change; ``deliverOnce()`` drains the outbox with retries.
///
/// Semantics (Prometheus alerting rules, via EDMMonitorCore's `AlertStateMachine`): threshold
/// compares the window aggregate; rate is the per-second increase over the window with counter
/// resets handled, **without** extrapolation (Prometheus `rate()` extrapolates to the window
/// edges; we report the observed increase only, reference case C15); absence fires when no
/// matching sample exists in the whole window (`absent_over_time`), one instance per rule and
/// matcher set; `for` pends from the first true evaluation and fires at the first evaluation at
/// or after it elapsed; a pending instance that turns false is dropped silently.
///
/// An evaluation that fails (database unreachable) changes no state and resolves nothing; the
/// error is logged once per failure streak and reported by ``lastEvaluationError``.
public final class AlertManagerService: Sendable {
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let httpClient: HTTPClient
    let outbound: OutboundPolicy
    let mailers: any MailerFactory
    let logger: Logger
    private let settingsBox: Mutex<AlertingSettings>
    private let errorState = Mutex<String?>(nil)

    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, httpClient: HTTPClient, mailers: any MailerFactory, outbound: OutboundPolicy = .init(), settings: AlertingSettings = .init(), logger: Logger = Logger(label: "edm.alerting")) {
        self.outbound = outbound
        self.database = database
        self.clock = clock
        self.httpClient = httpClient
        self.mailers = mailers
        self.settingsBox = Mutex(settings)
        self.logger = logger
    }

    /// The settings in force.
    public var settings: AlertingSettings {
        get { settingsBox.withLock { $0 } }
        set { settingsBox.withLock { $0 = newValue } }
    }

    /// The error of the last evaluation cycle, `nil` when it succeeded (the health check and the
    /// evaluator meta-alert read it).
    public var lastEvaluationError: String? { errorState.withLock { $0 } }

    /// ``evaluateOnce()`` with the failure streak logged once and remembered.
    public func evaluateOnceRecordingErrors() async throws -> AlertEvaluationReport {
        do {
            let report = try await evaluateOnce()
            let was = errorState.withLock { e in defer { e = nil }; return e }
            if was != nil { logger.notice("alert evaluation recovered") }
            return report
        } catch {
            let text = DatabaseErrorText.describe(error)
            let first = errorState.withLock { e in defer { e = text }; return e == nil }
            if first { logger.error("alert evaluation failed; no alert state changed", metadata: ["error": "\(text)"]) }
            throw error
        }
    }

    // MARK: - Evaluation

    /// Parameters of `rule` for the state machine. - Throws: `AlertRuleError` for an invalid rule.
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

    struct Point: Sendable { var tags: [String: String]; var sample: MetricSample }

    /// Loads the points of `metric` in `(now − window, now]`, tags parsed.
    func points(metric: String, window: Double, now: Date, sql: any SQLDatabase) async throws -> [Point] {
        struct Row: Decodable { var metric_value: Double; var tags: String; var timestamp: Date }
        let rows = try await sql.raw("""
            SELECT metric_value, CAST(tags AS TEXT) AS tags, "timestamp" FROM system_performance_metrics
            WHERE metric_name = \(bind: metric) AND "timestamp" > \(bind: now.addingTimeInterval(-window)) AND "timestamp" <= \(bind: now)
            """).all(decoding: Row.self)
        return rows.map { row in
            let tags = (try? JSONDecoder().decode([String: String].self, from: Data(row.tags.utf8))) ?? [:]
            return Point(tags: tags, sample: MetricSample(date: row.timestamp, value: row.metric_value))
        }
    }

    /// This instance's id as the evaluator lease holder.
    let instanceID = SchedulerConfiguration.defaultInstanceID()

    /// Takes or renews the `alert-evaluator` lease (one atomic upsert, as service reservations):
    /// with several instances on one database exactly one evaluates at a time; a dead holder's
    /// lease expires after three evaluation intervals.
    func acquireEvaluatorLease(now: Date, sql: any SQLDatabase) async throws -> Bool {
        let expires = now.addingTimeInterval(max(30, settings.evaluationIntervalSeconds * 3))
        let rows = try await sql.raw("""
            INSERT INTO leases (name, holder, expires_at) VALUES ('alert-evaluator', \(bind: instanceID), \(bind: expires))
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE leases.holder = excluded.holder OR leases.expires_at <= \(bind: now)
            RETURNING holder
            """).all()
        return !rows.isEmpty
    }

    /// One cycle over every active rule; each metric is read once for all its rules. Does
    /// nothing (and reports `skipped`) while another instance holds the evaluator lease.
    public func evaluateOnce() async throws -> AlertEvaluationReport {
        let db = database()
        let sql = db.sql
        let now = clock.now()
        var report = AlertEvaluationReport()
        guard settings.enabled else {
            report.disabled = true
            return report
        }
        guard try await acquireEvaluatorLease(now: now, sql: sql) else {
            report.skipped = true
            return report
        }
        let silences = try await Silence.query(on: db).filter(\.$endsAt > now).all()
        let rules = try await AlertRule.query(on: db).filter(\.$isActive == true).all()
        let instances = try await AlertInstanceRow.all(on: sql)
        for (metric, group) in Dictionary(grouping: rules, by: \.metricName) {
            let window = group.map { Double($0.timeWindowMinutes) * 60 }.max() ?? 0
            let points = try await points(metric: metric, window: window, now: now, sql: sql)
            for rule in group {
                guard let ruleID = rule.id, let params = try? Self.parameters(of: rule) else { continue }
                report.rules += 1
                let inWindow = points.filter { point in
                    point.sample.timestamp > now.timeIntervalSince1970 - params.window && rule.tagMatchers.allSatisfy { $0.matches(point.tags) }
                }
                var series: [String: [String: String]] = [:]
                if case .absence = params.condition {
                    let labels = Dictionary(rule.tagMatchers.filter { $0.op == .equal }.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
                    series[Self.fingerprint(ruleID: ruleID, tags: labels)] = labels
                } else {
                    for point in inWindow { series[Self.fingerprint(ruleID: ruleID, tags: point.tags)] = point.tags }
                    // Instances whose series went quiet still need an evaluation to resolve.
                    for instance in instances where instance.rule_id == ruleID && instance.decodedState != .inactive {
                        series[instance.fingerprint] = series[instance.fingerprint] ?? instance.decodedTags
                    }
                }
                for (fingerprint, tags) in series {
                    let samples: [MetricSample]
                    let observation: AlertObservation
                    if case .absence = params.condition {
                        samples = inWindow.map(\.sample)
                        observation = params.observation(of: samples, at: now.timeIntervalSince1970)
                    } else {
                        samples = inWindow.filter { $0.tags == tags }.map(\.sample)
                        observation = params.observation(of: samples, at: now.timeIntervalSince1970)
                    }
                    let existing = instances.first { $0.rule_id == ruleID && $0.fingerprint == fingerprint }
                    let previous = existing?.decodedState ?? .inactive
                    let result = AlertStateMachine.evaluate(previous: previous, observation: observation, rule: params, now: now.timeIntervalSince1970)
                    if existing == nil && result.state == .inactive { continue }
                    report.instances += 1
                    let labels = Self.outgoing(rule: rule, tags: tags, value: nil, startsAt: now, endsAt: nil).labels
                    let silenced = silences.contains { $0.mutes(labels, at: now) }
                    try await apply(result, rule: rule, fingerprint: fingerprint, tags: tags, existing: existing, value: observation.value, silenced: silenced, now: now, db: db)
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
        return report
    }

    /// `FNV-1a` fingerprint of the series tags plus the rule id (instance identity).
    static func fingerprint(ruleID: UUID, tags: [String: String]) -> String {
        LabelSetFingerprint(labels: tags.merging(["__rule_id__": ruleID.uuidString.lowercased()]) { a, _ in a }).description
    }

    /// Persists the new state and, in the same transaction, the episode and its notifications.
    ///
    /// Silences: an episode that starts silenced is `suppressed` and notifies no one; one that
    /// becomes silenced stops its reminders; when the silence ends while it still fires, it
    /// becomes `active` and the firing notification goes out then; a suppressed episode that
    /// resolves notifies no one (nobody was told it fired).
    func apply(_ result: AlertEvaluationResult, rule: AlertRule, fingerprint: String, tags: [String: String], existing: AlertInstanceRow?, value: Double?, silenced: Bool, now: Date, db: any Database) async throws {
        let ruleID = try rule.requireID()
        let externalURL = settings.externalURL
        try await db.transaction { tx in
            let sql = tx.sql
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
                    history.fingerprint = fingerprint
                    history.tags = tags
                    let alert = Self.outgoing(rule: rule, tags: tags, value: value, startsAt: history.triggeredAt, endsAt: nil, externalURL: externalURL)
                    history.message = alert.annotations["summary"] ?? rule.name
                    history.createdAt = now
                    history.updatedAt = now
                    try await history.create(on: tx)
                    historyID = history.id
                    if !silenced {
                        try await self.enqueue(.firing, alert: alert, rule: rule, historyID: try history.requireID(), now: now, sql: sql)
                    }
                case .reminder(let startsAt, let value):
                    guard let id = historyID, let history = try await AlertHistory.find(id, on: tx) else { continue }
                    history.lastValue = value
                    history.updatedAt = now
                    try await history.save(on: tx)
                    if history.status == .acknowledged || history.status == .suppressed || silenced { continue }  // no reminders
                    let alert = Self.outgoing(rule: rule, tags: tags, value: value, startsAt: Date(timeIntervalSince1970: startsAt), endsAt: nil, externalURL: externalURL)
                    try await self.enqueue(.reminder, alert: alert, rule: rule, historyID: id, now: now, sql: sql)
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
                        let alert = Self.outgoing(rule: rule, tags: tags, value: firingValue, startsAt: Date(timeIntervalSince1970: startsAt), endsAt: history.resolvedAt, externalURL: externalURL)
                        try await self.enqueue(.resolved, alert: alert, rule: rule, historyID: id, now: now, sql: sql)
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
                    let alert = Self.outgoing(rule: rule, tags: tags, value: value, startsAt: history.triggeredAt, endsAt: nil, externalURL: externalURL)
                    try await self.enqueue(.firing, alert: alert, rule: rule, historyID: id, now: now, sql: sql)
                } else if history.status == .active && silenced {
                    history.status = .suppressed
                }
                try await history.save(on: tx)
            }
            try await AlertInstanceRow.upsert(ruleID: ruleID, fingerprint: fingerprint, tags: tags, state: result.state, historyID: historyID, value: value, now: now, sql: sql)
        }
    }

    /// The alert as notifications carry it: labels `alertname`, `severity`, the rule's labels and
    /// the series tags; annotations `summary` and `description` from the rule's templates (a
    /// template that fails falls back to a plain default).
    static func outgoing(rule: AlertRule, tags: [String: String], value: Double?, startsAt: Date, endsAt: Date?, externalURL: String = "") -> OutgoingAlert {
        var labels = tags
        labels.merge(rule.labels) { _, rule in rule }
        labels["alertname"] = rule.name
        labels["severity"] = rule.severity.rawValue
        let valueText = value.map { $0.formatted(.number.precision(.fractionLength(0...3)).grouping(.never)) } ?? "no data"
        let thresholdText = rule.thresholdValue.map { $0.formatted(.number.precision(.fractionLength(0...3)).grouping(.never)) } ?? ""
        let context: [String: Any] = ["value": valueText, "threshold": thresholdText, "labels": labels, "rule": ["name": rule.name, "metric_name": rule.metricName, "severity": rule.severity.rawValue]]
        let defaultSummary = "\(rule.name): \(rule.metricName) is \(valueText)" + (rule.comparisonOperator.map { " (\($0.rawValue) \(thresholdText))" } ?? "")
        func render(_ template: String?, fallback: String) -> String {
            guard let template, let compiled = try? MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template) else { return fallback }
            return compiled.render(context)
        }
        let annotations = [
            "summary": render(rule.summaryTemplate, fallback: defaultSummary),
            "description": render(rule.descriptionTemplate, fallback: rule.ruleDescription ?? defaultSummary),
        ]
        let path = rule.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? rule.name
        let generatorURL = externalURL.isEmpty ? "" : externalURL.trimmingSuffix("/") + "/alerts/rules/" + path
        return OutgoingAlert(labels: labels, annotations: annotations, startsAt: startsAt, endsAt: endsAt, generatorURL: generatorURL)
    }

    enum NotificationKind: String { case firing, reminder, resolved }

    func enqueue(_ kind: NotificationKind, alert: OutgoingAlert, rule: AlertRule, historyID: UUID, now: Date, sql: any SQLDatabase) async throws {
        let channels = rule.notificationChannels.compactMap { value -> AlertChannel? in
            guard let data = try? JSONEncoder().encode(value) else { return nil }
            return try? JSONDecoder().decode(AlertChannel.self, from: data)
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        let alertJSON = String(decoding: try encoder.encode(StoredAlert(alert)), as: UTF8.self)
        // Sorted keys: the same channel must give the same text, since delivery order compares it.
        let channelEncoder = JSONEncoder()
        channelEncoder.outputFormatting = .sortedKeys
        for channel in channels where !(kind == .resolved && channel.sendResolved == false) {
            let channelJSON = String(decoding: try channelEncoder.encode(channel), as: UTF8.self)
            try await sql.raw("""
                INSERT INTO alert_notifications (id, history_id, channel, kind, alert, status, attempts, next_attempt_at, created_at)
                VALUES (\(bind: UUID()), \(bind: historyID), \(bind: channelJSON), \(bind: kind.rawValue), \(bind: alertJSON), 'pending', 0, \(bind: now), \(bind: now))
                """).run()
        }
    }

    /// An `OutgoingAlert` as stored in the outbox.
    struct StoredAlert: Codable {
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: Date
        var endsAt: Date?
        var generatorURL: String?
        init(_ a: OutgoingAlert) { labels = a.labels; annotations = a.annotations; startsAt = a.startsAt; endsAt = a.endsAt; generatorURL = a.generatorURL }
        var outgoing: OutgoingAlert { OutgoingAlert(labels: labels, annotations: annotations, startsAt: startsAt, endsAt: endsAt, generatorURL: generatorURL ?? "") }
    }

    // MARK: - Delivery

    /// Delivers due outbox notifications (at most `limit`), oldest first; a failure is retried
    /// with exponential backoff; a delivered notification is marked so and never sent again.
    /// A notification waits while an older one of the same alert to the same channel is still
    /// pending, so a receiver that was down never sees `resolved` before its `firing`
    /// (scripts/bench/receiver_outage.py found that order after a two-minute outage).
    /// - Returns: how many were delivered.
    @discardableResult
    public func deliverOnce(limit: Int = 100) async throws -> Int {
        let db = database()
        let sql = db.sql
        let now = clock.now()
        let settings = self.settings
        struct Row: Decodable { var id: UUID; var history_id: UUID; var channel: String; var kind: String; var alert: String; var attempts: Int; var created_at: Date }
        // Due rows, oldest first, except those behind an older pending row of the same alert and
        // channel that is not due yet; an older due row comes first in this list.
        let due = try await sql.raw("""
            SELECT n.id, n.history_id, n.channel, n.kind, n.alert, n.attempts, n.created_at FROM alert_notifications n
            WHERE n.status = 'pending' AND n.next_attempt_at <= \(bind: now)
              AND NOT EXISTS (SELECT 1 FROM alert_notifications o
                              WHERE o.history_id = n.history_id AND o.channel = n.channel AND o.status = 'pending'
                                AND o.next_attempt_at > \(bind: now)
                                AND (o.created_at < n.created_at OR (o.created_at = n.created_at AND o.id < n.id)))
            ORDER BY n.created_at, n.id LIMIT \(literal: limit)
            """).all(decoding: Row.self)
        var delivered = 0
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        /// (alert, channel) whose older notification failed in this pass: the newer ones wait.
        var blocked = Set<String>()
        for row in due {
            let key = "\(row.history_id) \(row.channel)"
            if blocked.contains(key) { continue }
            let outcome: Result<Void, DeliveryError>
            if let channel = try? JSONDecoder().decode(AlertChannel.self, from: Data(row.channel.utf8)),
               let stored = try? decoder.decode(StoredAlert.self, from: Data(row.alert.utf8)) {
                outcome = await deliver(stored.outgoing, kind: row.kind, via: channel, now: now)
            } else {
                outcome = .failure(DeliveryError("unreadable outbox row"))
            }
            switch outcome {
            case .success:
                delivered += 1
                try await sql.raw("UPDATE alert_notifications SET status = 'delivered', attempts = attempts + 1, delivered_at = \(bind: now), last_error = NULL WHERE id = \(bind: row.id)").run()
            case .failure(let error):
                blocked.insert(key)
                let attempts = row.attempts + 1
                let giveUp = now.timeIntervalSince(row.created_at) >= settings.giveUpAfterSeconds
                let delay = min(settings.maxBackoffSeconds, settings.retryBaseSeconds * pow(2, Double(attempts - 1)))
                try await sql.raw("""
                    UPDATE alert_notifications SET attempts = \(bind: attempts), last_error = \(bind: String(error.description.prefix(500))),
                        status = \(bind: giveUp ? "failed" : "pending"), next_attempt_at = \(bind: now.addingTimeInterval(delay))
                    WHERE id = \(bind: row.id)
                    """).run()
                if attempts == 1 || giveUp {
                    logger.warning("notification not delivered; will retry", metadata: ["notification_id": "\(row.id)", "error": "\(error.description)", "given_up": "\(giveUp)"])
                }
            }
        }
        return delivered
    }

    struct DeliveryError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    func deliver(_ alert: OutgoingAlert, kind: String, via channel: AlertChannel, now: Date) async -> Result<Void, DeliveryError> {
        do {
            switch channel.type {
            case .log:
                let level: Logger.Level = kind == "resolved" ? .notice : .warning
                logger.log(level: level, "alert \(kind)", metadata: ["labels": .dictionary(alert.labels.mapValues { .string($0) }), "summary": "\(alert.annotations["summary"] ?? "")"])
                return .success(())
            case .webhook:
                let payload = try AlertmanagerWebhookPayload.make(alerts: [alert], receiver: channel.receiver, groupBy: ["alertname"], externalURL: settings.externalURL, now: now)
                return try await post(try payload.jsonData(), to: channel.url ?? "")
            case .slack:
                let payload = try AlertmanagerWebhookPayload.make(alerts: [alert], receiver: channel.receiver, groupBy: ["alertname"], externalURL: settings.externalURL, now: now)
                return try await post(try JSONEncoder().encode(SlackWebhookMessage(payload: payload)), to: channel.url ?? "")
            case .alertmanager:
                let base = (channel.url ?? "").hasSuffix("/") ? String((channel.url ?? "").dropLast()) : (channel.url ?? "")
                return try await post(try AlertmanagerPostableAlert.bodyData(for: [alert]), to: base + "/api/v2/alerts")
            case .email:
                guard let serviceID = channel.serviceID, let to = channel.to, let service = try await EmailService.find(serviceID, on: database()) else {
                    return .failure(DeliveryError("the email channel's service does not exist"))
                }
                let mailer = try mailers.makeMailer(for: service)
                defer { Task { await mailer.close() } }
                let status = kind == "resolved" ? "RESOLVED" : "FIRING"
                let body = (["\(status): \(alert.annotations["summary"] ?? "")", "", alert.annotations["description"] ?? ""]
                    + alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "\n")
                let email = OutgoingEmail(fromAddress: service.senderAddress, fromName: service.senderName, toAddress: to, toName: nil,
                                          subject: "[\(status)] \(alert.labels["alertname"] ?? "alert")", textBody: body, htmlBody: nil,
                                          headers: [:], taskID: UUID(), subtaskID: UUID())
                switch await mailer.send(email) {
                case .sent: return .success(())
                case .transientFailure(let reason), .permanentFailure(let reason), .invalidMessage(let reason): return .failure(DeliveryError(reason))
                }
            }
        } catch {
            return .failure(DeliveryError("\(error)"))
        }
    }

    func post(_ body: Data, to url: String) async throws -> Result<Void, DeliveryError> {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await outbound.execute(request, on: httpClient, timeout: .seconds(10))
        } catch let refused as OutboundPolicy.Refused {
            return .failure(DeliveryError("\(refused)"))
        }
        _ = try? await response.body.collect(upTo: 64 * 1024)
        if (300..<400).contains(Int(response.status.code)) {
            return .failure(DeliveryError(OutboundPolicy.redirectRefusal(status: response.status.code, location: response.headers.first(name: "Location"))))
        }
        guard (200..<300).contains(Int(response.status.code)) else { return .failure(DeliveryError("HTTP \(response.status.code)")) }
        return .success(())
    }
}

extension String {
    /// The string without one trailing `suffix`.
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}

/// A row of `alert_instances`, read and written with SQLKit.
struct AlertInstanceRow: Decodable, Sendable {
    var rule_id: UUID
    var fingerprint: String
    var tags: String
    var state: String
    var history_id: UUID?

    var decodedState: AlertInstanceState { (try? JSONDecoder().decode(AlertInstanceState.self, from: Data(state.utf8))) ?? .inactive }
    var decodedTags: [String: String] { (try? JSONDecoder().decode([String: String].self, from: Data(tags.utf8))) ?? [:] }

    static func all(on sql: any SQLDatabase) async throws -> [AlertInstanceRow] {
        try await sql.raw("SELECT rule_id, fingerprint, tags, state, history_id FROM alert_instances").all(decoding: AlertInstanceRow.self)
    }

    static func upsert(ruleID: UUID, fingerprint: String, tags: [String: String], state: AlertInstanceState, historyID: UUID?, value: Double?, now: Date, sql: any SQLDatabase) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let stateJSON = String(decoding: try encoder.encode(state), as: UTF8.self)
        let tagsJSON = String(decoding: try encoder.encode(tags), as: UTF8.self)
        try await sql.raw("""
            INSERT INTO alert_instances (rule_id, fingerprint, tags, state, history_id, last_value, updated_at)
            VALUES (\(bind: ruleID), \(bind: fingerprint), \(bind: tagsJSON), \(bind: stateJSON), \(bind: historyID), \(bind: value), \(bind: now))
            ON CONFLICT (rule_id, fingerprint) DO UPDATE SET tags = excluded.tags, state = excluded.state,
                history_id = excluded.history_id, last_value = excluded.last_value, updated_at = excluded.updated_at
            """).run()
    }
}
