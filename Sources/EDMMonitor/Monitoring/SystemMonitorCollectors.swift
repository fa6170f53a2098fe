import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A source of metric points for one ``SystemMonitorService`` cycle.
///
/// `collect` returns the points of one cycle stamped `now`; it may throw, and then only its own
/// points are missing from the cycle (see ``SystemMonitorService/collectOnce()``).
public protocol MetricCollector: Sendable {
    /// Short, stable name for logs and the health snapshot: `host`, `process`, `database`, `queue`.
    var name: String { get }
    /// The points of one cycle at `now`.
    func collect(now: Date) async throws -> [MetricPoint]
}

/// Host figures from `/proc`, cgroups and `statvfs`, via ``HostFilesystem``:
///
/// | name | unit | tags | source |
/// |---|---|---|---|
/// | `edm_system_cpu_usage_percent` | percent | | `/proc/stat` delta since the previous cycle (busy = all but idle and iowait; steal is busy; guest is inside user); none on the first cycle |
/// | `edm_system_memory_usage_percent` | percent | `scope`=`host`\|`cgroup` | MemTotal − MemAvailable of MemTotal, or cgroup usage of its limit when a cgroup limits below the host |
/// | `edm_system_memory_used_bytes` | bytes | `scope` | the numerator above |
/// | `edm_system_memory_limit_bytes` | bytes | `scope` | the denominator above |
/// | `edm_system_load1`, `edm_system_load5`, `edm_system_load15` | none | | `/proc/loadavg` |
/// | `edm_system_uptime_seconds` | seconds | | `/proc/uptime` |
/// | `edm_system_disk_usage_percent` | percent | `path` | `statvfs` of the data folder: used ÷ (used + available to unprivileged users), as `df` |
/// | `edm_system_disk_free_bytes` | bytes | `path` | blocks available to unprivileged users × fragment size |
/// | `edm_system_network_receive_bytes_total`, `…_transmit_bytes_total` | bytes | `interface` | `/proc/net/dev` counters (query them with `agg=rate`) |
public final class HostCollector: MetricCollector {
    public let name = "host"
    let filesystem: HostFilesystem
    let dataDirectory: String
    private let previousCPU = Mutex<HostCPUStat?>(nil)

    /// A collector reading below `filesystem.root` and measuring the disk that holds `dataDirectory`.
    public init(filesystem: HostFilesystem = HostFilesystem(), dataDirectory: String) {
        self.filesystem = filesystem
        self.dataDirectory = dataDirectory
    }

    public func collect(now: Date) async throws -> [MetricPoint] {
        var points: [MetricPoint] = []
        let cpu = try filesystem.read(HostCPUStat.self)
        let previous = previousCPU.withLock { stored in defer { stored = cpu }; return stored }
        if let previous, let usage = cpu.usage(since: previous).aggregate {
            points.append(MetricPoint(name: "edm_system_cpu_usage_percent", value: usage.busyPercent, unit: "percent", timestamp: now))
        }
        // The cgroup's figures only when its limit is below the host's memory; otherwise the
        // host's MemTotal − MemAvailable (a cgroup's usage counts page cache, and against
        // MemTotal it would read higher than the host's own figure).
        let host = try filesystem.read(HostMemInfo.self)
        let memory = MemoryUsage(host: host, cgroup: try filesystem.cgroup().memory)
        let limited = memory.limitSource == .cgroup
        let scope = ["scope": limited ? "cgroup" : "host"]
        let used = limited ? memory.usageBytes : host.usedBytes
        let limit = limited ? memory.limitBytes : host.totalBytes
        let percent = limited ? memory.usagePercent : host.usedPercent
        points.append(MetricPoint(name: "edm_system_memory_usage_percent", value: percent, unit: "percent", tags: scope, timestamp: now))
        points.append(MetricPoint(name: "edm_system_memory_used_bytes", value: Double(used), unit: "bytes", tags: scope, timestamp: now))
        points.append(MetricPoint(name: "edm_system_memory_limit_bytes", value: Double(limit), unit: "bytes", tags: scope, timestamp: now))
        let load = try filesystem.read(HostLoadAverage.self)
        points.append(MetricPoint(name: "edm_system_load1", value: load.one, unit: "none", timestamp: now))
        points.append(MetricPoint(name: "edm_system_load5", value: load.five, unit: "none", timestamp: now))
        points.append(MetricPoint(name: "edm_system_load15", value: load.fifteen, unit: "none", timestamp: now))
        points.append(MetricPoint(name: "edm_system_uptime_seconds", value: try filesystem.read(HostUptime.self).uptimeSeconds, unit: "seconds", timestamp: now))
        let disk = try Self.diskUsage(of: dataDirectory)
        let path = ["path": String(dataDirectory.prefix(MetricStore.maxTagValueLength))]
        points.append(MetricPoint(name: "edm_system_disk_usage_percent", value: disk.usedPercent, unit: "percent", tags: path, timestamp: now))
        points.append(MetricPoint(name: "edm_system_disk_free_bytes", value: disk.freeBytes, unit: "bytes", tags: path, timestamp: now))
        for interface in try filesystem.read(HostNetDev.self).interfaces.prefix(64) {
            let tags = ["interface": String(interface.name.prefix(MetricStore.maxTagValueLength))]
            points.append(MetricPoint(name: "edm_system_network_receive_bytes_total", value: Double(interface.rxBytes), unit: "bytes", tags: tags, timestamp: now))
            points.append(MetricPoint(name: "edm_system_network_transmit_bytes_total", value: Double(interface.txBytes), unit: "bytes", tags: tags, timestamp: now))
        }
        return points
    }

