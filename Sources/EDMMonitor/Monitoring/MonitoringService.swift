import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import SQLKit
import Synchronization

/// The monitoring settings that can change while the server runs (`GET/PUT /api/monitoring/config`).
///
/// Keys, units and accepted ranges (JSON names):
///
/// | key | unit | range | start-up value |
/// |---|---|---|---|
/// | `task_monitoring_enabled` | bool | | `EDM_TASK_MONITORING_ENABLED` (true) |
/// | `system_monitoring_enabled` | bool | | `EDM_SYSTEM_MONITORING_ENABLED` (true) |
/// | `alerting_enabled` | bool | | `EDM_ALERTING_ENABLED` (true) |
/// | `collection_interval_seconds` | s | 1…3600 | `EDM_SYSTEM_MONITOR_INTERVAL_SECONDS` (15) |
/// | `evaluation_interval_seconds` | s | 1…3600 | 30 |
/// | `stuck_threshold_seconds` | s | 30…604800 | 600 |
/// | `progress_throttle_seconds` | s | 1…3600 | 30 |
/// | `metrics_raw_retention_days` | days | 0.01…3650 | `EDM_METRICS_RAW_RETENTION_DAYS` (7) |
/// | `metrics_rollup_1m_retention_days` | days | 0.01…3650, ≥ raw | `EDM_METRICS_ROLLUP_1M_RETENTION_DAYS` (30) |
/// | `metrics_rollup_1h_retention_days` | days | 0.01…3650, ≥ 1m | `EDM_METRICS_ROLLUP_1H_RETENTION_DAYS` (400) |
/// | `alert_history_retention_days` | days | 1…3650 | `EDM_ALERT_HISTORY_RETENTION_DAYS` (90) |
public struct MonitoringConfig: Sendable, Equatable {
    public var taskMonitoringEnabled = true
    public var systemMonitoringEnabled = true
    public var alertingEnabled = true
    public var collectionIntervalSeconds: Double = 15
    public var evaluationIntervalSeconds: Double = 30
    public var stuckThresholdSeconds: Double = 600
    public var progressThrottleSeconds: Double = 30
    public var metricsRawRetentionDays: Double = 7
    public var metricsRollup1mRetentionDays: Double = 30
    public var metricsRollup1hRetentionDays: Double = 400
    public var alertHistoryRetentionDays: Double = 90

    /// The built-in defaults of the table above.
    public init() {}

    /// The start-up values: the built-in defaults with the environment's settings applied.
    public init(settings: MetricSettings) {
        taskMonitoringEnabled = settings.taskMonitoringEnabled
        systemMonitoringEnabled = settings.systemMonitoringEnabled
        alertingEnabled = settings.alertingEnabled
        collectionIntervalSeconds = settings.collectorIntervalSeconds
        metricsRawRetentionDays = settings.rawRetentionDays
        metricsRollup1mRetentionDays = settings.minuteRollupRetentionDays
        metricsRollup1hRetentionDays = settings.hourRollupRetentionDays
        alertHistoryRetentionDays = settings.alertHistoryRetentionDays
    }

    /// One changeable setting: its JSON key and, for numbers, its accepted range.
    public struct Field: Sendable {
        public enum Kind: Sendable { case bool(WritableKeyPath<MonitoringConfig, Bool> & Sendable), number(WritableKeyPath<MonitoringConfig, Double> & Sendable, ClosedRange<Double>) }
        public var key: String
        public var kind: Kind
    }

    /// Every changeable setting, in the order the API lists them.
    public static let fields: [Field] = [
        .init(key: "task_monitoring_enabled", kind: .bool(\.taskMonitoringEnabled)),
        .init(key: "system_monitoring_enabled", kind: .bool(\.systemMonitoringEnabled)),
        .init(key: "alerting_enabled", kind: .bool(\.alertingEnabled)),
        .init(key: "collection_interval_seconds", kind: .number(\.collectionIntervalSeconds, 1...3600)),
        .init(key: "evaluation_interval_seconds", kind: .number(\.evaluationIntervalSeconds, 1...3600)),
        .init(key: "stuck_threshold_seconds", kind: .number(\.stuckThresholdSeconds, 30...604_800)),
        .init(key: "progress_throttle_seconds", kind: .number(\.progressThrottleSeconds, 1...3600)),
        .init(key: "metrics_raw_retention_days", kind: .number(\.metricsRawRetentionDays, 0.01...3650)),
        .init(key: "metrics_rollup_1m_retention_days", kind: .number(\.metricsRollup1mRetentionDays, 0.01...3650)),
        .init(key: "metrics_rollup_1h_retention_days", kind: .number(\.metricsRollup1hRetentionDays, 0.01...3650)),
        .init(key: "alert_history_retention_days", kind: .number(\.alertHistoryRetentionDays, 1...3650)),
    ]

