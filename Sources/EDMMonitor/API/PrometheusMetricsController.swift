import EDMMonitorCore
import Foundation
import Prometheus
import Vapor

/// `GET /metrics`: the current values of our own metrics in the Prometheus text format 0.0.4
/// (``PrometheusTextFormat``), for a Prometheus server to scrape.
///
/// Families: the API figures from ``APIMetricsRecorder`` (`edm_api_requests_total` counter,
/// `edm_api_request_duration_seconds` histogram, `edm_api_error_rate_percent` gauge), every
/// point of the latest ``SystemMonitorService`` cycle (host, process, database, and the queue,
/// sending and alert figures of ``QueueCollector``), as a counter when its name ends in
/// `_total`, else a gauge, and `edm_tasks_stuck` from the task monitor's memory. A scrape runs
/// no database query: the collectors' few aggregate queries run on their own interval. Before the first cycle only the API
/// families are present. After them comes the swift-prometheus registry that swift-metrics
/// reports into (``SwiftMetricsBridge``).
struct PrometheusMetricsController: RouteCollection {
    /// Request counts and latencies of the API.
    let apiMetrics: APIMetricsRecorder
    /// The latest collector cycle.
    let systemMonitor: SystemMonitorService
    /// Whether the last alert evaluation failed.
    let alerting: AlertManagerService
    /// What swift-metrics reports into.
    let registry: PrometheusCollectorRegistry
    /// The stuck tasks of its last detection (kept in memory).
    let taskMonitor: TaskMonitorService

    func boot(routes: any RoutesBuilder) throws {
        routes.get("metrics", use: metrics)
    }

