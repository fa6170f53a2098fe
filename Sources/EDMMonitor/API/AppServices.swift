import EDMMonitorCore
import Vapor

/// The application's long-lived parts, reachable from handlers and commands as `app.edm`.
public struct AppServices: Sendable {
    /// The clock of every time-based decision.
    public var clock: any WallClock
    /// Task lifecycle hooks (logging until task monitoring records metrics).
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
    /// Whether the API requires tokens (remembered once it does).
    public var authentication = AuthenticationState()
}

extension Application {
    private struct AppServicesKey: StorageKey {
        typealias Value = AppServices
    }

    /// The services set up by `configure`. Accessing them before `configure` is a programming error.
    public var edm: AppServices {
        get {
            guard let services = storage[AppServicesKey.self] else { fatalError("configure(_:settings:) has not run") }
            return services
        }
        set { storage[AppServicesKey.self] = newValue }
    }
}

extension Request {
    /// `application.edm`.
    var edm: AppServices { application.edm }
}
