import EDMMonitorCore
import Prometheus
import Vapor

/// The service container: every long-lived part of the application, built once by
/// ``configure(_:settings:dependencies:)`` and returned by it.
///
/// Controllers receive from it exactly what they use through their `init` (registered in
/// `configure`); commands use the value `configure` returns. Nothing looks services up by a
/// global or a crashing accessor. The application keeps a copy in its storage
/// (``Application/services``, `nil` before `configure`) so that `serve` and the tests can reach
/// it from the `Application` alone.
public struct AppServices: Sendable {
    /// The clock of every time-based decision.
    public var clock: any WallClock
    /// Task lifecycle hooks (the task monitor, or logging only when monitoring is off).
    public var taskHooks: any TaskMonitorHooks
    /// The dispatch loop (started by `serve`; tests call `runOnce()`).
    public var scheduler: QueueScheduler
    /// Task monitoring: metrics recording, stuck detection (its loop is started by `serve`).
    public var taskMonitor: TaskMonitorService
    /// Alert evaluation and notification delivery (its loops are started by `serve`).
    public var alerting: AlertManagerService
    /// The run-time monitoring configuration, applied to the monitors.
    public var monitoring: MonitoringService
    /// What outbound HTTP requests (mailers, webhooks) may reach.
    public var outbound: OutboundPolicy
    /// The time series of `performance_metrics` and its roll-ups and retention.
    public var metricStore: MetricStore
    /// The host, process, database and API collectors and their latest snapshot.
    public var systemMonitor: SystemMonitorService
    /// Per-route request counts and latencies, recorded by ``APIMetricsMiddleware``.
    public var apiMetrics: APIMetricsRecorder
    /// The swift-prometheus registry swift-metrics reports into once `serve` bootstraps it
    /// (``SwiftMetricsBridge``); emitted by `GET /metrics`.
    public var prometheusRegistry: PrometheusCollectorRegistry
    /// The checks behind `GET /api/monitoring/health`.
    public var health: HealthChecker
    /// Creating and changing email services, shared by the API, the CLI and the demo data.
    public var emailServices: EmailServiceCatalog
    /// Whether the API requires tokens (remembered once it does).
    public var authentication: AuthenticationState
}

extension Application {
    private struct AppServicesKey: StorageKey {
        typealias Value = AppServices
    }

    /// The container built by ``configure(_:settings:dependencies:)``, or `nil` before it ran.
    /// Prefer the value `configure` returns; this is for code that holds only the application.
    public internal(set) var services: AppServices? {
        get { storage[AppServicesKey.self] }
        set { storage[AppServicesKey.self] = newValue }
    }
}
