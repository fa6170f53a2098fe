import ArgumentParser
import EDMMonitorCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Vapor

/// The settings flags shared by every command. Each flag overrides its environment variable
/// (see ``Settings``).
struct SettingsOptions: ParsableArguments {
    @ArgumentParser.Option(name: .customLong("database-url"), help: "Database URL (env EDM_DATABASE_URL): sqlite://PATH, sqlite::memory: or postgres://user:pass@host:port/db.")
    var databaseURL: String?

    @ArgumentParser.Option(name: .customLong("host"), help: "Address the HTTP API listens on (env EDM_HTTP_HOST, default 127.0.0.1).")
    var host: String?

    // A string, not an Int, so that a bad port gets the same one-line message as EDM_HTTP_PORT.
    @ArgumentParser.Option(name: .customLong("port"), help: "TCP port of the HTTP API (env EDM_HTTP_PORT, default 8080).")
    var port: String?

    @ArgumentParser.Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (env EDM_LOG_LEVEL, default info).")
    var logLevel: String?

    @ArgumentParser.Option(name: .customLong("log-format"), help: "text or json (env EDM_LOG_FORMAT, default text).")
    var logFormat: String?

    /// The validated settings from the process environment and these flags.
    /// - Throws: ``SettingsError``.
    func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        try Settings.load(environment: environment, overrides: .init(
            databaseURL: databaseURL, httpHost: host, httpPort: port, logLevel: logLevel, logFormat: logFormat
        ))
    }
}

/// `edm-monitor`: the root command.
public struct EDMMonitorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "edm-monitor",
        abstract: "Runs and watches an email-marketing (EDM) sending platform.",
        version: EDMMonitorVersion.current,
        subcommands: [ServeCommand.self, StatusCommand.self, TasksCommand.self, AlertsCommand.self, MigrateCommand.self, RoutesCommand.self, TaskCommand.self, ServiceCommand.self, UserCommand.self, TokenCommand.self]
    )

    public init() {}
}

/// ``prepareDatabase(_:settings:)`` with a failure turned into one line naming the database
/// (password hidden) and the driver's reason.
func prepareDatabaseForCommand(_ app: Application, settings: Settings) async throws {
    do {
        try await prepareDatabase(app, settings: settings)
    } catch let error as SchemaCheck.Mismatch {
        throw error
    } catch {
        throw StartupError("cannot prepare the database \(settings.database.redacted): \(DatabaseErrorText.describe(error))")
    }
}

/// Makes an application for a command (not the test harness), gives `body` the application
/// and the service container ``configure(_:settings:dependencies:)`` built, and shuts the
/// application down afterwards.
///
/// Vapor's own command line is given only `serve`, so it never sees our flags.
func withCommandApp<T>(_ settings: Settings, _ body: (Application, AppServices) async throws -> T) async throws -> T {
    let app = try await Application.make(Environment(name: "production", arguments: ["edm-monitor", "serve"]))
    let result: T
    do {
        let services = try await configure(app, settings: settings)
        result = try await body(app, services)
    } catch {
        try? await app.asyncShutdown()
        throw error
    }
    try await app.asyncShutdown()
    return result
}

/// `edm-monitor serve`: migrate, check, and serve the API and run every loop until SIGINT or
/// SIGTERM (``runServiceGroup(_:services:settings:logger:)``); exits 0 after a graceful stop.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Migrate the database and serve the HTTP API.")

    @OptionGroup var options: SettingsOptions

    @ArgumentParser.Flag(name: .customLong("allow-unauthenticated"), help: "Serve on a non-loopback address even though no API token exists (anyone who can reach the port is admin).")
    var allowUnauthenticated = false

    @ArgumentParser.Flag(help: "On the first start, create a dry_run email service and a sample task of 400 made-up recipients to watch (never again afterwards).")
    var demo = false

    func run() async throws {
        let settings = try options.settings()
        bootstrapLogging(settings)
        let logger = Logger(label: "edm.serve")
        // First: a second `serve` on the same SQLite file stops before touching it (or logging
        // that it starts).
        let instanceLock = try InstanceLock.acquire(for: settings.database)
        logger.info("starting edm-monitor \(EDMMonitorVersion.current)", metadata: settings.loggable)
        try await withCommandApp(settings) { app, services in
            try await prepareDatabaseForCommand(app, settings: settings)
            try verifyRoutes(app)
            try await refuseOpenNetworkAPI(app, settings: settings, allowUnauthenticated: allowUnauthenticated, logger: logger)
            try await ensureAddressFree(host: settings.httpHost, port: settings.httpPort)
            try await services.monitoring.reload()
            let routes = RouteCatalog.registered(app)
            logger.info("routes registered", metadata: ["count": "\(routes.count)", "routes": .array(routes.map { .string($0) })])
            if demo { try await DemoData.seedIfNeeded(app, services: services, logger: logger) }
            SwiftMetricsBridge.bootstrap(services.prometheusRegistry)
            if !settings.monitoringEnabled {
                logger.warning("monitoring is off (EDM_MONITORING=off): no task, system or API metrics and no alerting")
            }
            try await app.asyncBoot()
            logger.info("scheduler started", metadata: ["instance": "\(services.scheduler.configuration.instanceID)"])
            try await runServiceGroup(app, services: services, settings: settings, logger: logger)
            exitLeavingAbandonedCycles(logger)
            withExtendedLifetime(instanceLock) {}
        }
        logger.info("edm-monitor stopped")
    }
}