    /// Disk figures of the filesystem holding `path`, as `df` computes them.
    struct DiskUsage: Equatable {
        /// used ÷ (used + available) × 100, where used = blocks − free.
        var usedPercent: Double
        /// Bytes available to unprivileged users (`f_bavail × f_frsize`).
        var freeBytes: Double
    }

    /// `statvfs(3)` of `path` (POSIX's `statfs`: same figures, portable struct).
    /// - Throws: ``HostMetricsError/unreadable(path:reason:)`` when the call fails.
    static func diskUsage(of path: String) throws -> DiskUsage {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else {
            throw HostMetricsError.unreadable(path: path, reason: "statvfs failed: \(String(cString: strerror(errno)))")
        }
        let fragment = Double(stats.f_frsize > 0 ? UInt64(stats.f_frsize) : UInt64(stats.f_bsize))
        let used = Double(stats.f_blocks) - Double(stats.f_bfree)
        let available = Double(stats.f_bavail)
        let percent = used + available > 0 ? used / (used + available) * 100 : 0
        return DiskUsage(usedPercent: percent, freeBytes: available * fragment)
    }
}

/// This process's figures from `/proc/self`:
/// `edm_process_resident_memory_bytes` (bytes), `edm_process_open_fds` (none; the descriptor
/// used to list `/proc/self/fd` is not counted), `edm_process_threads` (none),
/// `edm_process_cpu_seconds_total` (seconds, user + system, `sysconf(_SC_CLK_TCK)` ticks).
public struct ProcessCollector: MetricCollector {
    public let name = "process"
    let filesystem: HostFilesystem

    /// A collector reading `proc/self` below `filesystem.root`.
    public init(filesystem: HostFilesystem = HostFilesystem()) {
        self.filesystem = filesystem
    }

    public func collect(now: Date) async throws -> [MetricPoint] {
        let status = try filesystem.read(HostProcessStatus.self)
        let fds = try filesystem.openFileDescriptorCount() - 1
        let ticks = Int(sysconf(Int32(_SC_CLK_TCK)))
        let cpu = try filesystem.read(HostProcessCPUTime.self).totalSeconds(ticksPerSecond: ticks > 0 ? ticks : 100)
        return [
            MetricPoint(name: "edm_process_resident_memory_bytes", value: Double(status.residentBytes), unit: "bytes", timestamp: now),
            MetricPoint(name: "edm_process_open_fds", value: Double(max(0, fds)), unit: "none", timestamp: now),
            MetricPoint(name: "edm_process_threads", value: Double(status.threads), unit: "none", timestamp: now),
            MetricPoint(name: "edm_process_cpu_seconds_total", value: cpu, unit: "seconds", timestamp: now),
        ]
    }
}

/// Database figures: `edm_db_query_latency_seconds` (seconds; round trip of `SELECT 1`, timed
/// with the monotonic clock) and `edm_db_size_bytes` (bytes; SQLite `page_count × page_size`,
/// PostgreSQL `pg_database_size(current_database())`). Connection pool usage is not reported:
/// neither driver exposes its pool's occupancy through Fluent.
public struct DatabaseCollector: MetricCollector {
    public let name = "database"
    let database: @Sendable () -> any Database

    /// A collector probing the database that `database` returns at each cycle.
    public init(database: @escaping @Sendable () -> any Database) {
        self.database = database
    }

    private struct One: Decodable { var one: Int }
    private struct Size: Decodable { var size: Int64 }