    /// The value of `field` as JSON.
    public func value(of field: Field) -> JSONValue {
        switch field.kind {
        case .bool(let path): .bool(self[keyPath: path])
        case .number(let path, _): .number(self[keyPath: path])
        }
    }

    /// Sets `field` from JSON. - Returns: the reason `value` is refused, or `nil` once set.
    mutating func set(_ field: Field, to value: JSONValue) -> String? {
        switch (field.kind, value) {
        case (.bool(let path), .bool(let flag)):
            self[keyPath: path] = flag
        case (.number(let path, let range), .number(let number)):
            guard number.isFinite, range.contains(number) else { return "must be a number from \(Self.text(range.lowerBound)) to \(Self.text(range.upperBound))" }
            self[keyPath: path] = number
        case (.bool, _):
            return "must be true or false (or null for the start-up value)"
        case (.number(_, let range), _):
            return "must be a number from \(Self.text(range.lowerBound)) to \(Self.text(range.upperBound)) (or null for the start-up value)"
        }
        return nil
    }

    /// Rules across fields: retention must not shrink with coarser resolution.
    func crossFieldProblems() -> [APIErrorDetail] {
        var details: [APIErrorDetail] = []
        if metricsRollup1mRetentionDays < metricsRawRetentionDays {
            details.append(.init(field: "metrics_rollup_1m_retention_days", reason: "must be at least metrics_raw_retention_days (\(Self.text(metricsRawRetentionDays)))"))
        }
        if metricsRollup1hRetentionDays < metricsRollup1mRetentionDays {
            details.append(.init(field: "metrics_rollup_1h_retention_days", reason: "must be at least metrics_rollup_1m_retention_days (\(Self.text(metricsRollup1mRetentionDays)))"))
        }
        return details
    }

    /// The whole configuration as one JSON object, keys as in the table above.
    public var json: [String: JSONValue] {
        Dictionary(uniqueKeysWithValues: Self.fields.map { ($0.key, value(of: $0)) })
    }

    private static func text(_ number: Double) -> String {
        number.rounded() == number ? String(Int(number)) : String(number)
    }
}

/// Starts nothing itself but owns what the monitors run with: it loads the run-time monitoring
/// configuration (``MonitoringConfig``: start-up values plus the overrides stored in
/// `monitoring_config`), applies it to ``TaskMonitorService``, ``SystemMonitorService``,
/// ``AlertManagerService`` and the ``MetricStore``, and records every change with who made it
/// in `monitoring_config_changes`.
///
/// A change applies on this instance at once (each monitor reads its settings at the start of
/// its next cycle, and a loop waiting out a long interval notices a shorter one within a
/// second); other instances on the same database pick it up from ``reload()``, which `serve`
/// runs every ``reloadIntervalSeconds``.
public final class MonitoringService: Sendable {
    /// How often `serve` reloads the stored configuration (changes made on other instances).
    public static let reloadIntervalSeconds: Double = 10

    let database: @Sendable () -> any Database
    let clock: any WallClock
    let startup: MonitoringConfig
    let taskMonitor: TaskMonitorService
    let systemMonitor: SystemMonitorService
    let alerting: AlertManagerService
    let store: MetricStore
    let logger: Logger
    private let state: Mutex<(config: MonitoringConfig, overridden: Set<String>)>

