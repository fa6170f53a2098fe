import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import SQLKit
import ServiceLifecycle
import Synchronization

/// Status values in this file's SQL are bound from the model enums, never written as literals.
private typealias SubTaskStatus = SubTaskRecord.Status
private typealias TaskStatus = TaskRecord.Status

/// Settings of the dispatch loop.
public struct SchedulerConfiguration: Sendable {
    /// This instance's id in `service_reservations.reserved_by` and `sub_tasks.claimed_by`.
    public var instanceID: String
    /// How long a reservation (and a claim) holds without renewal, seconds; renewed every third
    /// of it while a send runs.
    public var leaseSeconds: Double = 30
    /// Attempts of one subtask before a temporary failure becomes final.
    public var maxAttempts: Int = 3
    /// Backoff before retry n (n ≥ 1) is `retryBaseSeconds × 2^(n−1)`, at most one hour.
    public var retryBaseSeconds: Double = 30
    /// Consecutive failures that freeze a service…
    public var freezeAfterFailures: Int = 5
    /// …for this many seconds.
    public var freezeSeconds: Double = 15 * 60
    /// Pause of the loop when a cycle dispatched nothing.
    public var idleDelay: Duration = .milliseconds(500)

    /// Defaults, with an instance id made of host name, process id and a random suffix.
    public init(instanceID: String = SchedulerConfiguration.defaultInstanceID()) {
        self.instanceID = instanceID
    }

    /// `host-pid-xxxxxx`: unique across processes and restarts.
    public static func defaultInstanceID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(6).lowercased())"
    }

    /// Delay before the retry that follows attempt `attempts` (1-based), seconds.
    func retryDelay(afterAttempt attempts: Int) -> Double {
        min(3600, retryBaseSeconds * pow(2, Double(max(0, attempts - 1))))
    }
}

/// What one scheduler cycle did.
public struct SchedulerCycleReport: Sendable, Equatable {
    /// Messages accepted by a provider.
    public var sent = 0
    /// Attempts that failed (temporary or permanent).
    public var failedAttempts = 0
    /// Services that had work but whose reservation another instance held.
    public var reservationConflicts = 0
    /// Subtasks marked failed because their instance died mid-send.
    public var interrupted = 0
    /// Services whose daily quota was reset this cycle.
    public var quotaResets = 0
    /// Services thawed because `frozen_until` passed.
    public var thawed = 0

    /// Sends attempted (successful or not).
    public var dispatched: Int { sent + failedAttempts }
}

/// Creates the mailer of a service (SMTP, HTTP or dry run).
public protocol MailerFactory: Sendable {
    /// A mailer for `service`. - Throws: when the service's settings cannot make one.
    func makeMailer(for service: EmailService) throws -> any Mailer
}

/// Stage 2 of the two-stage scheduler: the dispatch loop.
///
/// Each cycle (``runOnce()``):
/// 1. housekeeping — subtasks left `sending` by a dead instance (lease expired) become `failed`
///    with reason `interrupted` (never resent: at-most-once); expired reservations are deleted;
///    frozen services whose `frozen_until` passed thaw; each service's daily quota resets when
///    its local quota day changes (`QuotaResetSchedule`, correct across DST);
/// 2. for every service that is enabled, not frozen, under quota and past `next_available_at`,
///    in parallel: take its reservation (one atomic upsert), claim the next subtask fairly —
///    the user served longest ago first (round-robin), then FIFO by task and by recipient —
///    render and send it, record the outcome, pace the service and release the reservation.
///
/// Several instances may share one PostgreSQL database: a reservation is held by one instance
/// at a time, and claims use `FOR UPDATE SKIP LOCKED`, so no subtask is sent twice.
public final class QueueScheduler: Sendable {
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let configuration: SchedulerConfiguration
    let mailers: any MailerFactory
    let hooks: any TaskMonitorHooks
    let logger: Logger
    let heartbeat: SchedulerHeartbeat
    private let cache = Mutex<[UUID: CachedMailer]>([:])
    /// Compiled templates by task: parsing three Mustache templates per message would put the
    /// parser on the hot path. Task templates never change after creation.
    private let templates = Mutex<[UUID: MessageTemplates]>([:])
    /// Outcomes of sends that the database did not take (it was unreachable), oldest first; the
    /// next cycle records them before anything else, so an outage never turns a message that
    /// went out into an `interrupted` failure. Kept at most ``unrecordedKeepSeconds``.
    private let unrecorded = Mutex<[UnrecordedOutcome]>([])
    /// How long an outcome waits for the database before it is given up (and its subtask left
    /// to the interrupted rule), seconds.
    static let unrecordedKeepSeconds: Double = 3600