    public func collect(now: Date) async throws -> [MetricPoint] {
        let sql = database().sql
        let clock = ContinuousClock()
        let started = clock.now
        _ = try await sql.raw("SELECT 1 AS one").first(decoding: One.self)
        let elapsed = clock.now - started
        let latency = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let size = try await sql.raw(SQLDialectKind(sql).databaseSizeQuery).first(decoding: Size.self)?.size
        var points = [MetricPoint(name: "edm_db_query_latency_seconds", value: latency, unit: "seconds", timestamp: now)]
        if let size { points.append(MetricPoint(name: "edm_db_size_bytes", value: Double(size), unit: "bytes", timestamp: now)) }
        return points
    }
}

/// Queue, sending and alert figures from the database, a few aggregate queries a cycle (never
/// one per task), so that `GET /metrics` exposes them without querying at scrape time (issue #17).
///
/// | name | unit | labels | what |
/// |---|---|---|---|
/// | `edm_queue_subtasks` | count | `status` (every status, 0 included) | subtasks by status |
/// | `edm_queue_active_tasks` | count | | tasks `queued` or `sending` |
/// | `edm_queue_services` | count | `state` (every ``ServiceState``, 0 included) | email services by state |
/// | `edm_queue_active_reservations` | count | | service leases not yet expired at `now` |
/// | `edm_queue_pending_subtasks` | count | | pending subtasks of tasks that may send now (`queued`/`sending`, due) |
/// | `edm_queue_oldest_wait_seconds` | seconds | | `now` − the earliest instant one of those became eligible (max(task created, scheduled)); 0 when none |
/// | `edm_emails_sent_total` | count | `service` (name; `none` without one) | subtasks sent, ever (a counter: only grows) |
/// | `edm_emails_failed_total` | count | `service`, `kind` | subtasks failed, ever; `kind` is `cancelled` (task cancelled), `interrupted` (instance died mid-send) or `rejected` (refused, or retries used up) |
/// | `edm_tasks` | count | `state` (every task status, 0 included) | tasks by status |
/// | `edm_email_service_state` | none | `service`, `state` (every ``ServiceState``) | 1 for the service's state, 0 for the others |
/// | `edm_email_service_quota_remaining` | count | `service` | daily quota − used today, at least 0 |
/// | `edm_alerts` | count | `state` (`firing`, `acknowledged`, `suppressed`), `severity` (every severity, 0 included) | open alert episodes (the API's `active` is `firing`) |
///
/// Labels are bounded: service names (as many as the operator made), fixed state sets; never a
/// task id or an address.
public struct QueueCollector: MetricCollector {
    public let name = "queue"
    let database: @Sendable () -> any Database

    /// A collector counting rows of the database that `database` returns at each cycle.
    public init(database: @escaping @Sendable () -> any Database) {
        self.database = database
    }

    /// The `kind` label of a failed subtask, from the reason the scheduler or task service
    /// wrote (`last_error`).
    public enum FailureKind: String, CaseIterable, Sendable {
        case cancelled, interrupted, rejected
    }

    /// The `state` label of an open alert episode, by ``AlertHistory/Status``.
    static let alertStates: [(label: String, status: AlertHistory.Status)] = [("firing", .active), ("acknowledged", .acknowledged), ("suppressed", .suppressed)]

    private struct SubtaskCount: Decodable { var status: String; var service_id: UUID?; var kind: String; var n: Int }
    private struct StatusCount: Decodable { var status: String; var n: Int }
    private struct Count: Decodable { var n: Int }
    private struct Pending: Decodable { var n: Int; var since: Date? }
    private struct AlertCount: Decodable { var status: String; var severity: String; var n: Int }

