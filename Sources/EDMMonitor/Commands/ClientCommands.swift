import ArgumentParser
import Dispatch
import EDMMonitorCore
import Foundation
import Vapor

// `edm-monitor status`, `tasks` and `alerts`: terminal views of a running server, read over its
// JSON API (so they work over SSH next to the server, and with a token when tokens are on).

/// `edm-monitor status [--watch]`: health, queue, active tasks with progress bars, firing alerts.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running server's health, queue, active tasks and firing alerts.",
        discussion: "With --watch the view is redrawn every --interval seconds until Ctrl-C (or --count frames). With --json each frame is one line of JSON: {server, health, queue, tasks, alerts}."
    )

    @OptionGroup var client: ClientOptions

    @ArgumentParser.Flag(help: "Redraw the view every --interval seconds until interrupted.")
    var watch = false

    @ArgumentParser.Option(help: "Seconds between two frames of --watch (1 to 3600).")
    var interval: Double = 2

    @ArgumentParser.Option(help: "Stop --watch after this many frames.")
    var count: Int?

    /// At most this many active tasks are shown (each costs one request).
    static let taskLimit = 10

    func validate() throws {
        guard interval.isFinite, (1...3600).contains(interval) else { throw ArgumentParser.ValidationError("--interval must be from 1 to 3600 seconds") }
        if let count, count < 1 { throw ArgumentParser.ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let api = try client.client()
        guard watch else {
            print(try await frame(api))
            return
        }
        let stop = StopSignal()
        let clear = isatty(STDOUT_FILENO) == 1 && !client.json
        var frames = 0
        while !stop.isSet {
            let text: String
            do {
                text = try await frame(api)
            } catch let error as ClientError where !error.isFinal {
                // The server may be restarting: say so in this frame and keep watching.
                text = "edm-monitor: \(error.message)"
            }
            if clear { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(text)
            fflush(nil)  // every frame now, also into a pipe
            frames += 1
            if let count, frames >= count { break }
            await stop.sleep(seconds: interval)
        }
    }

    /// One frame: the text view, or one line of JSON with `--json`.
    func frame(_ api: APIClient) async throws -> String {
        let snapshot = try await StatusSnapshot.load(api, taskLimit: Self.taskLimit)
        return client.json ? try snapshot.json() : StatusView.render(snapshot, now: Date())
    }
}

/// Everything `status` shows, as the API answered it (typed, and raw for `--json`).
struct StatusSnapshot {
    var server: String
    var health: HealthReport
    var queue: TaskMonitoringController.QueueStatusDTO
    /// Monitoring details of the active (sending, then queued) tasks, at most the limit.
    var tasks: [TaskMonitoringController.TaskDetailDTO]
    /// Active tasks in all, which may exceed `tasks.count`.
    var activeTaskTotal: Int
    var alerts: [AlertsController.AlertDTO]
    var firingTotal: Int
    var raw: [String: JSONValue]

    /// Reads health (a 503 report included), queue status, active tasks and firing alerts.
    static func load(_ api: APIClient, taskLimit: Int) async throws -> StatusSnapshot {
        let decoder = APIJSON.decoder()
        func both<T: Decodable>(_ type: T.Type, _ data: Data) throws -> (T, JSONValue) {
            (try decoder.decode(T.self, from: data), try decoder.decode(JSONValue.self, from: data))
        }
        let (health, rawHealth) = try both(HealthReport.self, try await api.get("/api/monitoring/health", accept: [503]))
        let (queue, rawQueue) = try both(TaskMonitoringController.QueueStatusDTO.self, try await api.get("/api/monitoring/queue-status"))
        var active: [TasksController.TaskDTO] = []
        var activeTotal = 0
        for status in ["sending", "queued"] {
            let page = try await api.get(Page<TasksController.TaskDTO>.self, "/api/tasks", query: [("status", status), ("per_page", "\(taskLimit)")])
            active += page.data
            activeTotal += page.pagination.total
        }
        var tasks: [TaskMonitoringController.TaskDetailDTO] = []
        var rawTasks: [JSONValue] = []
        for task in active.prefix(taskLimit) {
            let (detail, raw) = try both(TaskMonitoringController.TaskDetailDTO.self, try await api.get("/api/monitoring/task-metrics/\(task.id.uuidString.lowercased())"))
            tasks.append(detail)
            rawTasks.append(Self.withoutTimeline(raw))
        }
        let (alerts, rawAlerts) = try both(Page<AlertsController.AlertDTO>.self, try await api.get("/api/monitoring/alerts", query: [("status", "active"), ("per_page", "20")]))
        let raw: [String: JSONValue] = [
            "server": .string(api.baseURL), "health": rawHealth, "queue": rawQueue, "tasks": .array(rawTasks),
            "alerts": rawAlerts, "active_tasks_total": .number(Double(activeTotal)),
        ]
        return StatusSnapshot(server: api.baseURL, health: health, queue: queue, tasks: tasks, activeTaskTotal: activeTotal,
                              alerts: alerts.data, firingTotal: alerts.pagination.total, raw: raw)
    }

    /// A task detail without its (long) metric timeline.
    private static func withoutTimeline(_ value: JSONValue) -> JSONValue {
        guard case .object(var object) = value else { return value }
        object["timeline"] = nil
        return .object(object)
    }

    /// One line of JSON: `{"server","health","queue","tasks","alerts","active_tasks_total"}`.
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(raw), as: UTF8.self)
    }
}

