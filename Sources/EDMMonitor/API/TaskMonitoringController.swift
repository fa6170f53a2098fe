import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Vapor

/// Task and queue monitoring endpoints under `/api/monitoring`. Every figure is computed from the
/// database, so it survives a restart.
struct TaskMonitoringController: RouteCollection {
    /// The clock of "now" in every figure.
    let clock: any WallClock
    /// Stuck tasks and current throughput.
    let taskMonitor: TaskMonitorService

    func boot(routes: any RoutesBuilder) throws {
        let monitoring = routes.grouped("api", "monitoring")
        monitoring.get("task-metrics", ":taskId", use: taskDetail)
        monitoring.get("task-metrics", use: list)
        monitoring.get("task-stats", use: stats)
        monitoring.get("queue-status", use: queueStatus)
        monitoring.on(.POST, "task-events", body: .collect(maxSize: "8mb"), use: ingestEvents)
    }

    // MARK: - Row DTO

    struct MetricDTO: Content {
        var id: UUID
        var task_id: UUID
        var user_id: UUID
        var metric_type: String
        var timestamp: Date
        var subtasks_sent: Int
        var total_subtasks: Int
        var wait_time_seconds: Double?
        var throughput_per_hour: Double?
        var metadata: [String: JSONValue]?
        var event_id: String?

        init(_ m: TaskProcessingMetric) throws {
            id = try m.requireID()
            task_id = m.$task.id
            user_id = m.$user.id
            metric_type = m.metricType.rawValue
            timestamp = m.timestamp
            subtasks_sent = m.subtasksSent
            total_subtasks = m.totalSubtasks
            wait_time_seconds = m.waitTimeSeconds
            throughput_per_hour = m.throughputPerHour
            metadata = m.metadata
            event_id = m.eventID
        }
    }


    /// `from` and `to` of the query (``TimeRangeQuery``). - Throws: 400 naming the bad one.
    static func range(_ req: Request) throws -> (from: Date?, to: Date?) {
        let range = try req.query.decode(TimeRangeQuery.self)
        return (range.from, range.to)
    }

    // MARK: - GET /api/monitoring/task-metrics

    @Sendable func list(_ req: Request) async throws -> Page<MetricDTO> {
        let page = try PageRequest(from: req)
        let filters = try req.query.decode(TaskMetricsQuery.self)
        let query = TaskProcessingMetric.query(on: req.db)
        if let taskID = filters.taskID { query.filter(\.$task.$id == taskID) }
        if let userID = filters.userID { query.filter(\.$user.$id == userID) }
        if let type = filters.metricType { query.filter(\.$metricType == type) }
        if let from = filters.range.from { query.filter(\.$timestamp >= from) }
        if let to = filters.range.to { query.filter(\.$timestamp <= to) }
        let (rows, total) = try await query.sort(\.$timestamp).sort(\.$id).page(page)
        return Page(data: try rows.map(MetricDTO.init), page: page, total: total)
    }

    // MARK: - GET /api/monitoring/task-metrics/:taskId

    struct TaskDetailDTO: Content {
        struct Progress: Content { var sent: Int; var failed: Int; var pending: Int; var total: Int; var percent: Double }
        struct Throughput: Content {
            /// Emails per hour over the trailing window.
            var current_per_hour: Double
            var window_seconds: Double
            /// Emails per hour from the first send to the last send (or now).
            var average_per_hour: Double?
        }
        struct ETA: Content { var at: Date?; var seconds: Double?; var reason: String? }
        struct Stuck: Content { var is_stuck: Bool; var reason: String?; var idle_seconds: Double?; var next_reset: Date? }

        var task_id: UUID
        var user_id: UUID
        var name: String
        var status: String
        var progress: Progress
        var wait_time_seconds: Double?
        var throughput: Throughput
        var eta: ETA
        var stuck: Stuck
        var created_at: Date?
        var started_at: Date?
        var completed_at: Date?
        var timeline: [MetricDTO]
    }