/// After the service group has stopped: when a loop's cycle was still running at the shutdown
/// bound (``PeriodicService/abandonedCycles``), the process exits here with status 0, without
/// shutting the application down — its database pools, event loops and HTTP client are in use by
/// that cycle, and tearing them down under it traps. What the cycle was doing is settled by the
/// rules for a dead instance: a subtask left `sending` becomes `interrupted` when its lease
/// expires, a claimed notification is delivered by the next instance after its claim lease.
/// Returns when no cycle was abandoned.
func exitLeavingAbandonedCycles(_ logger: Logger) {
    let abandoned = PeriodicService.abandonedCycles
    guard abandoned > 0 else { return }
    logger.warning("edm-monitor stopped with \(abandoned) cycle\(abandoned == 1 ? "" : "s") still running after the shutdown bound (EDM_SHUTDOWN_TIMEOUT_SECONDS); exiting without waiting for \(abandoned == 1 ? "it" : "them")")
    fflush(nil)
    _exit(0)
}

/// Runs the HTTP server and every loop of ``backgroundServices(_:services:settings:)`` in one
/// `ServiceGroup` until SIGTERM or SIGINT, then stops them gracefully: the loops first (each
/// after the cycle in flight, the scheduler claiming nothing new), the server last. When they
/// take longer than ``Settings/shutdownTimeoutSeconds`` the group cancels them, which ends the
/// waits but never a send in flight (``PeriodicService``).
/// - Throws: ``StartupError`` when the address cannot be bound; a service's error.
func runServiceGroup(_ app: Application, services appServices: AppServices, settings: Settings, logger: Logger) async throws {
    // The server first: a group stops its services in reverse order, so the API answers
    // (health, metrics) until the loops have stopped.
    var services: [any Service] = [HTTPServerService(app: app)]
    services += backgroundServices(app, services: appServices, settings: settings)
    services.append(ShutdownNotice(timeoutSeconds: settings.shutdownTimeoutSeconds, logger: logger))
    var configuration = ServiceGroupConfiguration(
        services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "edm.lifecycle")
    )
    configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(settings.shutdownTimeoutSeconds * 1000))
    do {
        try await ServiceGroup(configuration: configuration).run()
    } catch where "\(error)".contains("Address already in use") {
        throw StartupError("cannot listen on \(settings.httpHost):\(settings.httpPort): the address is already in use; stop the other server or set EDM_HTTP_PORT / --port")
    }
}

/// Binds `host:port` once and lets it go, so that `serve` stops before any background loop
/// starts when another process holds the port (else the scheduler could send for a moment
/// before Vapor fails to bind). The address is taken again by Vapor right after.
/// - Throws: ``StartupError`` naming the address and how to fix it.
func ensureAddressFree(host: String, port: Int) async throws {
    do {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port).get()
        try await channel.close()
    } catch {
        let inUse = "\(error)".contains("in use")
        throw StartupError("cannot listen on \(host):\(port): " + (inUse ? "the address is already in use; stop the other server or set EDM_HTTP_PORT / --port" : "\(error)"))
    }
}