/// The text of `edm-monitor status`.
enum StatusView {
    static func render(_ s: StatusSnapshot, now: Date) -> String {
        var lines: [String] = []
        let h = s.health
        lines.append("EDM Monitor \(h.version) at \(s.server): \(h.status.rawValue.uppercased()), up \(CLIText.duration(Double(h.uptimeSeconds))), \(CLIText.time(now))")
        lines.append("  checks: " + h.checks.sorted { $0.key < $1.key }.map { name, check in
            var text = "\(name) \(check.status.rawValue)"
            if let ms = check.latencyMs { text += " (\(CLIText.decimal(ms, digits: 1)) ms)" }
            if let error = check.error { text += " — \(error)" }
            return text
        }.joined(separator: ", "))
        let q = s.queue
        lines.append("Queue:    " + ["pending", "sending", "sent", "failed"].map { "\($0) \(CLIText.count(q.subtasks[$0] ?? 0))" }.joined(separator: " · ")
            + " · \(CLIText.count(Int(q.throughput_per_hour_5m)))/h (5 min) · \(q.active_tasks) active · \(q.stuck_tasks) stuck")
        lines.append("Services: " + ServiceState.allCases.map { "\($0.rawValue) \(q.services_by_state[$0.rawValue] ?? 0)" }.joined(separator: " · "))
        lines.append("")
        lines.append("Active tasks (\(s.activeTaskTotal))" + (s.activeTaskTotal > s.tasks.count ? ", first \(s.tasks.count):" : ":"))
        if s.tasks.isEmpty { lines.append("  none") }
        for t in s.tasks {
            let p = t.progress
            var line = "  " + CLIText.pad(t.name, 24) + " " + CLIText.pad(t.status, 8) + " "
                + ProgressBar.render(done: p.sent + p.failed, total: p.total, width: 20)
                + "  \(CLIText.count(p.sent)) sent, \(CLIText.count(p.failed)) failed of \(CLIText.count(p.total))"
                + " · \(CLIText.count(Int(t.throughput.current_per_hour)))/h"
            if let seconds = t.eta.seconds { line += " · ETA \(CLIText.duration(seconds))" } else if let reason = t.eta.reason { line += " · ETA unknown (\(reason))" }
            if t.stuck.is_stuck {
                line += " · STUCK: \((t.stuck.reason ?? "unknown").replacingOccurrences(of: "_", with: " "))"
                if let reset = t.stuck.next_reset { line += " (quota resets \(CLIText.time(reset)))" }
            }
            lines.append(line)
        }
        lines.append("")
        lines.append("Firing alerts (\(s.firingTotal))" + (s.firingTotal > s.alerts.count ? ", newest \(s.alerts.count):" : ":"))
        if s.alerts.isEmpty { lines.append("  none") }
        for a in s.alerts {
            let tags = a.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            lines.append("  " + CLIText.pad(a.severity ?? "?", 8) + " " + CLIText.pad(a.rule_name ?? a.rule_id.uuidString, 28)
                + " since \(CLIText.time(a.triggered_at)) (\(CLIText.duration(now.timeIntervalSince(a.triggered_at))))"
                + (tags.isEmpty ? "" : " {\(tags)}") + " — " + CLIText.pad(a.message, 80, fill: false))
        }
        return lines.joined(separator: "\n")
    }
}

/// `--page` and `--per-page` of the list commands, passed on as the API's `page` and
/// `per_page` (the server checks them: a bad one is its 400, exit 2). Negative numbers are
/// taken as values, so the server's range message is what the user sees.
struct PageOptions: ParsableArguments {
    @ArgumentParser.Option(parsing: .unconditional, help: "Page number, from 1.") var page: Int?
    @ArgumentParser.Option(parsing: .unconditional, help: "Items per page, 1 to 500 (default 50).") var perPage: Int?

    /// The query parameters (absent ones `nil`).
    var query: [(String, String?)] { [("page", page.map(String.init)), ("per_page", perPage.map(String.init))] }
}

/// `edm-monitor tasks`: tasks newest first, with the filters of `GET /api/tasks`.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List a running server's tasks (GET /api/tasks).")

    @OptionGroup var client: ClientOptions
    @ArgumentParser.Option(help: "queued, sending, paused, completed, failed or cancelled.") var status: String?
    @ArgumentParser.Option(help: "Only this user's tasks.") var userId: String?
    @OptionGroup var paging: PageOptions

    func run() async throws {
        let query: [(String, String?)] = [("status", status), ("user_id", userId)] + paging.query
        try await ListView.show(TasksController.TaskDTO.self, "/api/tasks", query: query, client: client, noun: "tasks",
                                header: ["ID", "STATUS", "PROGRESS", "SENT", "FAILED", "TOTAL", "CREATED", "NAME"], rightAligned: [3, 4, 5]) { t in
            [t.id.uuidString.lowercased(), t.status, ProgressBar.render(done: t.sent + t.failed, total: t.total, width: 16),
             CLIText.count(t.sent), CLIText.count(t.failed), CLIText.count(t.total), t.created_at.map(CLIText.time) ?? "-", t.name]
        }
    }
}

