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