    struct UnrecordedOutcome: Sendable {
        var outcome: MailerOutcome
        var claim: Claim
        var service: EmailService
        var since: Date
    }

    struct CachedMailer: Sendable {
        var version: Date?
        var mailer: any Mailer
    }

    /// Creates a scheduler. `database` is asked for a handle each cycle.
    public init(database: @escaping @Sendable () -> any Database, clock: any WallClock, configuration: SchedulerConfiguration, mailers: any MailerFactory, hooks: any TaskMonitorHooks, heartbeat: SchedulerHeartbeat = SchedulerHeartbeat(), logger: Logger = Logger(label: "edm.scheduler")) {
        self.database = database
        self.heartbeat = heartbeat
        self.clock = clock
        self.configuration = configuration
        self.mailers = mailers
        self.hooks = hooks
        self.logger = logger
    }

    /// One cycle: housekeeping, then at most one message per dispatchable service.
    public func runOnce() async throws -> SchedulerCycleReport {
        var report = SchedulerCycleReport()
        let db = database()
        try await recordUnrecorded(on: db)
        try await housekeeping(db, report: &report)
        // After SIGTERM/SIGINT (`serve`'s service group) a cycle claims nothing new; sends
        // already claimed finish and record their outcome.
        if Task.isShuttingDownGracefully { return report }
        let services = try await dispatchableServices(db)
        let outcomes = try await withThrowingTaskGroup(of: DispatchResult.self) { group in
            for service in services {
                group.addTask { try await self.dispatch(service, on: self.database()) }
            }
            var results: [DispatchResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        for outcome in outcomes {
            switch outcome {
            case .sent: report.sent += 1
            case .failed: report.failedAttempts += 1
            case .reservedElsewhere: report.reservationConflicts += 1
            case .idle: break
            }
        }
        heartbeat.beat(at: clock.now())
        return report
    }

    /// Closes every cached mailer (SMTP QUIT).
    public func closeMailers() async {
        let all = cache.withLock { c in defer { c.removeAll() }; return Array(c.values) }
        for entry in all { await entry.mailer.close() }
    }

    // MARK: - Housekeeping

    func housekeeping(_ db: any Database, report: inout SchedulerCycleReport) async throws {
        let sql = db.sql
        let now = clock.now()

        // At-most-once: a claim whose lease expired belonged to a dead instance.
        let interrupted = try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.failed.rawValue), last_error = 'interrupted', lease_expires_at = NULL, updated_at = \(bind: now)
            WHERE status = \(bind: SubTaskStatus.sending.rawValue) AND lease_expires_at < \(bind: now)
            RETURNING task_id
            """).all(decoding: TaskIDRow.self)
        report.interrupted = interrupted.count
        if !interrupted.isEmpty {
            logger.warning("subtasks interrupted by a dead instance marked failed", metadata: ["count": "\(interrupted.count)"])
            for (taskID, count) in Dictionary(grouping: interrupted, by: \.task_id).mapValues(\.count) {
                try await sql.raw("UPDATE tasks SET failed_count = failed_count + \(bind: count), updated_at = \(bind: now) WHERE id = \(bind: taskID)").run()
                try await finishIfDone(taskID: taskID, on: sql, now: now)
            }
        }

        try await reservations(on: sql).deleteExpired(at: now)

        let thawed = try await sql.raw("""
            UPDATE email_services SET is_frozen = \(SQLLiteral.boolean(false)), frozen_until = NULL, consecutive_failures = 0
            WHERE is_frozen = \(SQLLiteral.boolean(true)) AND frozen_until IS NOT NULL AND frozen_until <= \(bind: now)
            RETURNING id
            """).all()
        report.thawed = thawed.count

        for service in try await EmailService.query(on: db).all() {
            guard let schedule = try? QuotaResetSchedule(resetTime: service.quotaResetTime, timeZoneIdentifier: service.quotaTimezone) else { continue }
            let day = schedule.window(containing: now).quotaDay
            guard service.quotaDay != day else { continue }
            // Conditional on the day read, so two instances reset a day once.
            let sameDay: SQLQueryString = service.quotaDay.map { "quota_day = \(bind: $0)" } ?? "quota_day IS NULL"
            let reset = try await sql.raw("""
                UPDATE email_services SET used_quota = 0, quota_day = \(bind: day)
                WHERE id = \(bind: service.requireID()) AND \(sameDay)
                RETURNING id
                """).all()
            if !reset.isEmpty && service.quotaDay != nil { report.quotaResets += 1 }
        }
    }

    /// Marks the task completed (some sent) or failed (all failed) when every subtask is terminal.
    func finishIfDone(taskID: UUID, on sql: any SQLDatabase, now: Date) async throws {
        let rows = try await sql.raw("""
            UPDATE tasks SET status = CASE WHEN sent_count > 0 THEN \(bind: TaskStatus.completed.rawValue) ELSE \(bind: TaskStatus.failed.rawValue) END,
                status_reason = CASE WHEN sent_count > 0 THEN NULL ELSE 'every recipient failed' END,
                completed_at = \(bind: now), updated_at = \(bind: now)
            WHERE id = \(bind: taskID) AND status IN (\(binds: [TaskStatus.queued, .sending, .paused].map(\.rawValue))) AND sent_count + failed_count >= total_count
            RETURNING user_id, status, sent_count, failed_count, total_count
            """).all(decoding: FinishedRow.self)
        guard let row = rows.first else { return }
        if row.status == TaskStatus.completed.rawValue {
            await hooks.completed(taskID: taskID, userID: row.user_id, sent: row.sent_count, failed: row.failed_count, total: row.total_count, at: now)
        } else {
            await hooks.failed(taskID: taskID, userID: row.user_id, reason: "every recipient failed", at: now)
        }
    }

    // MARK: - Dispatch

    enum DispatchResult: Sendable { case sent, failed, reservedElsewhere, idle }

    func dispatchableServices(_ db: any Database) async throws -> [EmailService] {
        let now = clock.now()
        return try await EmailService.query(on: db)
            .filter(\.$isEnabled == true)
            .group(.or) { $0.filter(\.$isFrozen == false).filter(\.$frozenUntil <= now) }
            .group(.or) { $0.filter(\.$nextAvailableAt == nil).filter(\.$nextAvailableAt <= now) }
            .sort(\.$name)
            .all()
            .filter { $0.usedQuota < $0.dailyQuota }
    }

    func dispatch(_ service: EmailService, on db: any Database) async throws -> DispatchResult {
        let sql = db.sql
        let serviceID = try service.requireID()
        var now = clock.now()

        let reservations = reservations(on: sql)
        guard try await reservations.acquire(serviceID, at: now) else { return .reservedElsewhere }
        do {
            guard let claim = try await claimNext(serviceID: serviceID, on: sql, now: now) else {
                try await reservations.release(serviceID)
                return .idle
            }
            let email = render(claim, service: service)
            let mailer: any Mailer
            do {
                mailer = try self.mailer(for: service)
            } catch {
                // The service's settings are broken, not the recipient: put the claim back
                // untouched and freeze the service until an operator fixes it.
                try await unclaimAndFreeze(claim, service: service, reason: "\(error)", on: sql)
                try await reservations.release(serviceID)
                return .failed
            }
            let subtaskID = try claim.subtask.requireID()
            let outcome = await withLeaseRenewal(serviceID: serviceID, subtaskID: subtaskID, on: sql) {
                await mailer.send(email)
            }
            now = clock.now()
            do {
                try await record(outcome, claim: claim, service: service, on: db, now: now)
            } catch {
                unrecorded.withLock { $0.append(UnrecordedOutcome(outcome: outcome, claim: claim, service: service, since: now)) }
                throw error
            }
            try await reservations.release(serviceID)
            if case .sent = outcome { return .sent }
            return .failed
        } catch {
            try? await reservations.release(serviceID)
            throw error
        }
    }

    /// Records the outcomes kept while the database was unreachable, oldest first.
    /// - Throws: the database's error; what was not recorded is kept for the next cycle.
    func recordUnrecorded(on db: any Database) async throws {
        let pending = unrecorded.withLock { p in defer { p.removeAll() }; return p }
        for (index, item) in pending.enumerated() {
            do {
                try await record(item.outcome, claim: item.claim, service: item.service, on: db, now: clock.now())
            } catch {
                let now = clock.now()
                let keep = pending[index...].filter { now.timeIntervalSince($0.since) < Self.unrecordedKeepSeconds }
                if keep.count < pending.count - index {
                    logger.error("send outcomes given up after waiting for the database; their subtasks will be marked interrupted",
                                 metadata: ["count": "\(pending.count - index - keep.count)"])
                }
                unrecorded.withLock { $0.insert(contentsOf: keep, at: 0) }
                throw error
            }
        }
        if !pending.isEmpty { logger.notice("send outcomes recorded after the database returned", metadata: ["count": "\(pending.count)"]) }
    }

    /// Returns a claimed subtask to `pending` without spending an attempt and freezes the service.
    func unclaimAndFreeze(_ claim: Claim, service: EmailService, reason: String, on sql: any SQLDatabase) async throws {
        let now = clock.now()
        try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.pending.rawValue), attempts = attempts - 1, claimed_by = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: claim.subtask.requireID()) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)
            """).run()
        try await sql.raw("""
            UPDATE email_services SET is_frozen = \(SQLLiteral.boolean(true)), frozen_until = \(bind: now.addingTimeInterval(configuration.freezeSeconds))
            WHERE id = \(bind: service.requireID())
            """).run()
        logger.error("email service frozen: its settings cannot make a mailer; fix them and unfreeze it", metadata: ["service": "\(service.name)", "error": "\(reason)"])
    }

