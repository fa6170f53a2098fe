import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import SQLKit
import Synchronization

/// Settings of task monitoring; changeable at run time (the next cycle uses them).
public struct TaskMonitorSettings: Sendable, Equatable {
    /// When `false`, hooks record nothing and cycles detect nothing (`task_monitoring_enabled`).
    public var enabled = true
    /// At most one `progress` row per task per this many seconds…
    public var progressIntervalSeconds: Double = 30
    /// …unless the task moved by at least this share of its subtasks (0.05 = 5 %).
    public var progressStepFraction: Double = 0.05
    /// A task that sent nothing for this long while it has pending work is stuck, seconds.
    public var stuckThresholdSeconds: Double = 600
    /// How often stuck detection and the derived metrics run, seconds.
    public var detectionIntervalSeconds: Double = 30
    /// The trailing window of "current" throughput, seconds (5 minutes).
    public var throughputWindowSeconds: Double = 300
    /// The trailing window of the failure rate, seconds (1 hour).
    public var failureRateWindowSeconds: Double = 3600

    public init() {}
}

/// When this process's scheduler last finished a cycle; stuck detection uses it to tell
/// "the scheduler is not running" from other causes.
public final class SchedulerHeartbeat: Sendable {
    private let last = Mutex<Date?>(nil)
    public init() {}
    /// Records a finished cycle at `date`.
    public func beat(at date: Date) { last.withLock { $0 = date } }
    /// The last finished cycle, or `nil` when none ran in this process.
    public var lastBeat: Date? { last.withLock { $0 } }
}

/// Why a stuck task is not moving, as an operator can act on it.
public enum StuckReason: String, Codable, Sendable, CaseIterable {
    /// Every enabled service is frozen, or none is enabled.
    case noServiceAvailable = "no_service_available"
    /// Every usable service has used its daily quota; `next_reset` says when one resets.
    case quotaExhausted = "quota_exhausted"
    /// This process's scheduler has not finished a cycle recently (or is not started).
    case schedulerNotRunning = "scheduler_not_running"
    /// Sends are attempted but every recent attempt failed.
    case allAttemptsFailing = "all_attempts_failing"
    /// None of the above.
    case unknown
}

/// A task that has not moved for the stuck threshold.
public struct StuckTask: Sendable, Equatable, Codable {
    public var taskID: UUID
    public var userID: UUID
    public var reason: StuckReason
    /// Since when nothing was sent: the last send, or when the task became eligible.
    public var idleSince: Date
    /// Seconds idle at detection.
    public var stuckSeconds: Double
    /// With `quota_exhausted`: the earliest next quota reset of the usable services.
    public var nextReset: Date?

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case userID = "user_id"
        case reason
        case idleSince = "idle_since"
        case stuckSeconds = "stuck_seconds"
        case nextReset = "next_reset"
    }
}

