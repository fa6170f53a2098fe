import EDMMonitorCore
import Fluent
import Foundation
import Prometheus
import Vapor

/// What `configure` takes besides the settings; tests override these (STYLE.md §2).
public struct AppDependencies: Sendable {
    /// The clock of every time-based decision.
    public var clock: any WallClock
    /// The scheduler's settings (instance id, lease, retries, freezing).
    public var scheduler: SchedulerConfiguration
    /// Task lifecycle hooks; `nil` logs them.
    public var taskHooks: (any TaskMonitorHooks)?
    /// Makes mailers; `nil` uses the real SMTP, HTTP and dry-run mailers.
    public var mailers: (any MailerFactory)?
    /// The health check's database probe; `nil` uses ``HealthChecker/standardProbe``.
    public var healthProbe: HealthChecker.DatabaseProbe?

    /// Real dependencies: the system clock and default scheduler settings.
    public init(clock: any WallClock = SystemClock(), scheduler: SchedulerConfiguration = .init(), taskHooks: (any TaskMonitorHooks)? = nil, mailers: (any MailerFactory)? = nil,
                healthProbe: HealthChecker.DatabaseProbe? = nil) {
        self.clock = clock
        self.scheduler = scheduler
        self.taskHooks = taskHooks
        self.mailers = mailers
        self.healthProbe = healthProbe
    }
}

