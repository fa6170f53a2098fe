@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import Testing
import Vapor
import VaporTesting
import Synchronization

/// The web dashboard: its embedded files, how they are served, and the pages in headless Chromium.
@Suite("Dashboard")
struct DashboardTests {
    static let staticFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/EDMMonitor/Web/Static")

    @Test("the embedded files are exactly Web/Static (add a new file's line to WebAssets.files)")
    func embeddedAssetsAreCurrent() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.staticFolder.path).sorted()
        #expect(names == WebAssets.files.keys.sorted(), "files in Web/Static and WebAssets.files differ: list the new file in Web/DashboardController.swift")
        for name in names {
            let text = try String(contentsOf: Self.staticFolder.appendingPathComponent(name), encoding: .utf8)
            #expect(WebAssets.files[name]?.text == text, "\(name) is served with other bytes than Web/Static holds")
        }
        // No external asset: every script, stylesheet and fetch is same-origin.
        for (name, file) in WebAssets.files {
            #expect(!file.text.contains("http://") && !file.text.contains("https://") || name == "charts.js", "\(name) refers to another origin")
        }
    }

    @Test("GET / serves the page and /assets/NAME its files, with no-cache and a same-origin CSP; unknown names are 404 JSON")
    func serving() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/") { res in
                #expect(res.status == .ok)
                #expect(res.headers.contentType?.description.hasPrefix("text/html") == true)
                #expect(res.headers.first(name: "Content-Security-Policy")?.contains("default-src 'self'") == true)
                #expect(res.headers.first(name: .cacheControl) == "no-cache")
                #expect(res.body.string.contains("/assets/app.js"))
            }
            for (name, type) in [("app.js", "text/javascript"), ("charts.js", "text/javascript"), ("style.css", "text/css")] {
                try await app.testing().test(.GET, "/assets/\(name)") { res in
                    #expect(res.status == .ok, "\(name)")
                    #expect(res.headers.first(name: .contentType)?.hasPrefix(type) == true, "\(name)")
                    #expect(res.headers.first(name: "X-Content-Type-Options") == "nosniff")
                }
            }
            for missing in ["nope.js", "index.html", "..%2Fconfigure.swift"] {
                try await app.testing().test(.GET, "/assets/\(missing)") { res in
                    #expect(res.status == .notFound, "\(missing)")
                    let body = try res.content.decode(ErrorBody.self)
                    #expect(body.error.code == "not_found")
                }
            }
        }
    }

    @Test(
        "Chromium: overview charts have points, the task shows its progress, services and alerts render, the ack button acknowledges (EDM_REQUIRE_CHROMIUM=1 in CI)",
        .enabled(if: WebDriver.isEnabled, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver); skipped — CI sets EDM_REQUIRE_CHROMIUM=1")
    )
    func pagesInChromium() async throws {
        try await DashboardScenario.with { app, scenario in
            let browser = try await WebDriver.start()
            do {
                try await Self.walkThrough(browser, app: app, scenario: scenario)
                await browser.quit()
            } catch {
                try? await browser.screenshot(to: testArtifactsDirectory("dashboard").appendingPathComponent("failure.png"))
                await browser.quit()
                throw error
            }
        }
    }

    /// Opens every page, checks what it shows and acts on the alert.
    static func walkThrough(_ browser: WebDriver, app: Application, scenario: DashboardScenario) async throws {
        let artifacts = testArtifactsDirectory("dashboard")
        let base = scenario.baseURL
        let taskID = scenario.taskID.uuidString.lowercased()
        /// `document.body.dataset.loaded` is set after the page's first complete refresh.
        let loaded = "return document.body.dataset.loaded !== undefined"

        // Overview: five charts with drawn points, component health, the critical alert counted.
        try await browser.open(base + "/#/overview")
        try await browser.wait("the overview to load", loaded)
        for chart in ["cpu", "memory", "load", "db-latency", "throughput"] {
            let points = try await browser.wait("points in the \(chart) chart", "return document.querySelectorAll('#chart-\(chart) svg circle.pt').length")
            #expect((points.doubleValue ?? 0) >= 12, "chart \(chart) has \(points) points")
            let axis = try await browser.execute("return document.querySelectorAll('#chart-\(chart) svg .axes text').length")
            #expect((axis.doubleValue ?? 0) >= 6, "chart \(chart) has no axis labels")
        }
        let tooltip = try await browser.execute("return document.querySelector('#chart-cpu circle.pt title').textContent")
        #expect(tooltip.stringValue?.contains("%") == true, "CPU tooltip \(tooltip)")
        let health = try await browser.execute("return document.getElementById('health').textContent")
        #expect(health.stringValue?.contains("database") == true)
        #expect(health.stringValue?.contains("collector: host") == true)
        let critical = try await browser.execute("return document.querySelector('#alert-counts [data-severity=critical] b').textContent")
        #expect(Int(critical.stringValue ?? "") ?? 0 >= 1, "critical alerts: \(critical)")
        let queue = try await browser.execute("return document.getElementById('queue').textContent")
        #expect(queue.stringValue?.contains("active tasks") == true)
        try await browser.screenshot(to: artifacts.appendingPathComponent("overview.png"))
        // The range picker asks again and redraws.
        try await browser.execute("document.querySelector('.picker [data-range=\"6h\"]').click()")
        try await browser.wait("the 6 h charts", "return document.querySelector('#chart-cpu figcaption').textContent.includes('6h') && document.querySelectorAll('#chart-cpu circle.pt').length > 0")

        // Tasks: the task's row with its progress bar at sent / total.
        try await browser.open(base + "/#/tasks")
        let percent = Double(scenario.sent) / Double(scenario.total) * 100
        let bar = try await browser.wait("the task's progress bar", """
            const row = [...document.querySelectorAll('tr[data-task-id]')].find((r) => r.dataset.taskId.toLowerCase() === arguments[0]);
            const bar = row && row.querySelector('[role=progressbar]');
            return bar ? [bar.getAttribute('aria-valuenow'), bar.textContent, row.textContent] : null;
            """, [.string(taskID)])
        guard case .array(let cells) = bar else { throw TestSupportError("unexpected \(bar)") }
        #expect(Double(cells[0].stringValue ?? "") == percent)
        #expect(cells[1].stringValue?.contains("\(scenario.sent) / \(scenario.total)") == true, "\(cells[1])")
        #expect(cells[2].stringValue?.contains(scenario.taskName) == true)
        #expect(cells[2].stringValue?.contains("sending") == true)
        try await browser.screenshot(to: artifacts.appendingPathComponent("tasks.png"))

        // The task's page: progress, figures and the timeline chart.
        try await browser.open(base + "/#/tasks/" + taskID)
        let timeline = try await browser.wait("points in the timeline chart", "return document.querySelectorAll('#chart-timeline circle.pt').length")
        #expect((timeline.doubleValue ?? 0) >= 3, "timeline has \(timeline) points")
        let head = try await browser.execute("return document.getElementById('task-head').textContent")
        #expect(head.stringValue?.contains("\(scenario.sent) / \(scenario.total)") == true, "\(head)")
        #expect(head.stringValue?.contains("wait time") == true)
        try await browser.screenshot(to: artifacts.appendingPathComponent("task.png"))

        // Services: the SMTP relay with its state and quota.
        try await browser.open(base + "/#/services")
        let service = try await browser.wait("the relay service", "const row = document.querySelector('#service-list tbody tr'); return row ? row.textContent : null")
        #expect(service.stringValue?.contains("relay") == true)
        #expect(service.stringValue?.contains("\(scenario.sent) / 1,000") == true, "\(service)")
        try await browser.screenshot(to: artifacts.appendingPathComponent("services.png"))

        // Alerts: the firing alert; "Acknowledge" acknowledges it (checked through the API).
        try await browser.open(base + "/#/alerts")
        let alertID = scenario.alertID.uuidString.lowercased()
        let findAlert = "[...document.querySelectorAll('tr[data-alert-id]')].find((r) => r.dataset.alertId.toLowerCase() === arguments[0])"
        try await browser.wait("the firing alert with an Acknowledge button", "const row = \(findAlert); return row && row.dataset.status === 'active' && !!row.querySelector('button.ack')", [.string(alertID)])
        try await browser.screenshot(to: artifacts.appendingPathComponent("alerts.png"))
        try await browser.execute("\(findAlert).querySelector('button.ack').click()", [.string(alertID)])
        var status = ""
        for _ in 0..<100 {
            status = try #require(try await AlertHistory.find(scenario.alertID, on: app.db)).status.rawValue
            if status == "acknowledged" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == "acknowledged")
        let acknowledged = try await app.testing().sendRequest(.GET, "/api/monitoring/alerts/\(scenario.alertID)")
        #expect(acknowledged.body.string.contains("\"acknowledged_by\":\"dashboard\""), "\(acknowledged.body.string)")
        try await browser.wait("the row to show acknowledged", "const row = \(findAlert); return row && row.dataset.status === 'acknowledged'", [.string(alertID)])

        // "Test now" on the rule shows what would happen, changing nothing.
        let ruleID = scenario.ruleID.uuidString.lowercased()
        try await browser.execute("[...document.querySelectorAll('#rule-list tr[data-rule-id]')].find((r) => r.dataset.ruleId.toLowerCase() === arguments[0]).querySelector('button.test').click()", [.string(ruleID)])
        let result = try await browser.wait("the rule test result", "const r = [...document.querySelectorAll('.test-result')].find((e) => e.dataset.ruleId.toLowerCase() === arguments[0]); return r ? r.textContent : null", [.string(ruleID)])
        #expect(result.stringValue?.contains("yes") == true, "\(result)")
        try await browser.screenshot(to: artifacts.appendingPathComponent("alerts-after-ack.png"))

        // With a real token created the API closes: the token typed into the field is sent as a
        // bearer token and the pages work; an unknown one is refused with the advice.
        let token = try await APITokens.create(name: "dashboard-viewer", role: .viewer, expiresAt: nil, createdBy: "test", on: app.db, now: Date()).token
        try await browser.execute("document.getElementById('token-input').value = arguments[0]; document.querySelector('#token-form button[type=submit]').click()", [.string(token)])
        try await browser.wait("requests with the token", "return sessionStorage.getItem('edm-monitor-token') === arguments[0]", [.string(token)])
        for _ in 0..<50 where !scenario.tokens.seen.withLock({ $0.contains("Bearer \(token)") }) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(scenario.tokens.seen.withLock { $0.contains("Bearer \(token)") })
        try await browser.execute("document.getElementById('token-input').value = 'rejected-token'; document.querySelector('#token-form button[type=submit]').click()")
        let banner = try await browser.wait("the 401 banner", "const b = document.getElementById('banner'); return !b.hidden && b.textContent")
        #expect(banner.stringValue?.contains("API token") == true, "\(banner)")
        try await browser.screenshot(to: artifacts.appendingPathComponent("token-refused.png"))
        try await browser.execute("document.getElementById('token-input').value = arguments[0]; document.querySelector('#token-form button[type=submit]').click()", [.string(token)])
        try await browser.wait("the banner to go with a valid token", "return document.getElementById('banner').hidden")

        // 401 answers are logged by the browser as failed resources; anything else is a bug.
        let errors = try await browser.consoleLog().filter { $0.hasPrefix("SEVERE") && !$0.contains("401") }
        #expect(errors.isEmpty, "browser console errors: \(errors)")
    }
}