    @Sendable func metrics(_ req: Request) async throws -> Response {
        var families = Self.families(api: apiMetrics, snapshot: systemMonitor.latestSnapshot)
        // The evaluator's meta-alert for an outside Prometheus: 1 while alert evaluation fails
        // (the database is unreachable, so no alert of ours can fire or resolve meanwhile).
        families.append(PrometheusMetricFamily(
            name: "edm_alert_evaluation_failing", help: "1 when the last alert evaluation failed, else 0.", type: .gauge,
            samples: [PrometheusSample(value: alerting.lastEvaluationError == nil ? 0 : 1)]))
        families.append(Self.stuckTasks(taskMonitor.stuckTasks.values))
        var text: String
        do {
            text = try PrometheusTextFormat.encode(families)
            // Then whatever reports through swift-metrics (Vapor's http_* families once `serve`
            // bootstrapped it), as swift-prometheus emits it; its names never collide with ours (edm_*).
            text += Self.withHelp(registry.emitToString())
        } catch {
            req.logger.error("cannot expose metrics", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, .internalError, "the metrics cannot be exposed; see the server log")
        }
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .contentType, value: PrometheusTextFormat.contentType)
        return Response(status: .ok, headers: headers, body: .init(string: text))
    }

    /// Adds a `# HELP` line before every `# TYPE` line that has none: metrics created through
    /// swift-metrics (Vapor's `http_*`) carry no help text, which `promtool check metrics` flags.
    static func withHelp(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst("# TYPE ".count).split(separator: " ").first ?? ""
                if !(lines.last?.hasPrefix("# HELP \(name) ") ?? false) {
                    lines.append("# HELP \(name) Reported through swift-metrics (by Vapor or another library).")
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// `# HELP` texts of the collectors' metrics; others get a generic text naming the unit.
    static let help: [String: String] = [
        "edm_system_cpu_usage_percent": "Host CPU busy share since the previous collection (all CPUs; steal counts as busy).",
        "edm_system_memory_usage_percent": "Memory used of the limit: host MemTotal-MemAvailable, or the cgroup usage of its limit (scope label).",
        "edm_system_memory_used_bytes": "Memory used, bytes (host or cgroup, see scope).",
        "edm_system_memory_limit_bytes": "Memory limit the usage percent is measured against, bytes.",
        "edm_system_load1": "Host load average over 1 minute.",
        "edm_system_load5": "Host load average over 5 minutes.",
        "edm_system_load15": "Host load average over 15 minutes.",
        "edm_system_uptime_seconds": "Host uptime in seconds.",
        "edm_system_disk_usage_percent": "Used share of the filesystem holding the data folder, as df computes it.",
        "edm_system_disk_free_bytes": "Bytes available to unprivileged users on the filesystem holding the data folder.",
        "edm_system_network_receive_bytes_total": "Bytes received per network interface since boot.",
        "edm_system_network_transmit_bytes_total": "Bytes transmitted per network interface since boot.",
        "edm_process_resident_memory_bytes": "Resident memory of the edm-monitor process, bytes.",
        "edm_process_open_fds": "Open file descriptors of the edm-monitor process.",
        "edm_process_threads": "Threads of the edm-monitor process.",
        "edm_process_cpu_seconds_total": "User and system CPU time of the edm-monitor process, seconds.",
        "edm_db_query_latency_seconds": "Round trip of a trivial database query, seconds.",
        "edm_db_size_bytes": "Size of the database, bytes.",
        "edm_queue_subtasks": "Subtasks by status.",
        "edm_queue_active_tasks": "Tasks queued or sending.",
        "edm_queue_services": "Email services by state.",
        "edm_queue_active_reservations": "Service reservations (leases) not yet expired.",
        "edm_queue_pending_subtasks": "Pending subtasks of tasks that may send now (queued or sending, due).",
        "edm_queue_oldest_wait_seconds": "Seconds since the oldest pending subtask of a task that may send became eligible; 0 when none.",
        "edm_emails_sent_total": "Emails sent, by email service (subtasks in status sent).",
        "edm_emails_failed_total": "Emails failed, by email service and kind (cancelled, interrupted, rejected).",
        "edm_tasks": "Tasks by state.",
        "edm_email_service_state": "1 for the email service's current state (available, paced, quota_exhausted, frozen, disabled), 0 for the others.",
        "edm_email_service_quota_remaining": "Emails the service may still send today (daily quota minus used).",
        "edm_alerts": "Open alert episodes by state (firing, acknowledged, suppressed) and severity.",
    ]

    /// `edm_tasks_stuck{reason}`: tasks the task monitor's last detection found stuck, by
    /// ``StuckReason`` (every reason, 0 included); from memory, no query.
    static func stuckTasks(_ stuck: some Sequence<StuckTask>) -> PrometheusMetricFamily {
        var byReason: [StuckReason: Int] = [:]
        for task in stuck { byReason[task.reason, default: 0] += 1 }
        return PrometheusMetricFamily(
            name: "edm_tasks_stuck", help: "Tasks that can send, have work left and sent nothing for stuck_threshold_seconds, by reason.", type: .gauge,
            samples: StuckReason.allCases.map { PrometheusSample(labels: ["reason": $0.rawValue], value: Double(byReason[$0] ?? 0)) })
    }

    /// The families to expose.
    static func families(api: APIMetricsRecorder, snapshot: SystemSnapshot?) -> [PrometheusMetricFamily] {
        var families: [PrometheusMetricFamily] = []
        families.append(PrometheusMetricFamily(
            name: "edm_api_requests_total", help: "HTTP requests answered, by method, route pattern and status.", type: .counter,
            samples: api.requestCounts.map { key, count in
                PrometheusSample(labels: ["method": key.method, "route": key.route, "status": String(key.status)], value: Double(count))
            }))
        var latency: [PrometheusSample] = []
        for (key, histogram) in api.latencies {
            let labels = ["method": key.method, "route": key.route]
            for (index, bound) in APIMetricsRecorder.latencyBuckets.enumerated() {
                latency.append(PrometheusSample(suffix: "_bucket", labels: labels.merging(["le": PrometheusTextFormat.formatValue(bound)]) { $1 }, value: Double(histogram.buckets[index])))
            }
            latency.append(PrometheusSample(suffix: "_bucket", labels: labels.merging(["le": "+Inf"]) { $1 }, value: Double(histogram.count)))
            latency.append(PrometheusSample(suffix: "_sum", labels: labels, value: histogram.sum))
            latency.append(PrometheusSample(suffix: "_count", labels: labels, value: Double(histogram.count)))
        }
        families.append(PrometheusMetricFamily(name: "edm_api_request_duration_seconds", help: "HTTP request latency by method and route pattern, seconds.", type: .histogram, samples: latency))
        families.append(PrometheusMetricFamily(name: "edm_api_error_rate_percent", help: "Share of HTTP requests answered 5xx over the last 5 minutes, percent.", type: .gauge,
                                               samples: [PrometheusSample(value: api.errorRatePercent())]))

        var byName: [String: [MetricPoint]] = [:]
        for (collector, points) in snapshot?.points ?? [:] where collector != "api" {
            for point in points { byName[point.name, default: []].append(point) }
        }
        for (name, points) in byName {
            // One sample per label set: a collector repeating a series keeps its last value.
            var samples: [String: PrometheusSample] = [:]
            for point in points { samples[MetricStore.canonicalJSON(point.tags)] = PrometheusSample(labels: point.tags, value: point.value) }
            let unit = points.first?.unit ?? "none"
            families.append(PrometheusMetricFamily(
                name: name, help: help[name] ?? "EDM Monitor metric \(name) (unit: \(unit)).",
                type: name.hasSuffix("_total") ? .counter : .gauge,
                samples: samples.keys.sorted().compactMap { samples[$0] }))
        }
        return families
    }
}