/// Wires the application: HTTP server address, middleware, database, migrations, the service
/// container and the routes.
///
/// This is the one place that builds services: each is made once here, put into the
/// ``AppServices`` container, and handed to the controllers that use it through their `init`.
/// Opens no connection itself; call ``prepareDatabase(_:settings:)`` next to migrate and check
/// the schema, then ``verifyRoutes(_:)``. `edm-monitor serve`, the other commands and the tests
/// all go through this one function.
/// - Returns: the container (also kept as ``Application/services``).
/// - Throws: ``StartupError`` when the database cannot be set up (e.g. the SQLite folder cannot
///   be created).
@discardableResult
public func configure(_ app: Application, settings: Settings, dependencies: AppDependencies = .init()) async throws -> AppServices {
    app.http.server.configuration.hostname = settings.httpHost
    app.http.server.configuration.port = settings.httpPort
    app.logger.logLevel = settings.logLevel
    let clock = dependencies.clock

    // Our error body replaces Vapor's `{"error":true,"reason":…}`; requests are logged at
    // debug so that a busy API does not flood the log at the default level.
    app.middleware = Middlewares()
    // Outermost: the request id is set before anything logs, and echoed on every response.
    app.middleware.use(RequestIDMiddleware())
    app.middleware.use(APIErrorMiddleware())
    app.middleware.use(CrossSiteRequestMiddleware())
    // Inside the error middleware: sees thrown errors and records the status they will get.
    let apiMetrics = APIMetricsRecorder(clock: clock)
    if settings.monitoringEnabled { app.middleware.use(APIMetricsMiddleware(recorder: apiMetrics)) }
    // Small bodies by default; endpoints that take large ones (task import) say so.
    app.routes.defaultMaxBodySize = "1mb"
    ContentConfiguration.global.use(encoder: APIJSON.encoder(), for: .json)
    ContentConfiguration.global.use(decoder: APIJSON.decoder(), for: .json)

    // Outbound requests never follow redirects (OutboundPolicy rule 3); set before the shared
    // client is first made.
    app.http.client.configuration.redirectConfiguration = .disallow
    let outbound = OutboundPolicy(allowedHosts: settings.outboundAllowedHosts)

    try DatabaseSetup.register(settings.database, on: app)
    app.migrations.add(AppMigrations.all)

    // Services reach the database through `app.db` when they run, not when they are built.
    let database: @Sendable () -> any Database = { [unowned app] in app.db }
    let heartbeat = SchedulerHeartbeat()
    let metricStore = MetricStore(clock: clock, configuration: settings.metrics.storeConfiguration)
    let taskMonitor = TaskMonitorService(database: database, clock: clock, heartbeat: heartbeat, store: metricStore)
    let hooks = dependencies.taskHooks ?? (settings.monitoringEnabled ? taskMonitor : DisabledTaskMonitorHooks())
    let mailers = dependencies.mailers ?? DefaultMailerFactory(httpClient: app.http.client.shared, outbound: outbound)
    let scheduler = QueueScheduler(
        database: database, clock: clock, configuration: dependencies.scheduler,
        mailers: mailers, hooks: hooks, heartbeat: heartbeat
    )
    let prometheusRegistry = PrometheusCollectorRegistry()
    let alerting = AlertManagerService(database: database, clock: clock, httpClient: app.http.client.shared, mailers: mailers, outbound: outbound,
                                       store: metricStore, registry: prometheusRegistry)
    let systemMonitor = SystemMonitorService(
        collectors: SystemMonitorService.standardCollectors(database: database, dataDirectory: settings.database.dataDirectory)
            + [APICollector(recorder: apiMetrics)],
        store: metricStore, database: database, clock: clock, interval: settings.metrics.collectorIntervalSeconds
    )
    let monitoring = MonitoringService(
        database: database, clock: clock, startup: MonitoringConfig(settings: settings.metrics),
        taskMonitor: taskMonitor, systemMonitor: systemMonitor, alerting: alerting, store: metricStore
    )
    let services = AppServices(
        clock: clock, taskHooks: hooks, scheduler: scheduler, taskMonitor: taskMonitor, alerting: alerting,
        monitoring: monitoring, outbound: outbound, metricStore: metricStore, systemMonitor: systemMonitor,
        apiMetrics: apiMetrics, prometheusRegistry: prometheusRegistry,
        health: HealthChecker(clock: clock, startedAt: clock.now(), alerting: alerting, probe: dependencies.healthProbe),
        emailServices: EmailServiceCatalog(clock: clock, outbound: outbound),
        authentication: AuthenticationState()
    )
    app.services = services

    // Adding a route: register its controller here with what it uses, list it in
    // RouteCatalog.required below, and give it an access rule in RoutePolicy.
    try app.register(collection: HealthController(checker: services.health))
    try app.register(collection: UsersController(clock: clock))
    try app.register(collection: EmailServicesController(catalog: services.emailServices, clock: clock))
    try app.register(collection: TasksController(clock: clock, hooks: hooks))
    try app.register(collection: TaskMonitoringController(clock: clock, taskMonitor: taskMonitor))
    try app.register(collection: AlertsController(clock: clock, outbound: services.outbound, alerting: services.alerting))
    try app.register(collection: SilencesController(clock: clock))
    try app.register(collection: PerformanceMetricsController(clock: clock, store: metricStore, systemMonitor: systemMonitor))
    try app.register(collection: PushgatewayController(clock: clock, store: metricStore))
    try app.register(collection: PrometheusMetricsController(
        apiMetrics: apiMetrics, systemMonitor: systemMonitor, alerting: alerting, registry: services.prometheusRegistry,
        taskMonitor: taskMonitor
    ))
    try app.register(collection: MonitoringConfigController(monitoring: monitoring))
    try app.register(collection: TokensController(clock: clock))
    try app.register(collection: DashboardController())
    try app.register(collection: OpenAPIController())
    // Last: wraps every route registered above with its access check (RoutePolicy).
    RoutePolicy.apply(to: app, metricsRequireToken: settings.metrics.metricsRequireToken,
                      authentication: services.authentication, clock: clock)
    return services
}

/// Applies the database settings, runs pending migrations under the migration lock
/// (``MigrationLock``) and checks the schema.
/// - Throws: ``SchemaCheck/Mismatch`` naming the table, column or migration that does not fit;
///   the database driver's error when the database is unreachable.
public func prepareDatabase(_ app: Application, settings: Settings) async throws {
    try await DatabaseSetup.prepare(settings.database, database: app.db)
    // Several instances may start together on one PostgreSQL database: one migrates (and seeds
    // the default rules), the others wait for it and find nothing left to do.
    try await MigrationLock.withLock(settings.database, logger: app.logger) {
        try await app.autoMigrate()
    }
    try await SchemaCheck.verify(app.db)
}

