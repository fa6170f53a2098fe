@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting
import Yams

/// The deployment kit in `deploy/` (issue #17 item 3), each file checked by its own tool:
/// `systemd-analyze verify`, `promtool check config|rules` and `test rules`, `amtool
/// check-config`, and the Grafana dashboard's and the rules' queries against what `/metrics`
/// exposes. A missing tool skips its check, unless `EDM_REQUIRE_DEPLOY_TOOLS=1` (CI) makes it
/// a failure.
@Suite("Deployment kit")
struct DeployKitTests {
    /// The repository's `deploy/` folder.
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy")

    /// `tool` on PATH; `nil` (and a recorded issue when CI requires the tools) when missing.
    static func tool(_ name: String, package: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/bin:/bin"
        if let found = path.split(separator: ":").map({ "\($0)/\(name)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            return found
        }
        if ProcessInfo.processInfo.environment["EDM_REQUIRE_DEPLOY_TOOLS"] == "1" {
            Issue.record("\(name) is not on PATH but EDM_REQUIRE_DEPLOY_TOOLS=1 (install the Debian package \(package))")
        }
        return nil
    }

    /// Runs `executable` with `arguments` in `directory`; returns its status, standard output
    /// and both outputs together (for messages).
    static func run(_ executable: String, _ arguments: [String], in directory: URL) throws -> (status: Int32?, stdout: String, output: String) {
        let child = try ChildProcess("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", directory.path, executable] + arguments)
        let status = child.wait(timeout: 120)
        return (status, child.stdout, child.stdout + child.stderr)
    }

    @Test("the systemd unit passes systemd-analyze verify (with ExecStart pointing at the built binary)")
    func systemdUnit() throws {
        let unit = try String(contentsOf: Self.deploy.appendingPathComponent("systemd/edm-monitor.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/edm-monitor serve"))
        #expect(unit.contains("RestartPreventExitStatus=2"))
        guard let analyze = Self.tool("systemd-analyze", package: "systemd") else { return }
        // verify insists that the binary exists; the installed path does not here, the built one does.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-unit-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = try edmMonitorExecutable().path
        try unit.replacingOccurrences(of: "/usr/local/bin/edm-monitor", with: binary)
            .write(to: folder.appendingPathComponent("edm-monitor.service"), atomically: true, encoding: .utf8)
        let (status, _, output) = try Self.run(analyze, ["verify", "./edm-monitor.service"], in: folder)
        #expect(status == 0, "systemd-analyze verify: \(output)")
        #expect(!output.contains("edm-monitor.service:"), "warnings: \(output)")
    }

    @Test("the Prometheus config and rules pass promtool check config, check rules and test rules")
    func prometheus() throws {
        guard let promtool = Self.tool("promtool", package: "prometheus") else { return }
        let folder = Self.deploy.appendingPathComponent("prometheus")
        for arguments in [["check", "config", "prometheus.yml"], ["check", "rules", "edm-monitor.rules.yml"], ["test", "rules", "edm-monitor.rules.test.yml"]] {
            let (status, _, output) = try Self.run(promtool, arguments, in: folder)
            #expect(status == 0, "promtool \(arguments.joined(separator: " ")): \(output)")
        }
    }

    /// The rules file's alerts: name, expression, labels.
    static func prometheusRules() throws -> [(alert: String, expr: String, labels: [String: String])] {
        let text = try String(contentsOf: deploy.appendingPathComponent("prometheus/edm-monitor.rules.yml"), encoding: .utf8)
        struct File: Decodable {
            struct Group: Decodable { var rules: [Rule] }
            struct Rule: Decodable { var alert: String; var expr: String; var labels: [String: String]? }
            var groups: [Group]
        }
        let file = try YAMLDecoder().decode(File.self, from: text)
        return file.groups.flatMap(\.rules).map { ($0.alert, $0.expr, $0.labels ?? [:]) }
    }