    @Sendable func taskDetail(_ req: Request) async throws -> TaskDetailDTO {
        let id = try req.uuidParameter("taskId", resource: "task")
        guard let task = try await TaskRecord.find(id, on: req.db) else { throw APIError.notFound("no task with id \(id)") }
        let monitor = taskMonitor
        let now = clock.now()
        let sql = req.db.sql
        struct Counts: Decodable { var pending: Int?; var last_sent: Date? }
        let counts = try await sql.raw("""
            SELECT sum(CASE WHEN status IN (\(binds: [SubTaskRecord.Status.pending.rawValue, SubTaskRecord.Status.sending.rawValue])) THEN 1 ELSE 0 END) AS pending, max(sent_at) AS last_sent
            FROM sub_tasks WHERE task_id = \(bind: id)
            """).first(decoding: Counts.self)
        let pending = counts?.pending ?? 0
        let timeline = try await TaskProcessingMetric.query(on: req.db).filter(\.$task.$id == id).sort(\.$timestamp).limit(1000).all()
        let (current, window) = try await monitor.currentThroughputAndWindow(taskID: id, at: now)
        let average = task.startedAt.flatMap { started in
            TaskFigures.averagePerHour(sent: task.sentCount, startedAt: started, endedAt: task.completedAt ?? counts?.last_sent ?? now)
        }
        // The recorded first_sent row when there is one (external schedulers post theirs).
        let wait = timeline.first { $0.metricType == .firstSent }?.waitTimeSeconds ?? task.startedAt.map { started in
            TaskFigures.waitSeconds(createdAt: task.createdAt, scheduledAt: task.scheduledAt, firstSentAt: started)
        }
        let stuck = monitor.stuckTasks[id]
        let eta = try await Self.eta(task: task, pending: pending, currentPerHour: current, now: now, db: req.db)
        let total = task.totalCount
        return TaskDetailDTO(
            task_id: id, user_id: task.$user.id, name: task.name, status: task.status.rawValue,
            progress: .init(sent: task.sentCount, failed: task.failedCount, pending: pending, total: total,
                            percent: TaskFigures.progressPercent(sent: task.sentCount, failed: task.failedCount, total: total)),
            wait_time_seconds: wait,
            throughput: .init(current_per_hour: current, window_seconds: window, average_per_hour: average),
            eta: eta,
            stuck: .init(is_stuck: stuck != nil, reason: stuck?.reason.rawValue, idle_seconds: stuck?.stuckSeconds, next_reset: stuck?.nextReset),
            created_at: task.createdAt, started_at: task.startedAt, completed_at: task.completedAt,
            timeline: try timeline.map(MetricDTO.init)
        )
    }

    /// ETA from the current throughput, capped by what the usable services can still send today
    /// (``TaskFigures/eta(phase:pending:currentPerHour:remainingQuota:now:)``): remaining ÷
    /// throughput when today's remaining quota covers the rest; otherwise unknown (`null`) with
    /// the reason, since the rest waits for quota resets.
    static func eta(task: TaskRecord, pending: Int, currentPerHour: Double, now: Date, db: any Database) async throws -> TaskDetailDTO.ETA {
        let phase: TaskFigures.Phase = task.status.isFinal ? .finished(completedAt: task.completedAt) : task.status == .paused ? .paused : .active
        var remaining: Int?
        if case .active = phase, pending > 0 {
            let usable = try await EmailService.query(on: db).all().filter {
                let state = ServiceState.of($0, now: now)
                return state != .disabled && state != .frozen
            }
            remaining = usable.isEmpty ? nil : TaskFigures.remainingCapacity(usable.map { ($0.dailyQuota, $0.usedQuota) })
        }
        let eta = TaskFigures.eta(phase: phase, pending: pending, currentPerHour: currentPerHour, remainingQuota: remaining, now: now)
        return .init(at: eta.at, seconds: eta.seconds, reason: eta.reason)
    }

