import Logging
import ServiceLifecycle
import Vapor

/// Vapor's HTTP server as a service of `serve`'s `ServiceGroup`: binds the address `configure`
/// set, serves until graceful shutdown (or cancellation), then stops accepting and closes its
/// connections. Vapor 4.122 has no service of its own; its `serve` command would install its
/// own signal handlers, which the group owns here.
struct HTTPServerService: Service {
    let app: Application

    /// - Throws: the server's error when it cannot bind (e.g. "Address already in use").
    func run() async throws {
        try await app.server.start(address: nil)
        // Returns on graceful shutdown; throws CancellationError on cancellation: stop either way.
        try? await gracefulShutdown()
        await app.server.shutdown()
    }
}

/// Logs, the moment SIGTERM or SIGINT arrives, that `serve` is stopping and how long it may
/// wait. Last in the group, so the group's graceful shutdown reaches it first.
struct ShutdownNotice: Service {
    let timeoutSeconds: Double
    let logger: Logger

    func run() async throws {
        // Returns on graceful shutdown; throws CancellationError when the group is cancelled.
        guard (try? await gracefulShutdown()) != nil else { return }
        logger.notice("stopping: no new work is claimed; waiting up to \(String(format: "%g", timeoutSeconds)) s (EDM_SHUTDOWN_TIMEOUT_SECONDS) for the work in flight")
    }
}

/// The loops `serve` runs, in start order (the group stops them in reverse order). The
/// scheduler and the health probe are always there; the monitors only with monitoring on
/// (`EDM_MONITORING`).
///
/// - scheduler: `QueueScheduler.runOnce()`, again at once after a cycle that sent, else after
///   `idleDelaySeconds()` (until a service is available again, at most `idleDelay`); after the shutdown signal a cycle claims nothing new (``QueueScheduler``).
/// - health probe: `HealthChecker.probeOnce(database:)` every `probeIntervalSeconds` (1 s);
///   `GET /api/monitoring/health` answers from its last result.
/// - task monitor: `TaskMonitorService.runOnce()` every `detectionIntervalSeconds`.
/// - system monitor: `SystemMonitorService.cycle()` every `interval` seconds.
/// - alert evaluation: `AlertManagerService.runDueIteration()` on the rule group's slots,
///   every `evaluationIntervalSeconds` on the grid (`RuleGroupSchedule`) (it logs its own failure streak, which health reads).
/// - notification delivery: `AlertManagerService.deliverOnce()` every `deliveryIntervalSeconds`;
///   the one loop whose cycle is cancelled (not awaited) on graceful shutdown.
/// - metric retention: `MetricStore.cleanup(on:)` every `cleanupInterval` seconds.
/// - configuration reload: `MonitoringService.reload()` every `reloadIntervalSeconds`.
///
/// Every interval is read again each cycle, so a run-time configuration change applies.
func backgroundServices(_ app: Application, services: AppServices, settings: Settings) -> [PeriodicService] {
    let scheduler = services.scheduler
    let schedulerLogger = Logger(label: "edm.scheduler")
    var loops = [
        PeriodicService.whileBusy(
            name: "scheduler", interval: { scheduler.idleDelaySeconds() }, logger: schedulerLogger,
            onStop: { await scheduler.closeMailers() },
            moreWork: { try await scheduler.runOnce().dispatched > 0 }
        ),
    ]
    // The health endpoint answers from this probe's last result (HealthChecker), so it runs
    // with monitoring off too.
    let health = services.health
    loops.append(PeriodicService(name: "health probe", interval: { HealthChecker.probeIntervalSeconds }, logger: Logger(label: "edm.health")) { [weak app] in
        guard let database = app?.db else { return }
        await health.probeOnce(database: database)
    })
    guard settings.monitoringEnabled else { return loops }
    let taskMonitor = services.taskMonitor, alerting = services.alerting, monitoring = services.monitoring
    let systemMonitor = services.systemMonitor, store = services.metricStore
    let retentionLogger = Logger(label: "edm.metrics.retention")
    loops += [
        PeriodicService(name: "task monitor", interval: { max(1, taskMonitor.settings.detectionIntervalSeconds) }, logger: Logger(label: "edm.task-monitor")) {
            try await taskMonitor.runOnce()
        },
        PeriodicService(name: "system monitor", interval: { max(1, systemMonitor.interval) }, logger: Logger(label: "edm.system-monitor")) {
            await systemMonitor.cycle()
        },
        // The rule group's schedule (reference case C31): slots on the interval's grid, one
        // iteration at a time, a late one followed by one run stamped with the latest due slot.
        PeriodicService.onSchedule(name: "alert evaluation", logger: Logger(label: "edm.alerting"), untilNext: { alerting.secondsUntilNextIteration() }) {
            // Logged (once per streak) and remembered for health by the evaluator itself.
            _ = try? await alerting.runDueIteration()
        },
        // Cancelled on shutdown: a receiver may hang for the whole HTTP timeout, and a cut
        // attempt is given back to the outbox (NotificationOutbox.deliverOnce).
        PeriodicService(name: "notification delivery", interval: { max(1, alerting.settings.deliveryIntervalSeconds) }, logger: Logger(label: "edm.alerting"),
                        cancelsCycleOnShutdown: true) {
            try await alerting.deliverOnce()
        },
        PeriodicService(name: "metric retention", interval: { max(1, store.configuration.cleanupInterval) }, logger: retentionLogger) { [weak app] in
            guard let database = app?.db else { return }
            let report = try await store.cleanup(on: database)
            if report.raw + report.minute + report.hour > 0 {
                retentionLogger.info("metric retention", metadata: ["raw": "\(report.raw)", "rollups_1m": "\(report.minute)", "rollups_1h": "\(report.hour)"])
            }
        },
        PeriodicService(name: "monitoring configuration reload", interval: { MonitoringService.reloadIntervalSeconds }, logger: Logger(label: "edm.monitoring")) {
            try await monitoring.reload()
        },
    ]
    return loops
}

extension Duration {
    /// The duration in seconds, with fractions.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
