import Metrics
import Prometheus
import Synchronization
import Vapor

/// The swift-metrics backend: a swift-prometheus 2.x collector registry.
///
/// `serve` bootstraps swift-metrics (`MetricsSystem.bootstrap`) with a `PrometheusMetricsFactory`
/// on this application's registry, so every library that reports through swift-metrics —
/// Vapor's own `http_requests_total`, `http_request_duration_seconds` and
/// `http_request_errors_total` among them — appears on `GET /metrics` beside our API and
/// collector families. swift-metrics allows one bootstrap per process, so the tests (which run
/// many applications in one process) do not bootstrap it, except one that checks the bridge.
public enum SwiftMetricsBridge {
    private static let bootstrapped = Mutex(false)

    /// Bootstraps swift-metrics with `registry` once per process; later calls are ignored
    /// (returns whether this call did it).
    @discardableResult
    public static func bootstrap(_ registry: PrometheusCollectorRegistry) -> Bool {
        let first = bootstrapped.withLock { done in defer { done = true }; return !done }
        if first { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry)) }
        return first
    }
}