    public func collect(now: Date) async throws -> [MetricPoint] {
        let db = database()
        let sql = db.sql
        var points: [MetricPoint] = []
        func point(_ name: String, _ value: Double, _ unit: String, _ tags: [String: String] = [:]) {
            points.append(MetricPoint(name: name, value: value, unit: unit, tags: tags, timestamp: now))
        }
        let services = try await EmailService.query(on: db).all()
        let serviceNames = Dictionary(services.compactMap { s in s.id.map { ($0, s.name) } }, uniquingKeysWith: { first, _ in first })
        func serviceLabel(_ id: UUID?) -> String {
            guard let id else { return "none" }
            return String((serviceNames[id] ?? "unknown").prefix(MetricStore.maxTagValueLength))
        }

        // One scan of sub_tasks: by status, and for sent and failed by service and failure kind.
        let failed = SubTaskRecord.Status.failed.rawValue
        let subtasks = try await sql.raw("""
            SELECT status, service_id,
                   CASE WHEN status <> \(bind: failed) THEN '' WHEN last_error = \(bind: FailureKind.cancelled.rawValue) THEN \(bind: FailureKind.cancelled.rawValue)
                        WHEN last_error = \(bind: FailureKind.interrupted.rawValue) THEN \(bind: FailureKind.interrupted.rawValue) ELSE \(bind: FailureKind.rejected.rawValue) END AS kind,
                   COUNT(*) AS n
            FROM \(ident: SubTaskRecord.schema) GROUP BY 1, 2, 3
            """).all(decoding: SubtaskCount.self)
        var byStatus: [String: Int] = [:]
        var sent: [String: Int] = [:]
        var failures: [String: [String: Int]] = [:]
        for row in subtasks {
            byStatus[row.status, default: 0] += row.n
            if row.status == SubTaskRecord.Status.sent.rawValue { sent[serviceLabel(row.service_id), default: 0] += row.n }
            if row.status == failed { failures[serviceLabel(row.service_id), default: [:]][row.kind, default: 0] += row.n }
        }
        for status in SubTaskRecord.Status.allCases {
            point("edm_queue_subtasks", Double(byStatus[status.rawValue] ?? 0), "count", ["status": status.rawValue])
        }
        // Every service gets its series from the start, so a rate over them has a first sample at 0.
        for name in Set(services.map { serviceLabel($0.id) }).union(sent.keys).union(failures.keys).sorted() {
            point("edm_emails_sent_total", Double(sent[name] ?? 0), "count", ["service": name])
            for kind in FailureKind.allCases {
                point("edm_emails_failed_total", Double(failures[name]?[kind.rawValue] ?? 0), "count", ["service": name, "kind": kind.rawValue])
            }
        }

        let active = [TaskRecord.Status.queued.rawValue, TaskRecord.Status.sending.rawValue]
        let tasks = try await sql.raw("SELECT status, COUNT(*) AS n FROM \(ident: TaskRecord.schema) GROUP BY status").all(decoding: StatusCount.self)
        let tasksByStatus = Dictionary(tasks.map { ($0.status, $0.n) }, uniquingKeysWith: +)
        point("edm_queue_active_tasks", Double(active.map { tasksByStatus[$0] ?? 0 }.reduce(0, +)), "count")
        for status in TaskRecord.Status.allCases {
            point("edm_tasks", Double(tasksByStatus[status.rawValue] ?? 0), "count", ["state": status.rawValue])
        }

        // The queue that can move now: pending subtasks of active, due tasks, and how long the
        // oldest of them has been eligible.
        let pending = try await sql.raw("""
            SELECT COUNT(*) AS n,
                   MIN(CASE WHEN t.scheduled_at IS NOT NULL AND t.scheduled_at > t.created_at THEN t.scheduled_at ELSE t.created_at END) AS since
            FROM \(ident: SubTaskRecord.schema) s JOIN \(ident: TaskRecord.schema) t ON t.id = s.task_id
            WHERE s.status = \(bind: SubTaskRecord.Status.pending.rawValue) AND t.status IN (\(binds: active))
              AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))
            """).first(decoding: Pending.self)
        point("edm_queue_pending_subtasks", Double(pending?.n ?? 0), "count")
        point("edm_queue_oldest_wait_seconds", max(0, pending?.since.map { now.timeIntervalSince($0) } ?? 0), "seconds")

        var byState: [ServiceState: Int] = [:]
        for service in services {
            let state = ServiceState.of(service, now: now)
            byState[state, default: 0] += 1
            let label = serviceLabel(service.id)
            for candidate in ServiceState.allCases {
                point("edm_email_service_state", candidate == state ? 1 : 0, "none", ["service": label, "state": candidate.rawValue])
            }
            point("edm_email_service_quota_remaining", Double(max(0, service.dailyQuota - service.usedQuota)), "count", ["service": label])
        }
        for state in ServiceState.allCases {
            point("edm_queue_services", Double(byState[state] ?? 0), "count", ["state": state.rawValue])
        }
        let leases = try await sql.raw("SELECT COUNT(*) AS n FROM \(ident: ServiceReservation.schema) WHERE expires_at > \(bind: now)").first(decoding: Count.self)?.n ?? 0
        point("edm_queue_active_reservations", Double(leases), "count")

        let alerts = try await sql.raw("""
            SELECT h.status AS status, r.severity AS severity, COUNT(*) AS n
            FROM \(ident: AlertHistory.schema) h JOIN \(ident: AlertRule.schema) r ON r.id = h.rule_id
            WHERE h.resolved_at IS NULL GROUP BY h.status, r.severity
            """).all(decoding: AlertCount.self)
        for (label, status) in Self.alertStates {
            for severity in AlertRule.Severity.allCases {
                let n = alerts.filter { $0.status == status.rawValue && $0.severity == severity.rawValue }.map(\.n).reduce(0, +)
                point("edm_alerts", Double(n), "count", ["state": label, "severity": severity.rawValue])
            }
        }
        return points
    }
}