    // MARK: - GET /api/monitoring/task-stats

    struct StatsDTO: Content {
        struct Wait: Content { var count: Int; var avg: Double?; var p50: Double?; var p95: Double?; var max: Double? }
        var from: Date?
        var to: Date?
        var counts_by_type: [String: Int]
        var wait_time_seconds: Wait
        /// Mean of the `completed` rows' throughput, emails per hour.
        var average_throughput_per_hour: Double?
        var tasks_completed: Int
        var tasks_failed: Int
        var stuck_tasks: [StuckTask]
    }

    /// Counts by metric type; wait time avg, p50, p95 (Prometheus `quantile_over_time`
    /// interpolation) and max over `first_sent` rows; average throughput of `completed` rows;
    /// completed and failed tasks — all within [from, to] — and the stuck tasks now.
    @Sendable func stats(_ req: Request) async throws -> StatsDTO {
        let (from, to) = try Self.range(req)
        let query = TaskProcessingMetric.query(on: req.db)
        if let from { query.filter(\.$timestamp >= from) }
        if let to { query.filter(\.$timestamp <= to) }
        // Only the columns the figures need; a long range is many rows, but no JSON is decoded.
        let rows = try await query.field(\.$id).field(\.$metricType).field(\.$waitTimeSeconds).field(\.$throughputPerHour).field(\.$timestamp).all()
        var counts = Dictionary(uniqueKeysWithValues: TaskProcessingMetric.MetricType.allCases.map { ($0.rawValue, 0) })
        for row in rows { counts[row.metricType.rawValue, default: 0] += 1 }
        let waits = rows.filter { $0.metricType == .firstSent }.compactMap(\.waitTimeSeconds).filter(\.isFinite).sorted()
        let throughputs = rows.filter { $0.metricType == .completed }.compactMap(\.throughputPerHour).filter(\.isFinite)
        let wait = StatsDTO.Wait(
            count: waits.count,
            avg: waits.isEmpty ? nil : Self.finite(waits.reduce(0) { $0 + $1 / Double(waits.count) }),
            p50: MetricWindow.quantile(0.5, of: waits),
            p95: MetricWindow.quantile(0.95, of: waits),
            max: waits.last
        )
        return StatsDTO(
            from: from, to: to, counts_by_type: counts, wait_time_seconds: wait,
            average_throughput_per_hour: throughputs.isEmpty ? nil : Self.finite(throughputs.reduce(0) { $0 + $1 / Double(throughputs.count) }),
            tasks_completed: counts["completed"] ?? 0, tasks_failed: counts["failed"] ?? 0,
            stuck_tasks: taskMonitor.stuckTasks.values.sorted { $0.stuckSeconds > $1.stuckSeconds }
        )
    }

    /// `value` when finite, else `nil` (JSON has no infinity).
    static func finite(_ value: Double) -> Double? { value.isFinite ? value : nil }

    // MARK: - GET /api/monitoring/queue-status

    struct QueueStatusDTO: Content {
        struct Service: Content {
            var id: UUID
            var name: String
            var state: String
            var daily_quota: Int
            var used_quota: Int
            var remaining_quota: Int
            var next_reset: Date?
            var next_available_at: Date?
            var frozen_until: Date?
            var consecutive_failures: Int
        }
        struct Reservation: Content { var service_id: UUID; var service_name: String?; var reserved_by: String; var subtask_id: UUID?; var expires_at: Date }
        var subtasks: [String: Int]
        var active_tasks: Int
        var services_by_state: [String: Int]
        var services: [Service]
        var reservations: [Reservation]
        /// Emails sent in the last 5 and 60 minutes.
        var sent_last_5_minutes: Int
        var sent_last_60_minutes: Int
        var throughput_per_hour_5m: Double
        var throughput_per_hour_60m: Double
        var stuck_tasks: Int
        var at: Date
    }

