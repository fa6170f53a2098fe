@testable import EDMMonitor
import EDMMonitorCore
import Fluent
import Foundation
import Logging
import ServiceLifecycle
import SQLKit
import Synchronization
import Testing
import Vapor

/// One lifecycle (issue 13, item 1): the periodic-service type, `serve`'s graceful stop on
/// SIGTERM, one `serve` per SQLite file, and migrations serialised on PostgreSQL.
@Suite("Lifecycle")
struct LifecycleTests {
    // MARK: - PeriodicService

    /// Records what a loop body saw.
    final class BodyProbe: Sendable {
        let state = Mutex<(started: Int, finished: Int, cancelled: Int)>((0, 0, 0))

        /// A loop (interval one hour) whose body sleeps `duration` and records how it ended.
        func loop(sleeping duration: Duration, cancelsCycleOnShutdown: Bool = false) -> PeriodicService {
            PeriodicService(name: "probe", interval: { 3600 }, logger: Logger(label: "test.probe"), cancelsCycleOnShutdown: cancelsCycleOnShutdown) {
                self.state.withLock { $0.started += 1 }
                do {
                    try await Task.sleep(for: duration)
                    self.state.withLock { $0.finished += 1 }
                } catch {
                    self.state.withLock { $0.cancelled += 1 }
                }
            }
        }