/// The routes the application must serve. Start-up stops when one is missing, so the seed's
/// "routes that were never registered" cannot come back silently.
public enum RouteCatalog {
    /// `METHOD /path` of every required route, with `:name` for parameters.
    public static let required: [String] = [
        "GET /api/monitoring/health",
        "POST /api/users", "GET /api/users", "GET /api/users/:id",
        "POST /api/email-services", "GET /api/email-services", "GET /api/email-services/:id",
        "PATCH /api/email-services/:id", "PUT /api/email-services/:id", "DELETE /api/email-services/:id",
        "POST /api/email-services/:id/enable", "POST /api/email-services/:id/disable", "POST /api/email-services/:id/unfreeze",
        "POST /api/tasks", "GET /api/tasks", "GET /api/tasks/:id",
        "POST /api/tasks/:id/pause", "POST /api/tasks/:id/resume", "POST /api/tasks/:id/cancel",
        "GET /api/monitoring/task-metrics", "GET /api/monitoring/task-metrics/:taskId", "GET /api/monitoring/task-stats",
        "GET /api/monitoring/queue-status", "POST /api/monitoring/task-events",
        "POST /api/monitoring/alert-rules", "GET /api/monitoring/alert-rules", "GET /api/monitoring/alert-rules/:id",
        "PUT /api/monitoring/alert-rules/:id", "PATCH /api/monitoring/alert-rules/:id", "DELETE /api/monitoring/alert-rules/:id",
        "POST /api/monitoring/alert-rules/:id/test",
        "GET /api/monitoring/alerts", "GET /api/monitoring/alerts/:id",
        "POST /api/monitoring/alerts/:id/acknowledge", "POST /api/monitoring/alerts/:id/resolve",
        "POST /api/monitoring/silences", "GET /api/monitoring/silences", "GET /api/monitoring/silences/:id",
        "POST /api/monitoring/silences/:id/expire",
        "POST /api/monitoring/performance-metrics", "GET /api/monitoring/performance-metrics", "GET /api/monitoring/metric-names",
        "GET /api/monitoring/system-health", "GET /metrics",
        "PUT /metrics/job/:job", "POST /metrics/job/:job", "PUT /metrics/job/:job/**", "POST /metrics/job/:job/**",
        "GET /api/monitoring/config", "PUT /api/monitoring/config", "GET /api/monitoring/config/changes",
        "POST /api/tokens", "GET /api/tokens", "GET /api/tokens/:id", "POST /api/tokens/:id/revoke",
        "GET /", "GET /assets/:name", "GET /openapi.yaml",
    ]

    /// `METHOD /path` of every route registered on `app`, sorted by path then method.
    public static func registered(_ app: Application) -> [String] {
        app.routes.all
            .map { route in "\(route.method.rawValue) /" + route.path.map(\.description).joined(separator: "/") }
            .sorted { lhs, rhs in
                let l = lhs.split(separator: " ", maxSplits: 1), r = rhs.split(separator: " ", maxSplits: 1)
                return (l.last ?? "", l.first ?? "") < (r.last ?? "", r.first ?? "")
            }
    }
}

/// Checks that every route of ``RouteCatalog/required`` is registered and that every
/// registered route has its access check (``RoutePolicy``).
/// - Throws: ``StartupError`` naming the first missing or unchecked route.
public func verifyRoutes(_ app: Application) throws {
    let registered = Set(RouteCatalog.registered(app))
    if let missing = RouteCatalog.required.first(where: { !registered.contains($0) }) {
        throw StartupError("route \(missing) is not registered; this build is broken, report it")
    }
    if let unchecked = app.routes.all.first(where: { $0.userInfo[RoutePolicy.accessKey] == nil }) {
        throw StartupError("route \(unchecked.method.rawValue) /\(unchecked.path.map(\.description).joined(separator: "/")) has no access check; this build is broken, report it")
    }
}