    @Sendable func queueStatus(_ req: Request) async throws -> QueueStatusDTO {
        let now = clock.now()
        let sql = req.db.sql
        struct StatusCount: Decodable { var status: String; var n: Int }
        struct N: Decodable { var n: Int }
        let byStatus = try await sql.raw("SELECT status, count(*) AS n FROM sub_tasks GROUP BY status").all(decoding: StatusCount.self)
        var subtasks = Dictionary(uniqueKeysWithValues: SubTaskRecord.Status.allCases.map { ($0.rawValue, 0) })
        for row in byStatus { subtasks[row.status] = row.n }
        let active = try await sql.raw("SELECT count(*) AS n FROM tasks WHERE status IN (\(binds: [TaskRecord.Status.queued.rawValue, TaskRecord.Status.sending.rawValue]))").first(decoding: N.self)?.n ?? 0
        let services = try await EmailService.query(on: req.db).sort(\.$name).all()
        var byState = Dictionary(uniqueKeysWithValues: ServiceState.allCases.map { ($0.rawValue, 0) })
        let serviceDTOs = try services.map { s -> QueueStatusDTO.Service in
            let state = ServiceState.of(s, now: now)
            byState[state.rawValue, default: 0] += 1
            return .init(
                id: try s.requireID(), name: s.name, state: state.rawValue, daily_quota: s.dailyQuota, used_quota: s.usedQuota,
                remaining_quota: max(0, s.dailyQuota - s.usedQuota),
                next_reset: (try? QuotaResetSchedule(resetTime: s.quotaResetTime, timeZoneIdentifier: s.quotaTimezone))?.window(containing: now).nextReset,
                next_available_at: s.nextAvailableAt, frozen_until: s.frozenUntil, consecutive_failures: s.consecutiveFailures
            )
        }
        let names = Dictionary(uniqueKeysWithValues: serviceDTOs.map { ($0.id, $0.name) })
        let reservations = try await ServiceReservation.query(on: req.db).filter(\.$expiresAt > now).all().map {
            QueueStatusDTO.Reservation(service_id: try $0.requireID(), service_name: names[try $0.requireID()], reserved_by: $0.reservedBy, subtask_id: $0.$subtask.id, expires_at: $0.expiresAt)
        }
        func sent(since seconds: Double) async throws -> Int {
            try await sql.raw("SELECT count(*) AS n FROM sub_tasks WHERE status = \(bind: SubTaskRecord.Status.sent.rawValue) AND sent_at > \(bind: now.addingTimeInterval(-seconds)) AND sent_at <= \(bind: now)").first(decoding: N.self)?.n ?? 0
        }
        let five = try await sent(since: 300), sixty = try await sent(since: 3600)
        return QueueStatusDTO(
            subtasks: subtasks, active_tasks: active, services_by_state: byState, services: serviceDTOs, reservations: reservations,
            sent_last_5_minutes: five, sent_last_60_minutes: sixty,
            throughput_per_hour_5m: TaskFigures.perHour(count: five, overSeconds: 300),
            throughput_per_hour_60m: TaskFigures.perHour(count: sixty, overSeconds: 3600),
            stuck_tasks: taskMonitor.stuckTasks.count, at: now
        )
    }

    // MARK: - POST /api/monitoring/task-events

    /// One lifecycle event from an external scheduler.
    struct EventBody: Content {
        var event_id: String
        var task_id: UUID
        var user_id: UUID
        var type: String
        var timestamp: Date
        var subtasks_sent: Int?
        var total_subtasks: Int?
        var wait_time_seconds: Double?
        var throughput_per_hour: Double?
        var metadata: [String: JSONValue]?
    }

    struct EventsBody: Content { var events: [EventBody] }
    struct EventsResult: Content { var accepted: Int; var duplicates: Int }

