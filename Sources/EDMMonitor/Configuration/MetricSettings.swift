import Foundation

/// Metric store and system monitor settings, from the environment (part of ``Settings``).
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `EDM_METRICS_RAW_RETENTION_DAYS` | `7` | raw points in `system_performance_metrics` |
/// | `EDM_METRICS_ROLLUP_1M_RETENTION_DAYS` | `30` | 1-minute rollups |
/// | `EDM_METRICS_ROLLUP_1H_RETENTION_DAYS` | `400` | 1-hour rollups |
/// | `EDM_METRICS_CLEANUP_INTERVAL_SECONDS` | `600` | how often `serve` deletes what is older |
/// | `EDM_SYSTEM_MONITOR_INTERVAL_SECONDS` | `15` | how often `serve` collects host, process, database and queue figures |
/// | `EDM_ALERT_HISTORY_RETENTION_DAYS` | `90` | resolved alert episodes and their notification log |
/// | `EDM_TASK_MONITORING_ENABLED` | `true` | record task lifecycle metrics and detect stuck tasks |
/// | `EDM_SYSTEM_MONITORING_ENABLED` | `true` | run the host, process, database, queue and API collectors |
/// | `EDM_ALERTING_ENABLED` | `true` | evaluate alert rules |
/// | `EDM_METRICS_REQUIRE_TOKEN` | `false` | `/metrics` needs a viewer token (once tokens exist) |
///
/// The first seven and the three switches are the start-up values of the run-time monitoring
/// configuration (``MonitoringConfig``, `PUT /api/monitoring/config`); a value changed there is
/// stored and wins over the environment until it is reset (`null`).
///
/// Days may be fractional (`0.5`); every value must be a finite number > 0, and the retentions
/// must not shrink with coarser resolution (raw ≤ 1m ≤ 1h), else a chart would find data at fine
/// resolution that its coarse one has already lost.
public struct MetricSettings: Sendable, Equatable {
    /// Raw point retention, days.
    public var rawRetentionDays: Double
    /// 1-minute rollup retention, days.
    public var minuteRollupRetentionDays: Double
    /// 1-hour rollup retention, days.
    public var hourRollupRetentionDays: Double
    /// Seconds between cleanup runs.
    public var cleanupIntervalSeconds: Double
    /// Seconds between system monitor cycles.
    public var collectorIntervalSeconds: Double = 15
    /// Resolved alert history retention, days.
    public var alertHistoryRetentionDays: Double = 90
    /// Whether task monitoring starts enabled.
    public var taskMonitoringEnabled = true
    /// Whether system monitoring starts enabled.
    public var systemMonitoringEnabled = true
    /// Whether alert evaluation starts enabled.
    public var alertingEnabled = true
    /// Whether `GET /metrics` needs a viewer token (it is open by default, for Prometheus).
    public var metricsRequireToken = false

    /// The defaults of the table above.
    public static let defaults = MetricSettings(rawRetentionDays: 7, minuteRollupRetentionDays: 30, hourRollupRetentionDays: 400, cleanupIntervalSeconds: 600)

    /// Memberwise.
    public init(rawRetentionDays: Double, minuteRollupRetentionDays: Double, hourRollupRetentionDays: Double, cleanupIntervalSeconds: Double) {
        self.rawRetentionDays = rawRetentionDays
        self.minuteRollupRetentionDays = minuteRollupRetentionDays
        self.hourRollupRetentionDays = hourRollupRetentionDays
        self.cleanupIntervalSeconds = cleanupIntervalSeconds
    }

    /// The store configuration these settings describe.
    public var storeConfiguration: MetricStoreConfiguration {
        var configuration = MetricStoreConfiguration(rawRetention: rawRetentionDays * 86_400, minuteRollupRetention: minuteRollupRetentionDays * 86_400,
                                                     hourRollupRetention: hourRollupRetentionDays * 86_400, cleanupInterval: cleanupIntervalSeconds)
        configuration.alertHistoryRetention = alertHistoryRetentionDays * 86_400
        return configuration
    }

    /// Reads the variables of the table above from `environment`; unset or empty ones keep
    /// their defaults.
    /// - Throws: ``SettingsError`` naming the first malformed variable.
    public static func load(environment: [String: String]) throws -> MetricSettings {
        var settings = MetricSettings.defaults
        func number(_ name: String, _ keyPath: WritableKeyPath<MetricSettings, Double>) throws {
            guard let raw = environment[name], !raw.isEmpty else { return }
            guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0 else {
                throw SettingsError(setting: name, value: raw, reason: "not a number > 0", accepted: "a number greater than 0, e.g. 7 or 0.5")
            }
            settings[keyPath: keyPath] = value
        }
        try number("EDM_METRICS_RAW_RETENTION_DAYS", \.rawRetentionDays)
        try number("EDM_METRICS_ROLLUP_1M_RETENTION_DAYS", \.minuteRollupRetentionDays)
        try number("EDM_METRICS_ROLLUP_1H_RETENTION_DAYS", \.hourRollupRetentionDays)
        try number("EDM_METRICS_CLEANUP_INTERVAL_SECONDS", \.cleanupIntervalSeconds)
        try number("EDM_SYSTEM_MONITOR_INTERVAL_SECONDS", \.collectorIntervalSeconds)
        try number("EDM_ALERT_HISTORY_RETENTION_DAYS", \.alertHistoryRetentionDays)
        func flag(_ name: String, _ keyPath: WritableKeyPath<MetricSettings, Bool>) throws {
            guard let raw = environment[name], !raw.isEmpty else { return }
            switch raw.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "1", "yes", "on": settings[keyPath: keyPath] = true
            case "false", "0", "no", "off": settings[keyPath: keyPath] = false
            default: throw SettingsError(setting: name, value: raw, reason: "not a boolean", accepted: "true or false (also 1/0, yes/no, on/off)")
            }
        }
        try flag("EDM_TASK_MONITORING_ENABLED", \.taskMonitoringEnabled)
        try flag("EDM_SYSTEM_MONITORING_ENABLED", \.systemMonitoringEnabled)
        try flag("EDM_ALERTING_ENABLED", \.alertingEnabled)
        try flag("EDM_METRICS_REQUIRE_TOKEN", \.metricsRequireToken)
        if settings.minuteRollupRetentionDays < settings.rawRetentionDays {
            throw SettingsError(setting: "EDM_METRICS_ROLLUP_1M_RETENTION_DAYS", value: "\(settings.minuteRollupRetentionDays)",
                                reason: "shorter than the raw retention (\(settings.rawRetentionDays) days)", accepted: "at least EDM_METRICS_RAW_RETENTION_DAYS")
        }
        if settings.hourRollupRetentionDays < settings.minuteRollupRetentionDays {
            throw SettingsError(setting: "EDM_METRICS_ROLLUP_1H_RETENTION_DAYS", value: "\(settings.hourRollupRetentionDays)",
                                reason: "shorter than the 1-minute rollup retention (\(settings.minuteRollupRetentionDays) days)", accepted: "at least EDM_METRICS_ROLLUP_1M_RETENTION_DAYS")
        }
        return settings
    }
}