/// Refuses to serve an open API (no token created) on an address other machines can reach,
/// unless the operator said so; warns when they did.
/// - Throws: ``StartupError`` saying why and how to fix it.
func refuseOpenNetworkAPI(_ app: Application, settings: Settings, allowUnauthenticated: Bool, logger: Logger) async throws {
    guard !Settings.isLoopback(settings.httpHost) else { return }
    guard try await !APITokens.authenticationRequired(on: app.db) else { return }
    if allowUnauthenticated {
        logger.warning("serving an open API on a non-loopback address: no API token exists, so anyone who can reach \(settings.httpHost):\(settings.httpPort) is admin")
        return
    }
    throw StartupError("refusing to listen on \(settings.httpHost): no API token exists, so anyone who can reach this address would be admin; create one first with `edm-monitor token create --role admin --name NAME` (same --database-url), or listen on 127.0.0.1, or pass --allow-unauthenticated")
}

/// `edm-monitor migrate [--revert --yes]`.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Apply pending migrations, or revert all of them with --revert --yes.")

    @OptionGroup var options: SettingsOptions

    @ArgumentParser.Flag(help: "Revert every migration (drops all EDM Monitor tables and their data).")
    var revert = false

    @ArgumentParser.Flag(help: "Confirm --revert.")
    var yes = false

    func validate() throws {
        if revert && !yes {
            throw ArgumentParser.ValidationError("--revert drops every EDM Monitor table and its data; add --yes to confirm")
        }
    }

    func run() async throws {
        let settings = try options.settings()
        bootstrapLogging(settings)
        // Reverting drops every table: never under a running `serve` of the same SQLite file.
        // (On PostgreSQL nothing can tell; the operator stops the instances first.)
        let instanceLock = revert ? try InstanceLock.acquire(for: settings.database) : nil
        defer { withExtendedLifetime(instanceLock) {} }
        try await withCommandApp(settings) { app, _ in
            do {
                try await DatabaseSetup.prepare(settings.database, database: app.db)
                try await MigrationLock.withLock(settings.database, logger: app.logger) {
                    if revert {
                        try await app.autoRevert()
                    } else {
                        try await app.autoMigrate()
                    }
                }
                if !revert { try await SchemaCheck.verify(app.db) }
            } catch let error as SchemaCheck.Mismatch {
                throw error
            } catch {
                throw StartupError("cannot migrate the database \(settings.database.redacted): \(DatabaseErrorText.describe(error))")
            }
            if revert {
                print("reverted all migrations on \(settings.database.redacted)")
            } else {
                print("database \(settings.database.redacted) is up to date (\(AppMigrations.all.count) migrations)")
            }
        }
    }
}

/// `edm-monitor routes`: print the route table, one `METHOD /path` a line.
struct RoutesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "routes", abstract: "Print every HTTP route.")

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        var settings = try options.settings()
        bootstrapLogging(settings)
        // Listing routes needs no database: do not create or open one.
        settings.database = .sqliteMemory
        try await withCommandApp(settings) { app, _ in
            for route in RouteCatalog.registered(app) { print(route) }
        }
    }
}

/// The program's entry point, as a function tests can call.
public enum EDMMonitorCLI {
    /// Exit statuses: 0 success, 1 a start-up or runtime failure (and bad data, a conflict or a
    /// missing row: ``DomainError/exitStatus``), 2 a malformed setting or command line.
    public static func main(arguments: [String]) async -> Int32 {
        do {
            var command = try EDMMonitorCommand.parseAsRoot(arguments)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as SettingsError {
            return fail("\(error)", status: 2)
        } catch let error as StartupError {
            return fail("\(error)", status: 1)
        } catch let error as SchemaCheck.Mismatch {
            return fail("\(error)", status: 1)
        } catch let error as any DomainError {
            // Each domain error says its own status: 2 for a value the command line gave,
            // 1 for bad data in a file, a conflict or a missing row (DomainError.exitStatus).
            return fail(error.commandLineMessage, status: error.exitStatus)
        } catch {
            let code = EDMMonitorCommand.exitCode(for: error)
            if code == .success {
                // --help and --version arrive as errors; print them as ArgumentParser would.
                print(EDMMonitorCommand.fullMessage(for: error))
                return 0
            }
            if code == .validationFailure {
                let message = EDMMonitorCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
                return fail("\(message) (see edm-monitor --help)", status: 2)
            }
            return fail(DatabaseErrorText.describe(error), status: 1)
        }
    }

    /// Writes `edm-monitor: MESSAGE` to standard error and returns `status`.
    private static func fail(_ message: String, status: Int32) -> Int32 {
        FileHandle.standardError.write(Data("edm-monitor: \(message)\n".utf8))
        return status
    }

}