    /// The `service_reservations` access of this instance, on `sql`.
    func reservations(on sql: any SQLDatabase) -> ServiceReservationStore {
        ServiceReservationStore(sql: sql, holder: configuration.instanceID, leaseSeconds: configuration.leaseSeconds)
    }

    struct Claim: Sendable {
        var subtask: SubTaskRecord
        var task: TaskRecord
    }

    /// Claims the next subtask: among active, due tasks with pending due subtasks, the user whose
    /// last claim is oldest (never first), then the oldest task, then the lowest sequence.
    func claimNext(serviceID: UUID, on sql: any SQLDatabase, now: Date) async throws -> Claim? {
        let candidates = try await sql.raw("""
            SELECT t.id AS task_id, t.user_id AS user_id FROM tasks t JOIN users u ON u.id = t.user_id
            WHERE t.status IN (\(binds: [TaskStatus.queued.rawValue, TaskStatus.sending.rawValue])) AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))
              AND EXISTS (SELECT 1 FROM sub_tasks s WHERE s.task_id = t.id AND s.status = \(bind: SubTaskStatus.pending.rawValue)
                          AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= \(bind: now)))
            ORDER BY (u.last_dispatched_at IS NOT NULL), u.last_dispatched_at, t.created_at, t.id
            LIMIT 5
            """).all(decoding: CandidateRow.self)
        let skipLocked = SQLDialectKind(sql).forUpdateSkipLocked
        let lease = now.addingTimeInterval(configuration.leaseSeconds)
        for candidate in candidates {
            let claimed = try await sql.raw("""
                UPDATE sub_tasks SET status = \(bind: SubTaskStatus.sending.rawValue), service_id = \(bind: serviceID), claimed_by = \(bind: configuration.instanceID),
                    lease_expires_at = \(bind: lease), attempts = attempts + 1, updated_at = \(bind: now)
                WHERE id = (SELECT id FROM sub_tasks WHERE task_id = \(bind: candidate.task_id) AND status = \(bind: SubTaskStatus.pending.rawValue)
                            AND (next_attempt_at IS NULL OR next_attempt_at <= \(bind: now))
                            ORDER BY sequence LIMIT 1 \(unsafeRaw: skipLocked))
                  AND status = \(bind: SubTaskStatus.pending.rawValue)
                RETURNING id
                """).all(decoding: IDRow.self)
            guard let id = claimed.first?.id else { continue }
            try await sql.raw("UPDATE users SET last_dispatched_at = \(bind: now) WHERE id = \(bind: candidate.user_id)").run()
            try await sql.raw("UPDATE tasks SET status = \(bind: TaskStatus.sending.rawValue), updated_at = \(bind: now) WHERE id = \(bind: candidate.task_id) AND status = \(bind: TaskStatus.queued.rawValue)").run()
            try await reservations(on: sql).noteSubtask(id, of: serviceID)
            let db = sql as! any Database
            guard let subtask = try await SubTaskRecord.find(id, on: db),
                  let task = try await TaskRecord.find(candidate.task_id, on: db) else { continue }
            return Claim(subtask: subtask, task: task)
        }
        return nil
    }