    @Test("every unit test in the rules' test file names an alert of the rules file, and every alert has one")
    func everyRuleTested() throws {
        let tests = try String(contentsOf: Self.deploy.appendingPathComponent("prometheus/edm-monitor.rules.test.yml"), encoding: .utf8)
        let alerts = Set(try Self.prometheusRules().map(\.alert))
        let tested = Set(tests.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("alertname:") else { return nil }
            return trimmed.dropFirst("alertname:".count).trimmingCharacters(in: .whitespaces)
        })
        #expect(tested == alerts, "tested \(tested.sorted()), rules \(alerts.sorted())")
    }

    @Test("the Alertmanager example passes amtool check-config and routes critical edm-monitor alerts to the on-call webhook")
    func alertmanager() throws {
        guard let amtool = Self.tool("amtool", package: "prometheus-alertmanager") else { return }
        let folder = Self.deploy.appendingPathComponent("alertmanager")
        let (status, _, output) = try Self.run(amtool, ["check-config", "alertmanager.yml"], in: folder)
        #expect(status == 0, "amtool check-config: \(output)")
        let critical = try Self.run(amtool, ["config", "routes", "test", "--config.file=alertmanager.yml", "service=edm-monitor", "severity=critical", "alertname=EdmDatabaseSlow"], in: folder)
        // amtool warns on standard error that --config.file overrides --alertmanager.url.
        #expect(critical.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "edm-oncall", "\(critical.output)")
        let warning = try Self.run(amtool, ["config", "routes", "test", "--config.file=alertmanager.yml", "service=edm-monitor", "severity=warning", "alertname=EdmTaskStuck"], in: folder)
        #expect(warning.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "edm-team", "\(warning.output)")
    }

    /// Metric names of `/metrics` (`# TYPE` lines) on an application with a service, a task, a
    /// request and one collection, with each histogram's `_bucket`, `_sum` and `_count`.
    static func exposedNames(_ app: Application) async throws -> Set<String> {
        let user = try await Fixtures.user(app)
        try await Fixtures.service(app, name: "relay")
        _ = try await Fixtures.task(app, user: user, recipients: 2)
        try await app.testing().test(.GET, "/api/users") { _ in }
        await app.systemMonitor.collectOnce()
        var text = ""
        try await app.testing().test(.GET, "/metrics") { res in text = res.body.string }
        var names = Set<String>()
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            guard parts.count >= 4 else { continue }
            let name = String(parts[2])
            names.insert(name)
            if parts[3] == "histogram" { names.formUnion(["_bucket", "_sum", "_count"].map { name + $0 }) }
        }
        return names
    }

    /// The metric names a PromQL expression reads: every `edm_…` identifier, and `up`.
    static func metricNames(in expr: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: #"\b(edm_[a-z0-9_]+|up)\b(?=\s*[\{\[\)\s]|$)"#)
        let range = NSRange(expr.startIndex..., in: expr)
        return Set(pattern.matches(in: expr, range: range).compactMap { Range($0.range(at: 1), in: expr).map { String(expr[$0]) } })
    }

    @Test("the Grafana dashboard is valid JSON and every panel's query names a metric that /metrics exposes")
    func grafana() async throws {
        let data = try Data(contentsOf: Self.deploy.appendingPathComponent("grafana/edm-monitor-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        #expect(panels.count >= 10)
        try await withApp(.sqlite) { app, _ in
            let exposed = try await Self.exposedNames(app)
            for name in ["edm_queue_pending_subtasks", "edm_queue_oldest_wait_seconds", "edm_emails_sent_total", "edm_emails_failed_total", "edm_tasks",
                         "edm_tasks_stuck", "edm_email_service_state", "edm_email_service_quota_remaining", "edm_alerts"] {
                #expect(exposed.contains(name), "/metrics lacks \(name)")
            }
            var used = Set<String>()
            for panel in panels {
                let title = panel["title"] as? String ?? "?"
                let targets = panel["targets"] as? [[String: Any]] ?? []
                #expect(!targets.isEmpty, "panel \(title) has no query")
                for target in targets {
                    let expr = target["expr"] as? String ?? ""
                    let names = Self.metricNames(in: expr)
                    #expect(!names.isEmpty, "panel \(title): no metric in \(expr)")
                    for name in names where name != "up" {
                        #expect(exposed.contains(name), "panel \(title) queries \(name), which /metrics does not expose")
                    }
                    used.formUnion(names)
                }
            }
            // The issue's figures all have a panel.
            for name in ["edm_queue_pending_subtasks", "edm_queue_oldest_wait_seconds", "edm_emails_sent_total", "edm_emails_failed_total", "edm_tasks",
                         "edm_tasks_stuck", "edm_email_service_state", "edm_email_service_quota_remaining", "edm_alerts"] {
                #expect(used.contains(name), "no panel shows \(name)")
            }
        }
    }

    @Test("the Prometheus rules mirror every default rule and query only metrics /metrics exposes")
    func rulesMirrorDefaults() async throws {
        let rules = try Self.prometheusRules()
        try await withApp(.sqlite) { app, _ in
            let defaults = try await AlertRule.query(on: app.db).all()
            let mirrored = Set(rules.compactMap { $0.labels["edm_rule"] })
            for rule in defaults {
                #expect(mirrored.contains(rule.name), "default rule '\(rule.name)' has no alert in deploy/prometheus/edm-monitor.rules.yml (label edm_rule)")
                if let mirror = rules.first(where: { $0.labels["edm_rule"] == rule.name }) {
                    #expect(mirror.labels["severity"] == rule.severity.rawValue, "\(mirror.alert): severity")
                }
            }
            let exposed = try await Self.exposedNames(app)
            for rule in rules {
                let names = Self.metricNames(in: rule.expr)
                #expect(!names.isEmpty, "\(rule.alert): no metric in \(rule.expr)")
                for name in names where name != "up" {
                    #expect(exposed.contains(name), "\(rule.alert) queries \(name), which /metrics does not expose")
                }
            }
        }
    }
}