/// Task monitoring: records `task_processing_metrics` from the scheduler's hooks, writes the
/// derived series (wait time, throughput, failure rate, active and stuck tasks) to
/// `system_performance_metrics`, and detects stuck tasks.
///
/// Definitions (the formulas live in `TaskFigures`, shared with the API):
/// - **wait time** = first email sent − the instant the task became eligible to send,
///   max(`created_at`, `scheduled_at`);
/// - **current throughput** (emails per hour) = emails of the task (or of all tasks, or of a
///   service) sent in the trailing ``TaskMonitorSettings/throughputWindowSeconds`` (5 min),
///   scaled to an hour: count × 3600 / window;
/// - **average throughput** = emails sent / (last send or now − first send), per hour; the
///   `completed` row carries it with `duration_seconds` in its metadata;
/// - **failure rate** = failed / (sent + failed) of the subtasks that ended in the trailing
///   hour, in percent (0 when none ended).
///
/// Progress rows are throttled: a task gets one when ``TaskMonitorSettings/progressIntervalSeconds``
/// passed since its last one or it moved by ``TaskMonitorSettings/progressStepFraction`` of its
/// subtasks, whichever comes first, so a 100,000-recipient task writes about 20 plus one per
/// interval, never 100,000. A failure to record never breaks sending: it is logged once per
/// failure streak.
public final class TaskMonitorService: TaskMonitorHooks, Sendable {
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let heartbeat: SchedulerHeartbeat
    let store: MetricStore
    let logger: Logger
    private let settingsBox: Mutex<TaskMonitorSettings>
    private let lastProgress = Mutex<[UUID: (at: Date, sent: Int)]>([:])
    private let stuck = Mutex<[UUID: StuckTask]>([:])
    /// Failures of the hooks' writes and of detection cycles; sending never waits for them.
    private let streak: FailureStreak

    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, heartbeat: SchedulerHeartbeat, store: MetricStore, settings: TaskMonitorSettings = .init(), logger: Logger = Logger(label: "edm.task-monitor")) {
        self.database = database
        self.store = store
        self.clock = clock
        self.heartbeat = heartbeat
        self.settingsBox = Mutex(settings)
        self.logger = logger
        self.streak = FailureStreak(subject: "task monitoring (sending is not affected)", logger: logger)
    }

    /// The settings in force.
    public var settings: TaskMonitorSettings {
        get { settingsBox.withLock { $0 } }
        set { settingsBox.withLock { $0 = newValue } }
    }

    /// Stuck tasks found by the last detection, by task.
    public var stuckTasks: [UUID: StuckTask] { stuck.withLock { $0 } }

    // MARK: - Hooks

    public func taskCreated(taskID: UUID, userID: UUID, totalSubtasks: Int, at: Date) async {
        guard settings.enabled else { return }
        await write(TaskProcessingMetric(taskID: taskID, userID: userID, metricType: .created, timestamp: at, totalSubtasks: totalSubtasks))
    }

    public func firstSent(taskID: UUID, userID: UUID, waitSeconds: Double, totalSubtasks: Int, at: Date) async {
        guard settings.enabled else { return }
        await write(TaskProcessingMetric(taskID: taskID, userID: userID, metricType: .firstSent, timestamp: at, subtasksSent: 1, totalSubtasks: totalSubtasks, waitTimeSeconds: waitSeconds))
        await writePoints([MetricPoint(name: "edm_task_wait_time_seconds", value: waitSeconds, unit: "seconds", tags: ["task_id": taskID.uuidString.lowercased()], timestamp: at)])
    }

    public func progress(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async {
        let settings = self.settings
        guard settings.enabled else { return }
        let due = lastProgress.withLock { state -> Bool in
            let step = max(1, Int((Double(total) * settings.progressStepFraction).rounded(.up)))
            guard let last = state[taskID] else { state[taskID] = (at, sent + failed); return true }
            let isDue = at.timeIntervalSince(last.at) >= settings.progressIntervalSeconds || (sent + failed) - last.sent >= step
            if isDue { state[taskID] = (at, sent + failed) }
            return isDue
        }
        guard due, sent + failed < total else { return }
        let throughput = try? await currentThroughput(taskID: taskID, at: at)
        await write(TaskProcessingMetric(taskID: taskID, userID: userID, metricType: .progress, timestamp: at, subtasksSent: sent, totalSubtasks: total, throughputPerHour: throughput, metadata: ["failed": .number(Double(failed))]))
    }

    public func completed(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async {
        guard settings.enabled else { return }
        lastProgress.withLock { _ = $0.removeValue(forKey: taskID) }
        var metadata: [String: JSONValue] = ["failed": .number(Double(failed))]
        var throughput: Double?
        if let task = try? await TaskRecord.find(taskID, on: database()), let started = task.startedAt {
            let duration = max(0, at.timeIntervalSince(started))
            metadata["duration_seconds"] = .number(duration)
            // Undefined for a task that went out in an instant (one email, or under a second).
            if TaskFigures.hasMeasurableAverage(sent: sent, durationSeconds: duration) {
                throughput = TaskFigures.averagePerHour(sent: sent, startedAt: started, endedAt: at)
            }
        }
        await write(TaskProcessingMetric(taskID: taskID, userID: userID, metricType: .completed, timestamp: at, subtasksSent: sent, totalSubtasks: total, throughputPerHour: throughput, metadata: metadata))
    }

    public func failed(taskID: UUID, userID: UUID, reason: String, at: Date) async {
        guard settings.enabled else { return }
        lastProgress.withLock { _ = $0.removeValue(forKey: taskID) }
        let task = try? await TaskRecord.find(taskID, on: database())
        await write(TaskProcessingMetric(taskID: taskID, userID: userID, metricType: .failed, timestamp: at, subtasksSent: task?.sentCount ?? 0, totalSubtasks: task?.totalCount ?? 0, metadata: ["reason": .string(reason)]))
    }

    // MARK: - Cycle

    /// One cycle: detect stuck tasks, then write the derived series. Returns the stuck tasks;
    /// none, doing nothing, while task monitoring is disabled.
    @discardableResult
    public func runOnce() async throws -> [StuckTask] {
        guard settings.enabled else {
            stuck.withLock { $0 = [:] }
            return []
        }
        let now = clock.now()
        let found = try await detectStuck(at: now)
        let previous = stuck.withLock { s -> [UUID: StuckTask] in
            defer { s = Dictionary(uniqueKeysWithValues: found.map { ($0.taskID, $0) }) }
            return s
        }
        for task in found where previous[task.taskID] == nil {
            logger.warning("task is stuck", metadata: ["task_id": "\(task.taskID)", "reason": "\(task.reason.rawValue)", "idle_seconds": "\(Int(task.stuckSeconds))"])
        }
        for id in previous.keys where !found.contains(where: { $0.taskID == id }) {
            logger.notice("task is moving again", metadata: ["task_id": "\(id)"])
        }
        try await writeDerivedMetrics(stuck: found, at: now)
        return found
    }

    /// Tasks that are `sending` (or `queued` and eligible), have pending subtasks, and sent
    /// nothing for the stuck threshold; each with the reason found.
    func detectStuck(at now: Date) async throws -> [StuckTask] {
        let db = database()
        let sql = db.sql
        let threshold = settings.stuckThresholdSeconds
        struct Row: Decodable {
            var id: UUID
            var user_id: UUID
            var created_at: Date
            var scheduled_at: Date?
            var last_sent: Date?
        }
        let rows = try await sql.raw("""
            SELECT t.id, t.user_id, t.created_at, t.scheduled_at,
                   (SELECT max(s.sent_at) FROM sub_tasks s WHERE s.task_id = t.id) AS last_sent
            FROM tasks t
            WHERE t.status IN (\(binds: [TaskRecord.Status.queued.rawValue, TaskRecord.Status.sending.rawValue])) AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))
              AND EXISTS (SELECT 1 FROM sub_tasks p WHERE p.task_id = t.id AND p.status IN (\(binds: [SubTaskRecord.Status.pending.rawValue, SubTaskRecord.Status.sending.rawValue])))
            """).all(decoding: Row.self)
        var result: [StuckTask] = []
        var services: [EmailService]?
        for row in rows {
            let eligible = TaskFigures.eligibleAt(createdAt: row.created_at, scheduledAt: row.scheduled_at, fallback: row.created_at)
            let idleSince = max(row.last_sent ?? eligible, eligible)
            let idle = now.timeIntervalSince(idleSince)
            guard idle >= threshold else { continue }
            if services == nil { services = try await EmailService.query(on: db).all() }
            let (reason, nextReset) = try await diagnose(taskID: row.id, since: idleSince, services: services ?? [], now: now, sql: sql)
            result.append(StuckTask(taskID: row.id, userID: row.user_id, reason: reason, idleSince: idleSince, stuckSeconds: idle, nextReset: nextReset))
        }
        return result.sorted { $0.stuckSeconds > $1.stuckSeconds }
    }

    /// The most useful explanation, in the order an operator would check.
    func diagnose(taskID: UUID, since: Date, services: [EmailService], now: Date, sql: any SQLDatabase) async throws -> (StuckReason, Date?) {
        let usable = services.filter { $0.isEnabled && !($0.isFrozen && ($0.frozenUntil.map { $0 > now } ?? true)) }
        if usable.isEmpty { return (.noServiceAvailable, nil) }
        if usable.allSatisfy({ $0.usedQuota >= $0.dailyQuota }) {
            let resets = usable.compactMap { try? QuotaResetSchedule(resetTime: $0.quotaResetTime, timeZoneIdentifier: $0.quotaTimezone).window(containing: now).nextReset }
            return (.quotaExhausted, resets.min())
        }
        let beat = heartbeat.lastBeat
        if beat == nil || now.timeIntervalSince(beat!) > max(120, settings.detectionIntervalSeconds * 4) {
            return (.schedulerNotRunning, nil)
        }
        struct Failing: Decodable { var n: Int }
        let failingAttempts = try await sql.raw("""
            SELECT count(*) AS n FROM sub_tasks
            WHERE task_id = \(bind: taskID) AND attempts > 0 AND last_error IS NOT NULL AND updated_at >= \(bind: since)
            """).first(decoding: Failing.self)?.n ?? 0
        if failingAttempts > 0 { return (.allAttemptsFailing, nil) }
        return (.unknown, nil)
    }

    /// Emails of `taskID` sent in the trailing throughput window, per hour.
    ///
    /// For a task that started less than a window ago the rate is over the time since it
    /// started (at least 10 s), not over the whole window: a task sending 2 emails/s for 20 s
    /// runs at 7,200/h, not 480/h. Without `taskID` (all tasks) the window is the whole 5 min.
    func currentThroughput(taskID: UUID?, at now: Date) async throws -> Double {
        try await currentThroughputAndWindow(taskID: taskID, at: now).perHour
    }

    /// ``currentThroughput(taskID:at:)`` and the window it was measured over, seconds.
    func currentThroughputAndWindow(taskID: UUID?, at now: Date) async throws -> (perHour: Double, windowSeconds: Double) {
        var started: Date?
        if let taskID { started = try await TaskRecord.find(taskID, on: database())?.startedAt }
        let (since, window) = TaskFigures.currentWindow(startedAt: started, now: now, windowSeconds: settings.throughputWindowSeconds)
        let filter: SQLQueryString = taskID.map { "AND task_id = \(bind: $0)" } ?? ""
        struct N: Decodable { var n: Int }
        let n = try await database().sql.raw("SELECT count(*) AS n FROM sub_tasks WHERE status = \(bind: SubTaskRecord.Status.sent.rawValue) AND sent_at > \(bind: since) AND sent_at <= \(bind: now) \(filter)").first(decoding: N.self)?.n ?? 0
        return (TaskFigures.perHour(count: n, overSeconds: window), window)
    }

    func writeDerivedMetrics(stuck found: [StuckTask], at now: Date) async throws {
        let db = database()
        let sql = db.sql
        let settings = self.settings
        struct N: Decodable { var n: Int }
        struct ByService: Decodable { var name: String; var n: Int }
        struct Ended: Decodable { var sent: Int?; var failed: Int? }
        let active = try await sql.raw("SELECT count(*) AS n FROM tasks WHERE status IN (\(binds: [TaskRecord.Status.queued.rawValue, TaskRecord.Status.sending.rawValue]))").first(decoding: N.self)?.n ?? 0
        let since = now.addingTimeInterval(-settings.throughputWindowSeconds)
        let perService = try await sql.raw("""
            SELECT e.name AS name, count(s.id) AS n FROM email_services e
            LEFT JOIN sub_tasks s ON s.service_id = e.id AND s.status = \(bind: SubTaskRecord.Status.sent.rawValue) AND s.sent_at > \(bind: since) AND s.sent_at <= \(bind: now)
            GROUP BY e.name
            """).all(decoding: ByService.self)
        let hourAgo = now.addingTimeInterval(-settings.failureRateWindowSeconds)
        let ended = try await sql.raw("""
            SELECT sum(CASE WHEN status = \(bind: SubTaskRecord.Status.sent.rawValue) THEN 1 ELSE 0 END) AS sent, sum(CASE WHEN status = \(bind: SubTaskRecord.Status.failed.rawValue) THEN 1 ELSE 0 END) AS failed
            FROM sub_tasks WHERE (status = \(bind: SubTaskRecord.Status.sent.rawValue) AND sent_at > \(bind: hourAgo)) OR (status = \(bind: SubTaskRecord.Status.failed.rawValue) AND updated_at > \(bind: hourAgo))
            """).first(decoding: Ended.self)
        let sent = ended?.sent ?? 0, failed = ended?.failed ?? 0
        let window = settings.throughputWindowSeconds

        var points: [MetricPoint] = [
            .init(name: "edm_tasks_active", value: Double(active), unit: "tasks", timestamp: now),
            .init(name: "edm_queue_throughput_per_hour", value: TaskFigures.perHour(count: perService.map(\.n).reduce(0, +), overSeconds: window), unit: "emails_per_hour", timestamp: now),
            .init(name: "edm_task_failure_rate_percent", value: TaskFigures.failureRatePercent(sent: sent, failed: failed), unit: "percent", timestamp: now),
            .init(name: "edm_stuck_tasks", value: Double(found.count), unit: "tasks", timestamp: now),
        ]
        // Written only while work is pending, so that rules on them stay quiet on an idle queue.
        let pending = try await sql.raw("SELECT count(*) AS n FROM sub_tasks s JOIN tasks t ON t.id = s.task_id WHERE s.status = \(bind: SubTaskRecord.Status.pending.rawValue) AND t.status IN (\(binds: [TaskRecord.Status.queued.rawValue, TaskRecord.Status.sending.rawValue])) AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))").first(decoding: N.self)?.n ?? 0
        if pending > 0 {
            let services = try await EmailService.query(on: db).all()
            let usable = services.filter { [.available, .paced].contains(ServiceState.of($0, now: now)) }.count
            points.append(.init(name: "edm_queue_pending_throughput_per_hour", value: TaskFigures.perHour(count: perService.map(\.n).reduce(0, +), overSeconds: window), unit: "emails_per_hour", timestamp: now))
            points.append(.init(name: "edm_email_services_available_while_pending", value: Double(usable), unit: "services", timestamp: now))
        }
        for service in perService {
            points.append(.init(name: "edm_queue_throughput_per_hour", value: TaskFigures.perHour(count: service.n, overSeconds: window), unit: "emails_per_hour", tags: ["service": service.name], timestamp: now))
        }
        for task in found {
            points.append(.init(name: "edm_task_stuck_duration_seconds", value: task.stuckSeconds, unit: "seconds", tags: ["task_id": task.taskID.uuidString.lowercased(), "reason": task.reason.rawValue], timestamp: now))
        }
        // Through the store: validated, and merged into the rollups that long-range charts read.
        try await store.insert(points, on: db)
    }

    // MARK: - External events

    /// Records lifecycle events posted by an external scheduler (`POST /api/monitoring/task-events`),
    /// already validated, in one transaction: all or nothing. An event whose `event_id` is
    /// already recorded is skipped (`INSERT … ON CONFLICT (event_id) DO NOTHING`), so a retried
    /// or concurrent POST of the same batch records each event once. `created_at` is `now`.
    /// - Returns: events written (the rest were duplicates).
    /// - Throws: the database's error; nothing is written then.
    public func recordEvents(_ rows: [TaskProcessingMetric], at now: Date) async throws -> Int {
        let encoder = JSONEncoder()
        return try await database().transaction { tx in
            let dialect = SQLDialectKind(tx.sql)
            let values = try rows.map { row -> [any SQLExpression] in
                [
                    SQLBind(UUID()), SQLBind(row.$task.id), SQLBind(row.$user.id), SQLBind(row.metricType.rawValue), SQLBind(row.timestamp),
                    SQLBind(row.subtasksSent), SQLBind(row.totalSubtasks), SQLBind(row.waitTimeSeconds), SQLBind(row.throughputPerHour),
                    try dialect.jsonBind(encoding: row.metadata, with: encoder), SQLBind(row.eventID), SQLBind(now),
                ]
            }
            return try await dialect.bulkInsert(
                into: TaskProcessingMetric.schema,
                columns: ["id", "task_id", "user_id", "metric_type", "timestamp", "subtasks_sent", "total_subtasks",
                          "wait_time_seconds", "throughput_per_hour", "metadata", "event_id", "created_at"],
                rows: values, rowsPerStatement: 500, ignoringConflictsOn: ["event_id"], on: tx.sql
            )
        }
    }

    // MARK: - Writing

    private func write(_ row: TaskProcessingMetric) async {
        do {
            row.createdAt = clock.now()
            try await row.create(on: database())
            recovered()
        } catch {
            failed(error, doing: "recording a task metric")
        }
    }

    private func writePoints(_ points: [MetricPoint]) async {
        do {
            try await store.insert(points, on: database())
        } catch {
            failed(error, doing: "recording a derived metric")
        }
    }

    private func failed(_ error: any Error, doing what: String) {
        streak.failed(error)
    }

    private func recovered() {
        streak.succeeded()
    }
}
