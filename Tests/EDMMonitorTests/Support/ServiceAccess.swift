@testable import EDMMonitor
import Vapor

/// Short paths from an application to its service container for tests. Production code gets
/// the container from `configure` and gives each controller what it uses through `init`; a
/// test holds only the `Application`, so here a missing container is a failed test set-up.
extension Application {
    /// The container `configure` built.
    var edm: AppServices {
        guard let services else { preconditionFailure("the test did not run configure(_:settings:)") }
        return services
    }

    /// `edm.metricStore`.
    var metricStore: MetricStore { edm.metricStore }
    /// `edm.systemMonitor`.
    var systemMonitor: SystemMonitorService { edm.systemMonitor }
    /// `edm.apiMetrics`.
    var apiMetrics: APIMetricsRecorder { edm.apiMetrics }
}