    func render(_ claim: Claim, service: EmailService) -> OutgoingEmail {
        let subtask = claim.subtask, task = claim.task
        let rendered: (subject: String, text: String, html: String?)
        if let templates = compiledTemplates(of: task) {
            rendered = templates.render(email: subtask.recipientEmail, name: subtask.recipientName, variables: subtask.variables)
        } else {
            rendered = (task.subjectTemplate, task.textTemplate, task.htmlTemplate)
        }
        return OutgoingEmail(
            fromAddress: service.senderAddress, fromName: service.senderName,
            toAddress: subtask.recipientEmail, toName: subtask.recipientName,
            subject: rendered.subject, textBody: rendered.text, htmlBody: rendered.html,
            headers: ["X-EDM-Task-ID": task.id?.uuidString.lowercased() ?? ""],
            taskID: task.id ?? UUID(), subtaskID: subtask.id ?? UUID(), variables: subtask.variables
        )
    }

    /// The task's compiled templates, cached (at most 1,000 tasks; the cache is emptied when full).
    func compiledTemplates(of task: TaskRecord) -> MessageTemplates? {
        guard let id = task.id else { return nil }
        if let cached = templates.withLock({ $0[id] }) { return cached }
        guard let compiled = try? MessageTemplates(subject: task.subjectTemplate, text: task.textTemplate, html: task.htmlTemplate) else { return nil }
        templates.withLock { cache in
            if cache.count >= 1_000 { cache.removeAll() }
            cache[id] = compiled
        }
        return compiled
    }