    /// Accepts up to 10,000 events. The batch is validated whole: one bad event is a 400 naming
    /// it (`events[i].field`) and nothing is written. Events whose `event_id` was already
    /// recorded are skipped (idempotent), so a retried POST records each event once. The task
    /// and user must exist here. Validation is here; the write is
    /// ``TaskMonitorService/recordEvents(_:at:)``.
    @Sendable func ingestEvents(_ req: Request) async throws -> Response {
        let body = try req.jsonBody(EventsBody.self)
        let now = clock.now()
        var details: [APIErrorDetail] = []
        if body.events.isEmpty { details.append(.init(field: "events", reason: "must not be empty")) }
        if body.events.count > 10_000 { details.append(.init(field: "events", reason: "at most 10000 events per request")) }
        var seen = Set<String>()
        var rows: [TaskProcessingMetric] = []
        let taskIDs = Set(body.events.map(\.task_id)), userIDs = Set(body.events.map(\.user_id))
        let knownTasks = Set(try await TaskRecord.query(on: req.db).filter(\.$id ~~ Array(taskIDs)).all(\.$id))
        let knownUsers = Set(try await User.query(on: req.db).filter(\.$id ~~ Array(userIDs)).all(\.$id))
        for (i, event) in body.events.enumerated() {
            let at = "events[\(i)]"
            if event.event_id.isEmpty || event.event_id.count > 200 { details.append(.init(field: "\(at).event_id", reason: "must be 1 to 200 characters")) }
            if !seen.insert(event.event_id).inserted { details.append(.init(field: "\(at).event_id", reason: "repeats an earlier event of this batch")) }
            guard let type = TaskProcessingMetric.MetricType(rawValue: event.type) else {
                details.append(.init(field: "\(at).type", reason: "must be one of " + TaskProcessingMetric.MetricType.allCases.map(\.rawValue).joined(separator: ", ")))
                continue
            }
            if !knownTasks.contains(event.task_id) { details.append(.init(field: "\(at).task_id", reason: "no such task")) }
            if !knownUsers.contains(event.user_id) { details.append(.init(field: "\(at).user_id", reason: "no such user")) }
            if event.timestamp > now.addingTimeInterval(300) { details.append(.init(field: "\(at).timestamp", reason: "more than 5 minutes in the future")) }
            for (name, value) in [("subtasks_sent", event.subtasks_sent), ("total_subtasks", event.total_subtasks)] where (value ?? 0) < 0 {
                details.append(.init(field: "\(at).\(name)", reason: "must be ≥ 0"))
            }
            for (name, value, limit) in [("wait_time_seconds", event.wait_time_seconds, 1e9), ("throughput_per_hour", event.throughput_per_hour, 1e12)] {
                if let value, !value.isFinite || value < 0 || value > limit { details.append(.init(field: "\(at).\(name)", reason: "must be a number from 0 to \(limit)")) }
            }
            for (name, value) in [("subtasks_sent", event.subtasks_sent), ("total_subtasks", event.total_subtasks)] where (value ?? 0) > 1_000_000_000 {
                details.append(.init(field: "\(at).\(name)", reason: "must be at most 1000000000"))
            }
            let row = TaskProcessingMetric(
                taskID: event.task_id, userID: event.user_id, metricType: type, timestamp: event.timestamp,
                subtasksSent: event.subtasks_sent ?? 0, totalSubtasks: event.total_subtasks ?? 0,
                waitTimeSeconds: event.wait_time_seconds, throughputPerHour: event.throughput_per_hour, metadata: event.metadata
            )
            row.eventID = event.event_id
            rows.append(row)
        }
        guard details.isEmpty else { throw APIError.validation("the batch was refused; nothing was written", details) }
        let accepted = try await taskMonitor.recordEvents(rows, at: now)
        return try await EventsResult(accepted: accepted, duplicates: rows.count - accepted).encodeResponse(status: .ok, for: req)
    }
}