/// `edm-monitor alerts`: alert episodes newest first, with the filters of `GET /api/monitoring/alerts`.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alerts", abstract: "List a running server's alerts (GET /api/monitoring/alerts).")

    @OptionGroup var client: ClientOptions
    @ArgumentParser.Option(help: "active (firing), acknowledged, suppressed or resolved.") var status: String?
    @ArgumentParser.Option(help: "info, warning or critical.") var severity: String?
    @ArgumentParser.Option(help: "Only this rule's alerts.") var ruleId: String?
    @ArgumentParser.Option(help: "Triggered at or after (ISO 8601 or Unix seconds).") var from: String?
    @ArgumentParser.Option(help: "Triggered at or before (ISO 8601 or Unix seconds).") var to: String?
    @OptionGroup var paging: PageOptions

    func run() async throws {
        let query: [(String, String?)] = [("status", status), ("severity", severity), ("rule_id", ruleId), ("from", from), ("to", to)] + paging.query
        try await ListView.show(AlertsController.AlertDTO.self, "/api/monitoring/alerts", query: query, client: client, noun: "alerts",
                                header: ["ID", "STATUS", "SEVERITY", "TRIGGERED", "VALUE", "RULE", "MESSAGE"], rightAligned: [4]) { a in
            [a.id.uuidString.lowercased(), a.status == "active" ? "firing" : a.status, a.severity ?? "?", CLIText.time(a.triggered_at),
             (a.last_value ?? a.trigger_value).map { CLIText.decimal($0, digits: 3) } ?? "-",
             a.rule_name ?? a.rule_id.uuidString.lowercased(), CLIText.pad(a.message, 70, fill: false)]
        }
    }
}

/// One page of a list endpoint on the terminal.
enum ListView {
    /// Prints the page at `path?query`: the API's JSON as it came with `--json`, else a table
    /// (`header`, then `row` of each item) and `page P of N (T noun)`.
    static func show<Item: Content>(_ item: Item.Type, _ path: String, query: [(String, String?)], client: ClientOptions, noun: String,
                                    header: [String], rightAligned: Set<Int>, row: (Item) -> [String]) async throws {
        let data = try await client.client().get(path, query: query)
        if client.json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let list = try APIJSON.decoder().decode(Page<Item>.self, from: data)
        print(list.data.isEmpty ? "no \(noun)" : CLIText.table([header] + list.data.map(row), rightAligned: rightAligned))
        print(CLIText.pageFooter(list.pagination, noun: noun))
    }
}

/// Ends `status --watch` on SIGINT or SIGTERM: the loop finishes its frame and the command
/// returns normally (exit status 0).
final class StopSignal: @unchecked Sendable {
    private let queue = DispatchQueue(label: "edm.stop-signal")
    private var stopped = false
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [unowned self] in self.stopped = true }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        sources.forEach { $0.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }

    var isSet: Bool { queue.sync { stopped } }

    /// Sleeps `seconds`, waking within 0.1 s of a signal.
    func sleep(seconds: Double) async {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !isSet, ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(100), deadline - ContinuousClock.now))
        }
    }
}

/// Text helpers of the terminal views.
enum CLIText {
    /// `1234567` → `1,234,567`.
    static func count(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// A number with at most `digits` decimals, trailing zeros dropped.
    static func decimal(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "-" }
        var text = String(format: "%.\(digits)f", value)
        if text.contains(".") { while text.hasSuffix("0") { text.removeLast() }; if text.hasSuffix(".") { text.removeLast() } }
        return text
    }

    /// `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let s = max(0, Int(seconds.rounded()))
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        if s < 86400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86400) d \(s % 86400 / 3600) h"
    }

    /// `2026-03-09 10:00:00Z` (UTC).
    static func time(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02dZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// `text` cut to `width` characters (with `…`), padded with spaces to `width` when `fill`.
    static func pad(_ text: String, _ width: Int, fill: Bool = true) -> String {
        let oneLine = text.replacingOccurrences(of: "\n", with: " ")
        if oneLine.count > width { return String(oneLine.prefix(width - 1)) + "…" }
        return fill ? oneLine + String(repeating: " ", count: width - oneLine.count) : oneLine
    }

    /// Rows as columns separated by two spaces; the first row is the header.
    static func table(_ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                if column == row.count - 1 { return cell }
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// `page 1 of 3 (120 tasks)`.
    static func pageFooter<T: Content>(_ info: Page<T>.Info, noun: String) -> String {
        let pages = max(1, (info.total + info.perPage - 1) / info.perPage)
        return "page \(info.page) of \(pages) (\(count(info.total)) \(noun))"
    }
}