    /// The cached mailer of `service`, made anew when the service's settings changed.
    func mailer(for service: EmailService) throws -> any Mailer {
        let id = try service.requireID()
        if let cached = cache.withLock({ $0[id] }), cached.version == service.updatedAt { return cached.mailer }
        let fresh = try mailers.makeMailer(for: service)
        let old = cache.withLock { c -> (any Mailer)? in
            let old = c[id]?.mailer
            c[id] = CachedMailer(version: service.updatedAt, mailer: fresh)
            return old
        }
        if let old { Task { await old.close() } }
        return fresh
    }

    /// Runs `send`, renewing the reservation and the claim every third of the lease meanwhile.
    func withLeaseRenewal(serviceID: UUID, subtaskID: UUID, on sql: any SQLDatabase, _ send: @Sendable () async -> MailerOutcome) async -> MailerOutcome {
        let interval = configuration.leaseSeconds / 3
        let renewal = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(interval))
                let now = clock.now()
                try await reservations(on: sql).renew(serviceID, at: now)
                let expires = now.addingTimeInterval(configuration.leaseSeconds)
                try await sql.raw("UPDATE sub_tasks SET lease_expires_at = \(bind: expires) WHERE id = \(bind: subtaskID) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)").run()
            }
        }
        let outcome = await send()
        renewal.cancel()
        return outcome
    }

    /// Records an attempt's outcome: the subtask, the task's counts and state, the service's
    /// quota, pacing and failure streak, in one transaction. Then calls the monitoring hooks.
    ///
    /// Safe to call again after a failure (``recordUnrecorded(on:)``): the transaction applies
    /// all or nothing, and an outcome already applied is not counted twice.
    func record(_ outcome: MailerOutcome, claim: Claim, service: EmailService, on db: any Database, now: Date) async throws {
        let applied = try await db.transaction { tx in
            try await self.apply(outcome, claim: claim, service: service, on: tx.sql, now: now)
        }
        // nil: a retry of an outcome whose transaction had committed; only the follow-ups remain.
        let (firstSent, terminal) = applied ?? (false, true)
        let sql = db.sql
        let taskID = try claim.task.requireID()
        let task = claim.task
        if firstSent {
            let wait = TaskFigures.waitSeconds(createdAt: task.createdAt, scheduledAt: task.scheduledAt, firstSentAt: now)
            await hooks.firstSent(taskID: taskID, userID: task.$user.id, waitSeconds: wait, totalSubtasks: task.totalCount, at: now)
        }
        if terminal {
            if let counts = try await sql.raw("SELECT sent_count, failed_count, total_count FROM tasks WHERE id = \(bind: taskID)").first(decoding: CountsRow.self) {
                await hooks.progress(taskID: taskID, userID: task.$user.id, sent: counts.sent_count, failed: counts.failed_count, total: counts.total_count, at: now)
            }
            try await finishIfDone(taskID: taskID, on: sql, now: now)
        }
    }

    /// The statements of ``record(_:claim:service:on:now:)``: whether this was the task's first
    /// sent message and whether the subtask reached a terminal state; `nil` when the subtask no
    /// longer holds this claim (the outcome was recorded already), in which case nothing changes.
    func apply(_ outcome: MailerOutcome, claim: Claim, service: EmailService, on sql: any SQLDatabase, now: Date) async throws -> (firstSent: Bool, terminal: Bool)? {
        let subtaskID = try claim.subtask.requireID()
        let taskID = try claim.task.requireID()
        let serviceID = try service.requireID()
        let me = configuration.instanceID
        let nextAvailable = now.addingTimeInterval(service.sendingIntervalSeconds)
        var firstSent = false
        var terminal = false

        switch outcome {
        case .sent(let messageID):
            func markSent(from status: SubTaskStatus) async throws -> Bool {
                !(try await sql.raw("""
                    UPDATE sub_tasks SET status = \(bind: SubTaskStatus.sent.rawValue), sent_at = \(bind: now), provider_message_id = \(bind: messageID),
                        last_error = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
                    WHERE id = \(bind: subtaskID) AND claimed_by = \(bind: me) AND status = \(bind: status.rawValue)
                    RETURNING id
                    """).all().isEmpty)
            }
            // A claim that housekeeping marked interrupted (this instance stalled past its lease)
            // was sent after all: move it from failed to sent, and its count with it.
            var wasCountedFailed = false
            if try await !markSent(from: .sending) {
                wasCountedFailed = try await markSent(from: .failed)
                if !wasCountedFailed { return nil }
            }
            firstSent = !(try await sql.raw("UPDATE tasks SET started_at = \(bind: now) WHERE id = \(bind: taskID) AND started_at IS NULL RETURNING id").all().isEmpty)
            try await sql.raw("""
                UPDATE tasks SET sent_count = sent_count + 1\(unsafeRaw: wasCountedFailed ? ", failed_count = failed_count - 1" : ""), updated_at = \(bind: now)
                WHERE id = \(bind: taskID)
                """).run()
            try await sql.raw("""
                UPDATE email_services SET used_quota = CASE WHEN used_quota < daily_quota THEN used_quota + 1 ELSE used_quota END,
                    consecutive_failures = 0, next_available_at = \(bind: nextAvailable)
                WHERE id = \(bind: serviceID)
                """).run()
            terminal = true
        case .invalidMessage(let reason):
            guard try await !sql.raw("""
                UPDATE sub_tasks SET status = \(bind: SubTaskStatus.failed.rawValue), last_error = \(bind: String(reason.prefix(1000))), claimed_by = NULL,
                    lease_expires_at = NULL, updated_at = \(bind: now)
                WHERE id = \(bind: subtaskID) AND claimed_by = \(bind: me) AND status = \(bind: SubTaskStatus.sending.rawValue)
                RETURNING id
                """).all().isEmpty else { return nil }
            try await sql.raw("UPDATE tasks SET failed_count = failed_count + 1, updated_at = \(bind: now) WHERE id = \(bind: taskID)").run()
            try await sql.raw("UPDATE email_services SET next_available_at = \(bind: nextAvailable) WHERE id = \(bind: serviceID)").run()
            terminal = true
        case .sessionFailure(let reason), .serviceConfigurationFailure(let reason):
            // Not the recipient's doing (C09): back to pending without spending an attempt.
            guard try await requeueWithoutAttempt(subtaskID, reason: reason, on: sql, now: now) else { return nil }
            if case .serviceConfigurationFailure = outcome {
                let until = now.addingTimeInterval(configuration.freezeSeconds)
                try await sql.raw("""
                    UPDATE email_services SET is_frozen = \(SQLLiteral.boolean(true)), frozen_until = \(bind: until), next_available_at = \(bind: nextAvailable)
                    WHERE id = \(bind: serviceID)
                    """).run()
                logger.error("email service paused: the provider refused its settings; fix them and unfreeze it",
                             metadata: ["service": "\(service.name)", "until": "\(until)", "reason": "\(reason)"])
                return (false, false)
            }
            fallthrough
        case .transientFailure, .retryLater, .permanentFailure, .hardBounce:
            let reason = outcome.failureReason ?? ""
            var permanent = false
            var session = false
            var leastDelay = 0.0
            switch outcome {
            case .permanentFailure, .hardBounce: permanent = true
            case .retryLater(_, let seconds): leastDelay = seconds
            case .sessionFailure: session = true
            default: break
            }
            let attempts = claim.subtask.attempts
            let giveUp = !session && (permanent || attempts >= configuration.maxAttempts)
            let retryAt = now.addingTimeInterval(max(configuration.retryDelay(afterAttempt: attempts), leastDelay))
            if !session {
                guard try await !sql.raw("""
                    UPDATE sub_tasks SET status = \(bind: (giveUp ? SubTaskStatus.failed : .pending).rawValue), last_error = \(bind: String(reason.prefix(1000))),
                        next_attempt_at = \(bind: giveUp ? nil : retryAt), claimed_by = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
                    WHERE id = \(bind: subtaskID) AND claimed_by = \(bind: me) AND status = \(bind: SubTaskStatus.sending.rawValue)
                    RETURNING id
                    """).all().isEmpty else { return nil }
            }
            if giveUp {
                try await sql.raw("UPDATE tasks SET failed_count = failed_count + 1, updated_at = \(bind: now) WHERE id = \(bind: taskID)").run()
                terminal = true
            }
            let freezeUntil = now.addingTimeInterval(configuration.freezeSeconds)
            let frozen = try await sql.raw("""
                UPDATE email_services SET consecutive_failures = consecutive_failures + 1, next_available_at = \(bind: nextAvailable),
                    is_frozen = CASE WHEN consecutive_failures + 1 >= \(bind: configuration.freezeAfterFailures) THEN \(SQLLiteral.boolean(true)) ELSE is_frozen END,
                    frozen_until = CASE WHEN consecutive_failures + 1 >= \(bind: configuration.freezeAfterFailures) THEN \(bind: freezeUntil) ELSE frozen_until END
                WHERE id = \(bind: serviceID)
                RETURNING is_frozen
                """).all(decoding: FrozenRow.self)
            logger.notice("send failed", metadata: [
                "service": "\(service.name)", "subtask_id": "\(subtaskID)", "attempt": "\(attempts)",
                "final": "\(giveUp)", "reason": "\(reason)",
            ])
            if frozen.first?.is_frozen == true && !service.isFrozen {
                logger.warning("service frozen after consecutive failures", metadata: ["service": "\(service.name)", "until": "\(freezeUntil)"])
            }
        }

        return (firstSent, terminal)
    }

    /// Returns the claimed subtask to `pending` with `reason`, giving back the attempt its claim
    /// took, due at once. - Returns: false when this instance no longer holds the claim.
    func requeueWithoutAttempt(_ subtaskID: UUID, reason: String, on sql: any SQLDatabase, now: Date) async throws -> Bool {
        !(try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.pending.rawValue), attempts = attempts - 1, last_error = \(bind: String(reason.prefix(1000))),
                claimed_by = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: subtaskID) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)
            RETURNING id
            """).all().isEmpty)
    }

    struct TaskIDRow: Decodable { var task_id: UUID }
    struct IDRow: Decodable { var id: UUID }
    struct CandidateRow: Decodable { var task_id: UUID; var user_id: UUID }
    struct FrozenRow: Decodable { var is_frozen: Bool }
    struct CountsRow: Decodable { var sent_count: Int; var failed_count: Int; var total_count: Int }
    struct FinishedRow: Decodable { var user_id: UUID; var status: String; var sent_count: Int; var failed_count: Int; var total_count: Int }
}