        /// Runs `loop` in a service group, triggers graceful shutdown once its body has started,
        /// and returns when the group has stopped.
        func runAndStopGracefully(_ loop: PeriodicService) async throws {
            let group = ServiceGroup(configuration: .init(services: [loop], logger: Logger(label: "test.group")))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                while state.withLock({ $0.started }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test("graceful shutdown ends the loop after the body in flight, which is never cancelled, without waiting out the interval")
    func gracefulStopLetsTheBodyFinish() async throws {
        let probe = BodyProbe()
        let started = ContinuousClock.now
        try await probe.runAndStopGracefully(probe.loop(sleeping: .milliseconds(400)))
        let state = probe.state.withLock { $0 }
        #expect(state.started == 1)
        #expect(state.finished == 1, "the body in flight did not finish")
        #expect(state.cancelled == 0, "graceful shutdown cancelled the body")
        // Far below the 3600 s interval, with room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(60), "the loop waited out its interval")
    }

    @Test("a loop made to cancel its cycle on shutdown (notification delivery) cancels the body in flight at once")
    func gracefulStopCancelsACancellableCycle() async throws {
        let probe = BodyProbe()
        try await probe.runAndStopGracefully(probe.loop(sleeping: .seconds(120), cancelsCycleOnShutdown: true))
        let state = probe.state.withLock { $0 }
        #expect(state.started == 1)
        #expect(state.cancelled == 1, "the body in flight was not cancelled")
        #expect(state.finished == 0)
    }

    @Test("cancellation (the shutdown bound passed) stops waiting for a late body but does not cancel it")
    func cancellationDoesNotReachTheBody() async throws {
        let probe = BodyProbe()
        let loop = probe.loop(sleeping: .seconds(6))
        let task = Task { try await loop.run() }
        while probe.state.withLock({ $0.started }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let cancelledAt = ContinuousClock.now
        task.cancel()
        try await task.value
        #expect(ContinuousClock.now - cancelledAt < .seconds(5), "the loop waited for the body after cancellation")
        #expect(probe.state.withLock { $0.finished } == 0)
        for _ in 0..<300 where probe.state.withLock({ $0.finished + $0.cancelled }) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        let state = probe.state.withLock { $0 }
        #expect(state.finished == 1)
        #expect(state.cancelled == 0)
    }

    @Test("a body with more work runs again at once; the interval is read again each cycle")
    func moreWorkAndIntervalChanges() async throws {
        let runs = Mutex(0)
        let interval = Mutex(3600.0)
        let loop = PeriodicService.whileBusy(name: "probe", interval: { interval.withLock { $0 } }, logger: Logger(label: "test.probe"), moreWork: {
            // Three cycles back to back, then idle.
            runs.withLock { $0 += 1; return $0 < 3 }
        })
        let task = Task { try await loop.run() }
        for _ in 0..<200 where runs.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(runs.withLock { $0 } == 3)
        try await Task.sleep(for: .milliseconds(300))
        #expect(runs.withLock { $0 } == 3, "an idle cycle did not wait")
        // A shorter interval applies within about a second although the wait began with 3600 s.
        interval.withLock { $0 = 0.05 }
        for _ in 0..<300 where runs.withLock({ $0 }) < 4 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(runs.withLock { $0 } >= 4, "the shorter interval was not noticed")
        task.cancel()
        try await task.value
    }

    @Test("a failure streak is logged once when it starts and once when it ends, with its length")
    func failureStreak() async throws {
        let (logger, store) = CapturingLogHandler.logger()
        let failing = Mutex(true)
        let loop = PeriodicService(name: "probe loop", interval: { 1 }, logger: logger) {
            struct Broken: Error {}
            if failing.withLock({ $0 }) { throw Broken() }
        }
        for _ in 0..<3 { _ = await loop.cycle() }
        #expect(store.text.components(separatedBy: "probe loop failing").count - 1 == 1, "\(store.text)")
        #expect(loop.streak.count == 3)
        failing.withLock { $0 = false }
        _ = await loop.cycle()
        _ = await loop.cycle()
        #expect(store.text.components(separatedBy: "probe loop recovered after 3 failures").count - 1 == 1, "\(store.text)")
        #expect(loop.streak.count == 0)
        #expect(loop.streak.lastError == nil)
    }

    // MARK: - Settings

    @Test("EDM_SHUTDOWN_TIMEOUT_SECONDS defaults to 10 and is validated like the other settings")
    func shutdownTimeoutSetting() throws {
        #expect(try Settings.load(environment: [:]).shutdownTimeoutSeconds == 10)
        #expect(try Settings.load(environment: ["EDM_SHUTDOWN_TIMEOUT_SECONDS": "2.5"]).shutdownTimeoutSeconds == 2.5)
        for bad in ["0", "-1", "abc", "4000", "inf"] {
            #expect(throws: SettingsError.self) { try Settings.load(environment: ["EDM_SHUTDOWN_TIMEOUT_SECONDS": bad]) }
        }
        do {
            _ = try Settings.load(environment: ["EDM_SHUTDOWN_TIMEOUT_SECONDS": "0"])
            Issue.record("0 was accepted")
        } catch {
            #expect("\(error)".contains("EDM_SHUTDOWN_TIMEOUT_SECONDS"))
            #expect("\(error)".contains("from 1 to 3600"))
        }
    }

    // MARK: - serve, the real binary

    struct StatusCount: Decodable { var status: String; var last_error: String?; var n: Int }

    /// A folder with an SQLite database migrated by the CLI, a user, and `database` arguments.
    struct CLIDatabase {
        let folder: URL
        var path: String { folder.appendingPathComponent("edm.sqlite").path }
        var arguments: [String] { ["--database-url", "sqlite://\(path)"] }

        init() throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-life-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let migrate = try runEDMMonitor(["migrate"] + arguments)
            guard migrate.status == 0 else { throw TestSupportError("migrate: \(migrate.stderr)") }
        }

        func remove() { try? FileManager.default.removeItem(at: folder) }

        /// Runs a CLI command on this database. - Throws: when it exits non-zero.
        @discardableResult
        func run(_ command: [String]) throws -> String {
            let result = try runEDMMonitor(command + arguments)
            guard result.status == 0 else { throw TestSupportError("\(command): \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Opens the database in this process (no migration) and runs `body`.
        func withApp<T>(_ body: (Application) async throws -> T) async throws -> T {
            let settings = testSettings(.sqliteFile(path: path))
            let app = try await Application.make(.testing)
            do {
                try await configure(app, settings: settings)
                let result = try await body(app)
                try await app.asyncShutdown()
                return result
            } catch {
                try? await app.asyncShutdown()
                throw error
            }
        }
    }

    /// A user, two SMTP services on `smtpPort` (one connection each, so that the campaign lasts
    /// tens of seconds against a slow peer) and a 300-recipient task, made through the CLI.
    static func createCampaign(in db: CLIDatabase, smtpPort: Int) throws {
        let userID = try db.run(["user", "add", "--name", "Ann", "--email", "ann@example.com"])
        for name in ["relay-a", "relay-b"] {
            try db.run(["service", "add", "--name", name, "--provider", "smtp", "--sender", "news@example.com", "--daily-quota", "10000",
                        "--smtp-host", "127.0.0.1", "--smtp-port", "\(smtpPort)", "--smtp-security", "none", "--max-connections", "1"])
        }
        let csv = db.folder.appendingPathComponent("recipients.csv")
        try ("email,name\n" + (0..<300).map { "r\($0)@example.com,R \($0)" }.joined(separator: "\n") + "\n").write(to: csv, atomically: true, encoding: .utf8)
        let body = db.folder.appendingPathComponent("body.txt")
        try "Hello {{name}}".write(to: body, atomically: true, encoding: .utf8)
        try db.run(["task", "create", "--user-id", userID, "--name", "spring", "--csv", csv.path, "--subject", "Hi", "--body-file", body.path])
    }

    @Test("SIGTERM while a send hangs past the bound: serve says so and exits 0 at the bound, without tearing down what the send uses")
    func sigtermWithAHangingSend() async throws {
        // The peer waits 60 s before its 250: the send in flight outlives a 1 s bound.
        let smtp = try SMTPTestServer(["--data-delay", "60"])
        let db = try CLIDatabase()
        defer { db.remove() }
        try Self.createCampaign(in: db, smtpPort: smtp.port)
        let server = try await ServedEDMMonitor(db.arguments, environment: ["EDM_SHUTDOWN_TIMEOUT_SECONDS": "1"])
        for _ in 0..<400 where try smtp.messages().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try !smtp.messages().isEmpty, "no send started: \(server.process.stderr)")
        let signalled = Date()
        server.process.signal(SIGTERM)
        let status = server.process.wait(timeout: 30)
        let took = Date().timeIntervalSince(signalled)
        if status == nil { server.process.signal(SIGKILL) }
        #expect(status == 0, "\(server.process.stderr.suffix(3000))")
        #expect(took < 10, "serve took \(took) s to stop with a 1 s bound")
        #expect(server.process.stderr.contains("still running after the shutdown bound"), "\(server.process.stderr.suffix(3000))")
    }

    @Test("SIGTERM mid-campaign: serve exits 0 within the bound; every subtask is sent or pending, and sent equals what the SMTP peer received")
    func sigtermMidCampaign() async throws {
        // The peer records each message, then waits before its 250: at SIGTERM a send is in flight.
        let smtp = try SMTPTestServer(["--data-delay", "0.3"])
        let db = try CLIDatabase()
        defer { db.remove() }
        try Self.createCampaign(in: db, smtpPort: smtp.port)

        let server = try await ServedEDMMonitor(db.arguments, environment: ["EDM_SHUTDOWN_TIMEOUT_SECONDS": "10"])
        for _ in 0..<400 where try smtp.messages().count < 6 { try await Task.sleep(for: .milliseconds(50)) }
        let before = try smtp.messages().count
        #expect(before >= 6, "the campaign did not start: \(server.process.stderr)")
        let signalled = Date()
        server.process.signal(SIGTERM)
        let status = server.process.wait(timeout: 15)
        let took = Date().timeIntervalSince(signalled)
        if status == nil { server.process.signal(SIGKILL) }
        #expect(status == 0, "\(server.process.stderr)")
        #expect(took < 12, "serve took \(took) s to stop")
        #expect(server.process.stderr.contains("edm-monitor stopped"))
        #expect(server.process.stderr.contains("stopping: no new work is claimed; waiting up to 10 s"), "the signal's arrival is not logged")

        let received = try smtp.messages().count
        #expect(received < 300, "the campaign finished before the signal; make it longer")
        let counts = try await db.withApp { app in
            try await app.sql.raw("SELECT status, last_error, count(*) AS n FROM sub_tasks GROUP BY status, last_error").all(decoding: StatusCount.self)
        }
        let byStatus = Dictionary(grouping: counts, by: \.status).mapValues { $0.reduce(0) { $0 + $1.n } }
        #expect(Set(byStatus.keys).isSubset(of: ["sent", "pending"]), "\(counts)")
        #expect(!counts.contains { $0.last_error == "interrupted" }, "\(counts)")
        #expect(byStatus["sent"] == received, "recorded sent \(byStatus["sent"] ?? 0), peer received \(received)")
        #expect((byStatus["sent"] ?? 0) + (byStatus["pending"] ?? 0) == 300)
        // Messages of a claimed batch that no connection had taken at the signal were withdrawn:
        // pending again with their attempt given back, as if never claimed.
        let spent = try await db.withApp { app in
            try await app.sql.raw("SELECT count(*) AS n FROM sub_tasks WHERE status = 'pending' AND (attempts <> 0 OR claimed_by IS NOT NULL)").first(decoding: Count.self)?.n
        }
        #expect(spent == 0)
    }

    @Test("a second serve on the same SQLite file refuses with one line and exit 1; the CLI still works on it but cannot revert the migrations; after the first stops, a new serve starts")
    func secondServeOnOneSQLiteFileRefuses() async throws {
        let db = try CLIDatabase()
        defer { db.remove() }
        let first = try await ServedEDMMonitor(db.arguments)
        let port = try PostgresTestServer.freeLoopbackPort()
        let second = try runEDMMonitor(["serve", "--host", "127.0.0.1", "--port", "\(port)"] + db.arguments, timeout: 60)
        #expect(second.status == 1)
        let lines = second.stderr.split(separator: "\n").filter { $0.hasPrefix("edm-monitor: ") }
        #expect(lines.count == 1, "\(second.stderr)")
        #expect(second.stderr.contains("another edm-monitor serve (pid \(first.process.pid)) holds the SQLite database \(db.path)"), "\(second.stderr)")
        #expect(!second.stderr.contains("starting edm-monitor"), "a refused serve logged that it starts")
        #expect(first.process.isRunning)
        // Commands other than serve take no lock.
        let user = try runEDMMonitor(["user", "add", "--name", "Bo", "--email", "bo@example.com"] + db.arguments)
        #expect(user.status == 0, "\(user.stderr)")
        #expect(try runEDMMonitor(["migrate"] + db.arguments).status == 0)
        // …except reverting, which would drop the tables under the running server.
        let revert = try runEDMMonitor(["migrate", "--revert", "--yes"] + db.arguments)
        #expect(revert.status == 1)
        #expect(revert.stderr.contains("holds the SQLite database"), "\(revert.stderr)")
        #expect(try runEDMMonitor(["user", "add", "--name", "Cy", "--email", "cy@example.com"] + db.arguments).status == 0, "the tables were dropped")

        let stopped = first.stop()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        let third = try await ServedEDMMonitor(db.arguments)
        #expect(third.stop().status == 0)
    }

    // MARK: - Migrations on PostgreSQL

    @Test("three instances start at once on an empty PostgreSQL database: all come up, each migration and default rule exists once")
    func concurrentMigrationsOnPostgres() async throws {
        guard TestDatabase.enabled.contains(.postgres) else { return }
        let (location, cleanup) = try await TestDatabases.make(.postgres, migrated: false)
        defer { cleanup() }
        let settings = testSettings(location)
        let apps = try await withThrowingTaskGroup(of: Application.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let app = try await Application.make(.testing)
                    do {
                        try await configure(app, settings: settings)
                        try await prepareDatabase(app, settings: settings)
                        return app
                    } catch {
                        try? await app.asyncShutdown()
                        throw error
                    }
                }
            }
            var apps: [Application] = []
            for try await app in group { apps.append(app) }
            return apps
        }
        #expect(apps.count == 3)
        struct Count: Decodable { var name: String; var n: Int }
        let migrations = try await apps[0].sql.raw("SELECT name, count(*) AS n FROM _fluent_migrations GROUP BY name").all(decoding: Count.self)
        #expect(migrations.count == AppMigrations.all.count)
        #expect(migrations.allSatisfy { $0.n == 1 }, "\(migrations)")
        let rules = try await apps[1].sql.raw("SELECT name, count(*) AS n FROM alert_rules GROUP BY name").all(decoding: Count.self)
        // The seed's names, as ReviseDeadDefaultAlertRules renamed them, and the later seed.
        let revised = Dictionary(uniqueKeysWithValues: ReviseDeadDefaultAlertRules.revisions.map { ($0.seeded.name, $0.revised.name) })
        #expect(Set(rules.map(\.name)) == Set(SeedDefaultAlertRules.seeds.map { revised[$0.name] ?? $0.name } + [SeedEvaluationMissedIterationsRule.seed.name]))
        #expect(rules.allSatisfy { $0.n == 1 }, "\(rules)")
        for app in apps { try await app.asyncShutdown() }
    }
}