    /// A service applying configuration to the given monitors; the start-up configuration is in
    /// force until ``reload()`` reads the stored overrides.
    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, startup: MonitoringConfig,
                taskMonitor: TaskMonitorService, systemMonitor: SystemMonitorService, alerting: AlertManagerService,
                store: MetricStore, logger: Logger = Logger(label: "edm.monitoring")) {
        self.database = database
        self.clock = clock
        self.startup = startup
        self.taskMonitor = taskMonitor
        self.systemMonitor = systemMonitor
        self.alerting = alerting
        self.store = store
        self.logger = logger
        self.state = Mutex((startup, []))
        apply(startup)
    }

    /// The configuration in force and the keys whose value was changed at run time.
    public var current: (config: MonitoringConfig, overridden: Set<String>) { state.withLock { $0 } }

    /// Reads the stored overrides and applies the result.
    /// - Returns: the configuration in force and the overridden keys.
    /// - Throws: the database's error (the configuration in force stays as it was).
    @discardableResult
    public func reload() async throws -> (config: MonitoringConfig, overridden: Set<String>) {
        let rows = try await database().sql.select().columns("key", "value").from("monitoring_config").all()
        var config = startup
        var overridden = Set<String>()
        for row in rows {
            let key = try row.decode(column: "key", as: String.self)
            let text = try row.decode(column: "value", as: String.self)
            guard let field = MonitoringConfig.fields.first(where: { $0.key == key }),
                  let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
                logger.warning("ignoring unknown or unreadable stored monitoring setting", metadata: ["key": "\(key)"])
                continue
            }
            var candidate = config
            if candidate.set(field, to: value) == nil {
                config = candidate
                overridden.insert(key)
            } else {
                logger.warning("ignoring out-of-range stored monitoring setting", metadata: ["key": "\(key)", "value": "\(text)"])
            }
        }
        if !config.crossFieldProblems().isEmpty {
            logger.warning("stored retention overrides contradict each other; using the start-up retention")
            config.metricsRawRetentionDays = startup.metricsRawRetentionDays
            config.metricsRollup1mRetentionDays = startup.metricsRollup1mRetentionDays
            config.metricsRollup1hRetentionDays = startup.metricsRollup1hRetentionDays
        }
        let previous = state.withLock { s in defer { s = (config, overridden) }; return s.config }
        if previous != config { apply(config) }
        return (config, overridden)
    }

    /// Validates and stores `changes` (key → new value, `null` = back to the start-up value),
    /// records each change of an effective value (old → new) in `monitoring_config_changes` in the same transaction, and
    /// applies the result. Keys not named keep their value; a value equal to the current one is
    /// not a change.
    /// - Returns: the configuration now in force and the overridden keys.
    /// - Throws: ``APIError`` 400 `validation_failed` listing every unknown key, wrong type,
    ///   out-of-range value and cross-field problem (nothing is stored then); the database's
    ///   error.
    @discardableResult
    public func update(_ changes: [String: JSONValue], by who: String, requestID: String?) async throws -> (config: MonitoringConfig, overridden: Set<String>) {
        let (current, overriddenBefore) = try await reload()
        var config = current
        var overridden = overriddenBefore
        var details: [APIErrorDetail] = []
        // key, effective value before and after, and the override to store (nil: remove it).
        var stored: [(key: String, old: JSONValue, new: JSONValue, override: JSONValue?)] = []
        for key in changes.keys.sorted() {
            guard let field = MonitoringConfig.fields.first(where: { $0.key == key }) else {
                details.append(.init(field: key, reason: "is not a monitoring setting; known: \(MonitoringConfig.fields.map(\.key).joined(separator: ", "))"))
                continue
            }
            let old = current.value(of: field)
            let value = changes[key]!
            if value == .null {
                guard overridden.contains(key) else { continue }
                _ = config.set(field, to: startup.value(of: field))
                overridden.remove(key)
                stored.append((key, old, startup.value(of: field), nil))
            } else if let problem = config.set(field, to: value) {
                details.append(.init(field: key, reason: problem))
            } else if config.value(of: field) != old {
                overridden.insert(key)
                stored.append((key, old, config.value(of: field), config.value(of: field)))
            }
        }
        details += config.crossFieldProblems()
        guard details.isEmpty else { throw APIError.validation("the monitoring configuration is invalid; nothing was changed", details) }
        guard !stored.isEmpty else { return (current, overriddenBefore) }

        let now = clock.now()
        let encoder = JSONEncoder()
        func text(_ value: JSONValue) -> String { (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null" }
        let rows = stored.map { (key: $0.key, old: text($0.old), new: text($0.new), override: $0.override.map(text)) }
        try await database().transaction { db in
            let sql = db.sql
            for change in rows {
                try await sql.delete(from: "monitoring_config").where("key", .equal, change.key).run()
                if let value = change.override {
                    try await sql.insert(into: "monitoring_config").columns("key", "value", "updated_at", "updated_by")
                        .values(SQLBind(change.key), SQLBind(value), SQLBind(now), SQLBind(who)).run()
                }
                let row = MonitoringConfigChange()
                row.key = change.key
                row.oldValue = change.old
                row.newValue = change.new
                row.changedBy = who
                row.changedAt = now
                row.requestID = requestID
                try await row.create(on: db)
            }
        }
        for change in rows {
            logger.notice("monitoring setting changed", metadata: [
                "key": "\(change.key)", "old": "\(change.old)", "new": "\(change.new)",
                "override": "\(change.override == nil ? "removed (start-up value)" : "stored")", "by": "\(who)",
            ])
        }
        return try await reload()
    }

    /// Pushes `config` into the monitors.
    private func apply(_ config: MonitoringConfig) {
        var task = taskMonitor.settings
        task.enabled = config.taskMonitoringEnabled
        task.stuckThresholdSeconds = config.stuckThresholdSeconds
        task.progressIntervalSeconds = config.progressThrottleSeconds
        taskMonitor.settings = task
        var alert = alerting.settings
        alert.enabled = config.alertingEnabled
        alert.evaluationIntervalSeconds = config.evaluationIntervalSeconds
        alerting.settings = alert
        systemMonitor.enabled = config.systemMonitoringEnabled
        systemMonitor.interval = config.collectionIntervalSeconds
        var retention = store.configuration
        retention.rawRetention = config.metricsRawRetentionDays * 86_400
        retention.minuteRollupRetention = config.metricsRollup1mRetentionDays * 86_400
        retention.hourRollupRetention = config.metricsRollup1hRetentionDays * 86_400
        retention.alertHistoryRetention = config.alertHistoryRetentionDays * 86_400
        store.configuration = retention
    }
}
