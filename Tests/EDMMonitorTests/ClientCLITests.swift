@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor
#if canImport(Glibc)
import Glibc
#endif

/// `edm-monitor status`, `tasks` and `alerts` against a running server, and `serve --demo`.
@Suite("Client CLI")
struct ClientCLITests {
    /// Parses `text` as one JSON value. - Throws: when it is not JSON.
    static func json(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test("status, tasks and alerts show the running server's data; --json parses; bad filters are exit 2")
    func views() async throws {
        try await DashboardScenario.with { app, scenario in
            let server = ["--server", scenario.baseURL]
            let taskID = scenario.taskID.uuidString.lowercased()

            let status = try await runEDMMonitorAsync(["status"] + server)
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("EDM Monitor"))
            #expect(status.stdout.contains("Active tasks (1)"))
            #expect(status.stdout.contains(scenario.taskName))
            #expect(status.stdout.contains("\(scenario.sent) sent, 0 failed of \(scenario.total)"))
            #expect(status.stdout.contains("] 40%"), "a progress bar: \(status.stdout)")
            #expect(status.stdout.contains("Firing alerts ("))
            #expect(status.stdout.contains(scenario.ruleName))

            let statusJSON = try await runEDMMonitorAsync(["status", "--json"] + server)
            #expect(statusJSON.status == 0, "\(statusJSON.stderr)")
            guard case .object(let snapshot) = try Self.json(statusJSON.stdout) else { throw TestSupportError("not an object: \(statusJSON.stdout)") }
            #expect(Set(snapshot.keys).isSuperset(of: ["server", "health", "queue", "tasks", "alerts"]))
            guard case .array(let tasks)? = snapshot["tasks"], case .object(let task)? = tasks.first else { throw TestSupportError("no tasks in \(snapshot)") }
            #expect(task["task_id"]?.stringValue?.lowercased() == taskID)

            let list = try await runEDMMonitorAsync(["tasks", "--status", "sending"] + server)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.contains(taskID))
            #expect(list.stdout.contains("page 1 of 1 (1 tasks)"))
            let listJSON = try await runEDMMonitorAsync(["tasks", "--json", "--per-page", "5"] + server)
            guard case .object(let page) = try Self.json(listJSON.stdout), case .array(let rows)? = page["data"] else { throw TestSupportError("\(listJSON.stdout)") }
            #expect(rows.count == 1)
            let none = try await runEDMMonitorAsync(["tasks", "--status", "completed"] + server)
            #expect(none.stdout.contains("no tasks"))
            let bad = try await runEDMMonitorAsync(["tasks", "--status", "bogus"] + server)
            #expect(bad.status == 2)
            #expect(bad.stderr.split(separator: "\n").count == 1)
            #expect(bad.stderr.contains("status: must be one of"), "\(bad.stderr)")

            let alerts = try await runEDMMonitorAsync(["alerts", "--status", "active", "--severity", "critical"] + server)
            #expect(alerts.status == 0, "\(alerts.stderr)")
            #expect(alerts.stdout.contains(scenario.alertID.uuidString.lowercased()))
            #expect(alerts.stdout.contains("firing"))
            let alertsJSON = try await runEDMMonitorAsync(["alerts", "--json", "--rule-id", scenario.ruleID.uuidString] + server)
            guard case .object(let alertPage) = try Self.json(alertsJSON.stdout), case .array(let alertRows)? = alertPage["data"] else { throw TestSupportError("\(alertsJSON.stdout)") }
            #expect(alertRows.count == 1)

            // The environment variable names the server too.
            let fromEnvironment = try await runEDMMonitorAsync(["alerts", "--json"], environment: ["EDM_SERVER_URL": scenario.baseURL])
            #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")
            _ = app
        }
    }

    @Test("status --watch redraws until SIGINT (exit 0), or for --count frames")
    func watch() async throws {
        try await DashboardScenario.with { _, scenario in
            let counted = try await runEDMMonitorAsync(["status", "--watch", "--count", "2", "--interval", "1", "--json", "--server", scenario.baseURL])
            #expect(counted.status == 0, "\(counted.stderr)")
            let frames = counted.stdout.split(separator: "\n")
            #expect(frames.count == 2)
            for frame in frames { _ = try Self.json(String(frame)) }

            let child = try startEDMMonitor(["status", "--watch", "--interval", "1", "--server", scenario.baseURL])
            let deadline = Date().addingTimeInterval(30)
            while child.stdout.components(separatedBy: "Firing alerts").count < 3 {
                guard child.isRunning, Date() < deadline else { throw TestSupportError("no second frame: \(child.stdout) \(child.stderr)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            child.signal(SIGINT)
            var exit: Int32?
            for _ in 0..<100 where exit == nil {
                if !child.isRunning { exit = child.wait(timeout: 0) }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(exit == 0, "\(child.stderr)")
        }
    }

    @Test("a server that is down or wants a token: one line with a hint, exit 1; a malformed URL is exit 2")
    func errors() async throws {
        let closed = try PostgresTestServer.freeLoopbackPort()
        let down = try await runEDMMonitorAsync(["status", "--server", "http://127.0.0.1:\(closed)"])
        #expect(down.status == 1)
        #expect(down.stderr.split(separator: "\n").count == 1)
        #expect(down.stderr.contains("cannot reach the server"), "\(down.stderr)")
        #expect(down.stderr.contains("edm-monitor serve"))

        // A server that refuses every request without a token, as the API does once tokens exist.
        let guarded = try await Application.make(.testing)
        let port = try PostgresTestServer.freeLoopbackPort()
        guarded.http.server.configuration.hostname = "127.0.0.1"
        guarded.http.server.configuration.port = port
        guarded.logger.logLevel = .warning
        guarded.get(.catchall) { req -> Response in
            let authorized = req.headers.bearerAuthorization?.token == "good-token"
            let body = authorized ? #"{"data":[],"pagination":{"page":1,"per_page":50,"total":0}}"# : #"{"error":{"code":"unauthorized","message":"a bearer token is required","details":[]}}"#
            return Response(status: authorized ? .ok : .unauthorized, headers: ["Content-Type": "application/json"], body: .init(string: body))
        }
        try guarded.server.start()
        do {
            let refused = try await runEDMMonitorAsync(["tasks", "--server", "http://127.0.0.1:\(port)"])
            #expect(refused.status == 1)
            #expect(refused.stderr.split(separator: "\n").count == 1)
            #expect(refused.stderr.contains("401"), "\(refused.stderr)")
            #expect(refused.stderr.contains("--token") && refused.stderr.contains("EDM_API_TOKEN"))
            let withToken = try await runEDMMonitorAsync(["tasks", "--server", "http://127.0.0.1:\(port)"], environment: ["EDM_API_TOKEN": "good-token"])
            #expect(withToken.status == 0, "\(withToken.stderr)")
            #expect(withToken.stdout.contains("no tasks"))
        } catch {
            await guarded.server.shutdown()
            try await guarded.asyncShutdown()
            throw error
        }
        await guarded.server.shutdown()
        try await guarded.asyncShutdown()

        let malformed = try await runEDMMonitorAsync(["alerts", "--server", "ftp://example.com"])
        #expect(malformed.status == 2)
        #expect(malformed.stderr.contains("--server"))
    }

    @Test("serve --demo creates a dry_run service and a sample task that starts sending, once")
    func demo() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-demo-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = "sqlite://\(folder.path)/edm.sqlite"

        func serve() async throws -> (ChildProcess, String) {
            let port = try PostgresTestServer.freeLoopbackPort()
            let child = try startEDMMonitor(["serve", "--demo", "--port", "\(port)", "--database-url", database, "--log-level", "warning"])
            let base = "http://127.0.0.1:\(port)"
            let deadline = Date().addingTimeInterval(60)
            while (try? await ClientCLITests.get(base + "/api/monitoring/health")) == nil {
                guard child.isRunning, Date() < deadline else { throw TestSupportError("serve did not come up: \(child.stderr)") }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (child, base)
        }
        func stop(_ child: ChildProcess) async {
            child.signal(SIGTERM)
            for _ in 0..<200 where child.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        }

        let (first, base) = try await serve()
        do {
            // Sending starts within seconds of the start (one message per half second).
            let deadline = Date().addingTimeInterval(30)
            var sent = 0.0
            while sent < 2 {
                guard Date() < deadline else { throw TestSupportError("the demo task sent nothing: \(first.stderr)") }
                try await Task.sleep(for: .milliseconds(250))
                guard case .object(let page) = try await Self.get(base + "/api/tasks"), case .array(let tasks)? = page["data"],
                      case .object(let task)? = tasks.first else { continue }
                #expect(tasks.count == 1)
                #expect(task["total"] == .number(Double(DemoData.recipientCount)))
                sent = task["sent"]?.doubleValue ?? 0
            }
        } catch {
            await stop(first)
            throw error
        }
        await stop(first)

        let (second, base2) = try await serve()
        defer { second.signal(SIGKILL) }
        #expect(Self.total(try await Self.get(base2 + "/api/tasks")) == 1, "the demo task was created again")
        #expect(Self.total(try await Self.get(base2 + "/api/email-services")) == 1)
        await stop(second)
    }

    /// `pagination.total` of a list answer.
    static func total(_ list: JSONValue) -> Double? {
        guard case .object(let object) = list, case .object(let pagination)? = object["pagination"] else { return nil }
        return pagination["total"]?.doubleValue
    }

    /// `GET url` as JSON through the shared HTTP client (nil body on failure is a throw).
    static func get(_ url: String) async throws -> JSONValue {
        let response = try await HTTPClient.shared.get(url: url).get()
        guard response.status == .ok, let body = response.body else { throw TestSupportError("GET \(url): \(response.status)") }
        return try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
    }
}
