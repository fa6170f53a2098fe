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
    /// Longest pause of the loop when a cycle dispatched nothing; shorter when a service becomes
    /// available sooner (``QueueScheduler/idleDelaySeconds()``).
    public var idleDelay: Duration = .milliseconds(500)
    /// Least seconds between two housekeeping passes (expired leases, thaw, quota reset); the
    /// first cycle always runs one.
    public var housekeepingIntervalSeconds: Double = 1
    /// Messages one connection carries in one batch, one after another: a batch of a service
    /// is at most `max_connections × pipelineDepth` subtasks (and ``QueueScheduler/maxBatch``).
    /// A deeper pipeline spends the per-batch bookkeeping (reservation, claim, hand-over,
    /// completion: ~10 statements) over more messages; it also bounds what a crash can cost,
    /// since a batch is handed over whole: a dead instance leaves at most this many messages per
    /// connection `interrupted`.
    public var pipelineDepth: Int = 32
    /// Most batches one service sends in one cycle while it holds the reservation, one after
    /// another (see ``QueueScheduler/dispatch(_:on:)``); 1 gives one batch per service a cycle.
    public var maxBatchesPerDispatch: Int = 64
    /// Longest wall time, seconds, one service keeps sending batches in one cycle before the
    /// loop comes back to housekeeping and releases the reservation (so other instances get a
    /// turn and settings changes are read); a batch that started is always finished.
    public var dispatchBudgetSeconds: Double = 1
    /// Where lease instants (claims and service reservations) come from: the database's clock by
    /// default, so instances whose clocks disagree still agree on when a lease runs out.
    public var leaseClock: LeaseClockSource = .database

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

/// The clock a lease's instants are read from.
public enum LeaseClockSource: Sendable, Equatable {
    /// PostgreSQL's `statement_timestamp()`: one clock for every instance sharing the database.
    /// On SQLite (one process) the scheduler's clock is the database's clock, so this is
    /// ``scheduler``.
    case database
    /// The scheduler's injected `WallClock`: what tests that move time with a `ManualClock` use.
    case scheduler
}

/// Lease instants as SQL: the current instant and the instant a lease taken now runs out, each
/// either PostgreSQL's `statement_timestamp()` or a bound value of the scheduler's clock.
struct LeaseInstants: Sendable {
    /// Whether the database's clock is used (``LeaseClockSource/database`` on PostgreSQL).
    let fromDatabase: Bool
    /// The scheduler's now, used when `fromDatabase` is false.
    let now: Date
    /// How long a lease holds, seconds.
    let leaseSeconds: Double

    init(_ source: LeaseClockSource, dialect: SQLDialectKind, now: Date, leaseSeconds: Double) {
        fromDatabase = source == .database && dialect == .postgres
        self.now = now
        self.leaseSeconds = leaseSeconds
    }

    /// The current instant.
    var current: SQLQueryString { fromDatabase ? "statement_timestamp()" : "\(bind: now)" }
    /// `leaseSeconds` after the current instant.
    var expiry: SQLQueryString {
        fromDatabase ? "(statement_timestamp() + make_interval(secs => \(bind: leaseSeconds)))" : "\(bind: now.addingTimeInterval(leaseSeconds))"
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
    /// Claimed subtasks returned to `pending` because their instance died before handing them
    /// to a mailer (nothing was sent).
    public var requeued = 0
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
/// 1. housekeeping, at most every `housekeepingIntervalSeconds` — subtasks left `sending` by a
///    dead instance (lease expired) become `failed` with reason `interrupted` when they had been
///    handed to a mailer (never resent: at-most-once), else `pending` again (nothing left);
///    expired reservations are deleted; frozen services whose `frozen_until` passed thaw; each
///    service's daily quota resets when its local quota day changes (`QuotaResetSchedule`,
///    correct across DST);
/// 2. for every service that is enabled, not frozen, under quota and past `next_available_at`,
///    in parallel: take its reservation (one atomic upsert), then batch after batch (at most
///    `maxBatchesPerDispatch`, for at most `dispatchBudgetSeconds`): claim a batch of subtasks fairly in
///    one statement — users take turns, the one served longest ago first, FIFO by task and by
///    recipient within a user — sized by the service's limits (``batchLimit(_:pipelineDepth:now:)``), send
///    them at once (at most `max_connections` in flight), record the outcomes in one
///    transaction, pace the service and release the reservation.
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
    /// When housekeeping last ran (`nil`: never).
    private let lastHousekeeping = Mutex<Date?>(nil)
    /// The earliest `next_available_at` in the future seen by the last cycle (`nil`: none).
    private let nextAvailable = Mutex<Date?>(nil)
    /// Slow start per service (this instance's view): the batch size it may try next. A service
    /// starts at one message, doubles after a batch without a service failure and falls back
    /// to one after a failure, so a broken service holds one recipient at a time instead of
    /// `max_connections` of them while healthy services wait for work.
    private let windows = Mutex<[UUID: Int]>([:])
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

    /// One cycle: housekeeping when due, then one batch per dispatchable service.
    public func runOnce() async throws -> SchedulerCycleReport {
        var report = SchedulerCycleReport()
        let db = database()
        try await recordUnrecorded(on: db)
        let now = clock.now()
        let due = lastHousekeeping.withLock { last in
            guard let last, now.timeIntervalSince(last) < configuration.housekeepingIntervalSeconds, now >= last else { return true }
            return false
        }
        if due {
            try await housekeeping(db, report: &report)
            lastHousekeeping.withLock { $0 = now }
        }
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
            report.sent += outcome.sent
            report.failedAttempts += outcome.failed
            if outcome.reservedElsewhere { report.reservationConflicts += 1 }
        }
        try await noteNextAvailable(db, pacedAfter: now)
        heartbeat.beat(at: clock.now())
        return report
    }

    /// Seconds the loop waits after a cycle that dispatched nothing: until the earliest
    /// `next_available_at` of an enabled service (pacing, rate limit), at most `idleDelay`, at
    /// least 1 ms.
    public func idleDelaySeconds() -> Double {
        let longest = configuration.idleDelay.inSeconds
        guard let next = nextAvailable.withLock({ $0 }) else { return longest }
        return min(longest, max(0.001, next.timeIntervalSince(clock.now())))
    }

    /// Remembers the earliest `next_available_at` after `cycleStart` of an enabled service, for
    /// ``idleDelaySeconds()``: the services this cycle could not send through because of their
    /// pacing. One that became available while the cycle ran (a 0.05 s interval outlasted by the
    /// cycle) gives a 1 ms wait, not `idleDelay` — measuring only instants still ahead at the
    /// end of the cycle slept 0.5 s after such cycles and paced 0.05 s at ~3 messages/s.
    func noteNextAvailable(_ db: any Database, pacedAfter cycleStart: Date) async throws {
        let next = try await EmailService.query(on: db)
            .filter(\.$isEnabled == true).filter(\.$nextAvailableAt > cycleStart)
            .sort(\.$nextAvailableAt).first()?.nextAvailableAt
        nextAvailable.withLock { $0 = next }
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
        let lease = leaseInstants(on: sql, now: now)

        // A claim whose lease expired belonged to a dead instance. Never handed to a mailer:
        // nothing went out, so it is pending again and its attempt is given back.
        let requeued = try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.pending.rawValue), claimed_by = NULL, lease_expires_at = NULL,
                attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = \(bind: now)
            WHERE status = \(bind: SubTaskStatus.sending.rawValue) AND lease_expires_at < \(lease.current) AND handed_over_at IS NULL
            RETURNING id
            """).all(decoding: IDRow.self)
        report.requeued = requeued.count
        if !requeued.isEmpty {
            logger.notice("claims of a dead instance never handed to a mailer returned to pending", metadata: ["count": "\(requeued.count)"])
        }
        // At-most-once: handed to a mailer, it may have gone out; never resent.
        let interrupted = try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.failed.rawValue), last_error = 'interrupted', lease_expires_at = NULL, updated_at = \(bind: now)
            WHERE status = \(bind: SubTaskStatus.sending.rawValue) AND lease_expires_at < \(lease.current) AND handed_over_at IS NOT NULL
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

        try await reservations(on: sql).deleteExpired(at: lease)

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
            // Conditional on the day read, so two instances reset a day once. A new service
            // (no quota day yet) keeps what it counted before its first housekeeping: those
            // sends were made today.
            let sameDay: SQLQueryString = service.quotaDay.map { "quota_day = \(bind: $0)" } ?? "quota_day IS NULL"
            let usedQuota: SQLQueryString = service.quotaDay == nil ? "used_quota" : "0"
            let reset = try await sql.raw("""
                UPDATE email_services SET used_quota = \(usedQuota), quota_day = \(bind: day)
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

    /// What dispatching one service did in a cycle.
    struct DispatchResult: Sendable {
        var sent = 0
        var failed = 0
        var reservedElsewhere = false
    }

    /// Most subtasks one batch claim takes, whatever the service's limits.
    static let maxBatch = 500

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

    /// How many subtasks `service` may take in one batch at `now`: the least of its connection
    /// slots (this instance holds the service's only reservation, so every slot is free) times
    /// `pipelineDepth`, its rate-limit tokens, its remaining daily quota, one when a sending
    /// interval is set (the interval is the least gap between two sends), and ``maxBatch``.
    static func batchLimit(_ service: EmailService, pipelineDepth: Int, now: Date) -> Int {
        var limit = min(max(1, service.maxConnections) * max(1, pipelineDepth), maxBatch, max(0, service.dailyQuota - service.usedQuota))
        if service.sendingIntervalSeconds > 0 { limit = min(limit, 1) }
        if let bucket = rateBucket(of: service, now: now) { limit = min(limit, bucket.available(at: now)) }
        return limit
    }

    /// The service's rate-limit bucket at `now`, `nil` when it has no rate limit.
    static func rateBucket(of service: EmailService, now: Date) -> TokenBucket? {
        guard service.rateLimitPerSecond > 0 else { return nil }
        return TokenBucket(rate: service.rateLimitPerSecond, tokens: service.rateTokens, at: service.rateTokensAt, now: now)
    }

    /// Dispatches one batch of `service`: takes its reservation, claims up to
    /// ``batchLimit(_:pipelineDepth:now:)`` subtasks (and at most the service's slow-start window) (``claimBatch(serviceID:limit:on:now:)``), spends their
    /// rate-limit tokens, marks them handed over, sends them all at once (at most
    /// `max_connections` in flight), records the outcomes together (``recordBatch(_:service:on:now:pacedFrom:)``)
    /// and releases the reservation.
    ///
    /// One reservation holder per service: only the instance holding a service's reservation
    /// sends through it, so the service's `max_connections` holds across all instances together.
    func dispatch(_ service: EmailService, on db: any Database) async throws -> DispatchResult {
        let sql = db.sql
        let serviceID = try service.requireID()
        let reservations = reservations(on: sql)
        guard try await reservations.acquire(serviceID, at: leaseInstants(on: sql, now: clock.now())) else {
            // Another instance sends through this service now: keep none of its connections
            // open here, so its `max_connections` holds at the relay across instances.
            if let cached = cache.withLock({ $0[serviceID] }) { await cached.mailer.closeIdleConnections() }
            return DispatchResult(reservedElsewhere: true)
        }
        do {
            // Batch after batch while the reservation is ours (bounded by count and wall time, so
            // the loop comes back to housekeeping and other instances get their turn): services
            // then run independently, and one service's bookkeeping overlaps the others' sends
            // instead of every service waiting for the slowest at the end of each cycle.
            var service = service
            var result = DispatchResult()
            let deadline = ContinuousClock.now.advanced(by: .seconds(configuration.dispatchBudgetSeconds))
            var batches = 0
            while true {
                let batch = try await dispatchBatch(&service, on: db)
                result.sent += batch.sent
                result.failed += batch.failed
                batches += 1
                guard batch.mayContinue, batches < configuration.maxBatchesPerDispatch, ContinuousClock.now < deadline,
                      !Task.isShuttingDownGracefully else { break }
            }
            try await reservations.release(serviceID)
            return result
        } catch {
            try? await reservations.release(serviceID)
            throw error
        }
    }

    /// What one batch of ``dispatchBatch(_:on:)`` did.
    struct BatchResult: Sendable {
        var sent = 0
        var failed = 0
        /// Whether another batch may follow at once: a full batch went out without a service
        /// failure, and the service has no sending interval.
        var mayContinue = false
    }

    /// One batch of `service`, whose reservation this instance holds: claims up to
    /// ``batchLimit(_:pipelineDepth:now:)`` subtasks (and at most the service's slow-start
    /// window) (``claimBatch(serviceID:limit:on:now:)``), spends their rate-limit tokens, marks
    /// them handed over, sends them with at most `max_connections` in flight
    /// (``send(_:through:connections:)``) and records the outcomes together
    /// (``recordBatch(_:service:on:now:pacedFrom:)``). `service` is updated with what the batch used
    /// (quota, rate tokens), so the next batch's limit holds without reading it again.
    func dispatchBatch(_ service: inout EmailService, on db: any Database) async throws -> BatchResult {
        let sql = db.sql
        let serviceID = try service.requireID()
        var now = clock.now()
        let started = now
        let window = windows.withLock { $0[serviceID] ?? 1 }
        let limit = min(Self.batchLimit(service, pipelineDepth: configuration.pipelineDepth, now: now), window)
        guard limit > 0 else {
            // Out of rate-limit tokens: wait until the next one instead of polling.
            if let bucket = Self.rateBucket(of: service, now: now) {
                try await sql.raw("UPDATE email_services SET next_available_at = \(bind: bucket.nextToken(after: now)) WHERE id = \(bind: serviceID)").run()
            }
            return BatchResult()
        }
        let claims = try await claimBatch(serviceID: serviceID, limit: limit, on: sql, now: now)
        guard !claims.isEmpty else { return BatchResult() }
        if var bucket = Self.rateBucket(of: service, now: now) {
            bucket.take(claims.count, at: now)
            try await sql.raw("UPDATE email_services SET rate_tokens = \(bind: bucket.tokens), rate_tokens_at = \(bind: bucket.at) WHERE id = \(bind: serviceID)").run()
            service.rateTokens = bucket.tokens
            service.rateTokensAt = bucket.at
        }
        let mailer: any Mailer
        do {
            mailer = try self.mailer(for: service)
        } catch {
            // The service's settings are broken, not the recipients: put the claims back
            // untouched and freeze the service until an operator fixes it.
            try await unclaimAndFreeze(claims, service: service, reason: "\(error)", on: sql)
            return BatchResult(failed: claims.count)
        }
        let emails = claims.map { render($0, service: service) }
        let ids = try claims.map { try $0.subtask.requireID() }
        // From here on the subtasks may leave the building: the crash rule marks them
        // interrupted, never pending (``housekeeping(_:report:)``).
        try await sql.raw("""
            UPDATE sub_tasks SET handed_over_at = \(bind: now)
            WHERE id IN (\(binds: ids)) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)
            """).run()
        let connections = max(1, service.maxConnections)
        let outcomes = await withLeaseRenewal(serviceID: serviceID, subtaskIDs: ids, on: sql) {
            await Self.send(emails, through: mailer, connections: connections)
        }
        now = clock.now()
        let batch = zip(outcomes, claims).map { CompletedSend(outcome: $0, claim: $1) }
        // A failure (or a pause) of the service: back to one message a batch, and no more
        // batches this cycle.
        let failed = batch.contains { [.failure, .pause].contains(effect(of: $0.outcome, attempts: $0.claim.subtask.attempts, now: now).service) }
        windows.withLock { $0[serviceID] = failed ? 1 : min(Self.maxBatch, 2 * window) }
        do {
            try await recordBatch(batch, service: service, on: db, now: now, pacedFrom: started)
        } catch {
            let kept = service
            unrecorded.withLock { list in list += batch.map { UnrecordedOutcome(outcome: $0.outcome, claim: $0.claim, service: kept, since: now) } }
            throw error
        }
        let sent = outcomes.filter { if case .sent = $0 { true } else { false } }.count
        let withdrawn = outcomes.filter { if case .withdrawn = $0 { true } else { false } }.count
        service.usedQuota = min(service.dailyQuota, service.usedQuota + sent)
        return BatchResult(sent: sent, failed: outcomes.count - sent - withdrawn,
                           mayContinue: !failed && withdrawn == 0 && claims.count == limit && service.sendingIntervalSeconds == 0)
    }

    /// Sends `emails` through `mailer` with at most `connections` sends in flight: one worker
    /// per connection slot, each taking the next message as soon as its last one is done (so a
    /// slow message holds up one slot, not the batch). After the shutdown signal the workers take
    /// no further message: those left are `.withdrawn` (requeued untouched), so a graceful stop
    /// waits for at most one message per connection, not a whole batch.
    /// - Returns: one outcome per email, in the order of `emails`.
    static func send(_ emails: [OutgoingEmail], through mailer: any Mailer, connections: Int) async -> [MailerOutcome] {
        final class Cursor: Sendable { let next = Mutex(0) }
        let cursor = Cursor()
        return await withTaskGroup(of: [(Int, MailerOutcome)].self) { group in
            for _ in 0..<min(connections, emails.count) {
                group.addTask {
                    var done: [(Int, MailerOutcome)] = []
                    while true {
                        let index = cursor.next.withLock { i -> Int in defer { i += 1 }; return i }
                        guard index < emails.count else { return done }
                        if Task.isShuttingDownGracefully {
                            done.append((index, .withdrawn("not sent: the scheduler is stopping")))
                        } else {
                            done.append((index, await mailer.send(emails[index])))
                        }
                    }
                }
            }
            var outcomes = [MailerOutcome?](repeating: nil, count: emails.count)
            for await done in group { for (index, outcome) in done { outcomes[index] = outcome } }
            return outcomes.map { $0 ?? .transientFailure("no outcome") }
        }
    }

    /// Records the outcomes kept while the database was unreachable, oldest first, one batch per
    /// service.
    /// - Throws: the database's error; what was not recorded is kept for the next cycle.
    func recordUnrecorded(on db: any Database) async throws {
        let pending = unrecorded.withLock { p in defer { p.removeAll() }; return p }
        guard !pending.isEmpty else { return }
        var batches: [(service: EmailService, items: [UnrecordedOutcome])] = []
        for item in pending {
            if let index = batches.firstIndex(where: { $0.service.id == item.service.id }) {
                batches[index].items.append(item)
            } else {
                batches.append((item.service, [item]))
            }
        }
        for (index, batch) in batches.enumerated() {
            do {
                try await recordBatch(batch.items.map { CompletedSend(outcome: $0.outcome, claim: $0.claim) }, service: batch.service, on: db, now: clock.now())
            } catch {
                let now = clock.now()
                let left = batches[index...].flatMap(\.items)
                let keep = left.filter { now.timeIntervalSince($0.since) < Self.unrecordedKeepSeconds }
                if keep.count < left.count {
                    logger.error("send outcomes given up after waiting for the database; their subtasks will be marked interrupted",
                                 metadata: ["count": "\(left.count - keep.count)"])
                }
                unrecorded.withLock { $0.insert(contentsOf: keep, at: 0) }
                throw error
            }
        }
        logger.notice("send outcomes recorded after the database returned", metadata: ["count": "\(pending.count)"])
    }

    /// Returns claimed subtasks to `pending` without spending an attempt and freezes the service.
    func unclaimAndFreeze(_ claims: [Claim], service: EmailService, reason: String, on sql: any SQLDatabase) async throws {
        let now = clock.now()
        try await sql.raw("""
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.pending.rawValue), attempts = attempts - 1, claimed_by = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
            WHERE id IN (\(binds: try claims.map { try $0.subtask.requireID() })) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)
            """).run()
        try await sql.raw("""
            UPDATE email_services SET is_frozen = \(SQLLiteral.boolean(true)), frozen_until = \(bind: now.addingTimeInterval(configuration.freezeSeconds))
            WHERE id = \(bind: service.requireID())
            """).run()
        logger.error("email service frozen: its settings cannot make a mailer; fix them and unfreeze it", metadata: ["service": "\(service.name)", "error": "\(reason)"])
    }

    /// The `service_reservations` access of this instance, on `sql`.
    func reservations(on sql: any SQLDatabase) -> ServiceReservationStore {
        ServiceReservationStore(sql: sql, holder: configuration.instanceID)
    }

    /// This instance's lease instants on `sql` at the scheduler's `now` (``LeaseInstants``).
    func leaseInstants(on sql: any SQLDatabase, now: Date) -> LeaseInstants {
        LeaseInstants(configuration.leaseClock, dialect: SQLDialectKind(sql), now: now, leaseSeconds: configuration.leaseSeconds)
    }

    struct Claim: Sendable {
        var subtask: SubTaskRecord
        var task: TaskRecord
    }

    /// The one statement that claims up to `limit` due subtasks for `serviceID` at `now`
    /// (reference case C22), in `dialect`, returning `id, task_id` of each claimed row.
    ///
    /// Order (today's fairness, now within a batch too): each user's due subtasks are numbered
    /// FIFO — oldest task first, then by sequence — and the batch takes every user's first, then
    /// every user's second, …; users of equal turn go by who was served longest ago (never first).
    /// Only `queued`/`sending` tasks whose `scheduled_at` passed, and subtasks whose retry time
    /// passed, are due: paused and cancelled tasks never are.
    ///
    /// PostgreSQL: the locking sub-select is a `WITH … AS MATERIALIZED` query with
    /// `FOR UPDATE OF s SKIP LOCKED`, which runs exactly once whatever the plan, so one call never
    /// returns more than `limit` rows and two instances never get the same row; the outer
    /// `status = pending` re-check drops a row another claimer committed meanwhile. SQLite has one
    /// writer, so the same statement without locks is already atomic.
    ///
    /// The lease runs out `leaseSeconds` after the database's `statement_timestamp()` on
    /// PostgreSQL (``SchedulerConfiguration/leaseClock``), so instances whose clocks disagree
    /// agree on it; on SQLite, one process, the scheduler's clock is the database's.
    func claimStatement(serviceID: UUID, limit: Int, now: Date, dialect: SQLDialectKind) -> SQLQueryString {
        let pending = SubTaskStatus.pending.rawValue
        let lease = LeaseInstants(configuration.leaseClock, dialect: dialect, now: now, leaseSeconds: configuration.leaseSeconds).expiry
        let active = [TaskStatus.queued.rawValue, TaskStatus.sending.rawValue]
        let due: SQLQueryString
        if dialect == .sqlite {
            // SQLite ranks only a window of each active task's pending rows, from its first due
            // one (`heads`, one index seek per task; CROSS JOIN makes SQLite drive from the
            // tasks, then a range seek on sub_tasks_task_id_status_sequence_idx): a claim costs
            // the same at 20,000 pending as at 20 (it ranked every pending row, ~50 ms each at
            // 15,000). One writer, so nothing in the window is locked by another instance.
            due = """
                heads AS MATERIALIZED (
                    SELECT t.id AS task_id, t.user_id AS user_id, t.created_at AS created_at,
                        (SELECT MIN(f.sequence) FROM sub_tasks f WHERE f.task_id = t.id AND f.status = \(bind: pending)
                         AND (f.next_attempt_at IS NULL OR f.next_attempt_at <= \(bind: now))) AS first_seq
                    FROM tasks t WHERE t.status IN (\(binds: active)) AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))
                ), due AS (
                    SELECT s.id AS id,
                        ROW_NUMBER() OVER (PARTITION BY h.user_id ORDER BY h.created_at, h.task_id, s.sequence) AS turn,
                        CASE WHEN u.last_dispatched_at IS NULL THEN 0 ELSE 1 END AS served, u.last_dispatched_at AS served_at,
                        h.created_at AS task_created_at, h.task_id AS task_id, s.sequence AS sequence
                    FROM heads h CROSS JOIN sub_tasks s JOIN users u ON u.id = h.user_id
                    WHERE s.task_id = h.task_id AND s.status = \(bind: pending) AND s.sequence >= h.first_seq AND s.sequence < h.first_seq + \(bind: limit + 1_000)
                      AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= \(bind: now))
                )
                """
        } else {
            // PostgreSQL ranks a window of each active task's first due rows too: a LATERAL
            // index scan (sub_tasks_task_id_status_sequence_idx) per task, `limit` plus 1,000
            // rows deep, so rows that other instances' claims hold locked (still `pending` in
            // this snapshot, skipped by SKIP LOCKED below) cannot starve the batch while fewer
            // than 1,000 of one task are in flight elsewhere. Cost: per active task, not per
            // pending row.
            due = """
                due AS (
                    SELECT s.id AS id,
                        ROW_NUMBER() OVER (PARTITION BY t.user_id ORDER BY t.created_at, t.id, s.sequence) AS turn,
                        CASE WHEN u.last_dispatched_at IS NULL THEN 0 ELSE 1 END AS served, u.last_dispatched_at AS served_at,
                        t.created_at AS task_created_at, t.id AS task_id, s.sequence AS sequence
                    FROM tasks t JOIN users u ON u.id = t.user_id
                    CROSS JOIN LATERAL (
                        SELECT f.id, f.sequence FROM sub_tasks f
                        WHERE f.task_id = t.id AND f.status = \(bind: pending) AND (f.next_attempt_at IS NULL OR f.next_attempt_at <= \(bind: now))
                        ORDER BY f.sequence LIMIT \(bind: limit + 1_000)
                    ) s
                    WHERE t.status IN (\(binds: active)) AND (t.scheduled_at IS NULL OR t.scheduled_at <= \(bind: now))
                )
                """
        }
        return """
            WITH \(due), picked AS \(unsafeRaw: dialect.materialized) (
                SELECT s.id FROM sub_tasks s JOIN due ON due.id = s.id
                WHERE s.status = \(bind: pending)
                ORDER BY due.turn, due.served, due.served_at, due.task_created_at, due.task_id, due.sequence
                LIMIT \(bind: limit) \(unsafeRaw: dialect.forUpdateSkipLocked(of: "s"))
            )
            UPDATE sub_tasks SET status = \(bind: SubTaskStatus.sending.rawValue), service_id = \(bind: serviceID), claimed_by = \(bind: configuration.instanceID),
                lease_expires_at = \(lease), handed_over_at = NULL, attempts = attempts + 1, updated_at = \(bind: now)
            WHERE id IN (SELECT id FROM picked) AND status = \(bind: pending)
            RETURNING id, task_id
            """
    }

    /// Claims up to `limit` due subtasks for `serviceID` with ``claimStatement(serviceID:limit:now:)``,
    /// then marks their users served at `now` and their queued tasks `sending`.
    /// - Returns: the claims, by task and sequence; empty when nothing is due.
    func claimBatch(serviceID: UUID, limit: Int, on sql: any SQLDatabase, now: Date) async throws -> [Claim] {
        guard limit > 0 else { return [] }
        let dialect = SQLDialectKind(sql)
        let claimed = try await sql.raw(claimStatement(serviceID: serviceID, limit: limit, now: now, dialect: dialect)).all(decoding: TaskIDAndIDRow.self)
        guard !claimed.isEmpty else { return [] }
        let taskIDs = Array(Set(claimed.map(\.task_id)))
        try await sql.raw("""
            UPDATE users SET last_dispatched_at = \(bind: now) WHERE id IN (SELECT user_id FROM tasks WHERE id IN (\(binds: taskIDs)))
            """).run()
        try await sql.raw("""
            UPDATE tasks SET status = \(bind: TaskStatus.sending.rawValue), updated_at = \(bind: now)
            WHERE id IN (\(binds: taskIDs)) AND status = \(bind: TaskStatus.queued.rawValue)
            """).run()
        try await reservations(on: sql).noteSubtask(claimed[0].id, of: serviceID)
        let db = sql as! any Database
        let subtasks = try await SubTaskRecord.query(on: db).filter(\.$id ~~ claimed.map(\.id)).all()
        let tasks = Dictionary(uniqueKeysWithValues: try await TaskRecord.query(on: db).filter(\.$id ~~ taskIDs).all().map { (try $0.requireID(), $0) })
        return subtasks
            .compactMap { subtask in tasks[subtask.$task.id].map { Claim(subtask: subtask, task: $0) } }
            .sorted { ($0.task.createdAt ?? .distantPast, $0.subtask.sequence) < ($1.task.createdAt ?? .distantPast, $1.subtask.sequence) }
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

    /// Runs `send`, renewing the reservation and the claims of `subtaskIDs` every third of the
    /// lease meanwhile.
    func withLeaseRenewal<Result: Sendable>(serviceID: UUID, subtaskIDs: [UUID], on sql: any SQLDatabase, _ send: @Sendable () async -> Result) async -> Result {
        let interval = configuration.leaseSeconds / 3
        let renewal = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(interval))
                let lease = leaseInstants(on: sql, now: clock.now())
                try await reservations(on: sql).renew(serviceID, at: lease)
                try await sql.raw("""
                    UPDATE sub_tasks SET lease_expires_at = \(lease.expiry)
                    WHERE id IN (\(binds: subtaskIDs)) AND claimed_by = \(bind: configuration.instanceID) AND status = \(bind: SubTaskStatus.sending.rawValue)
                    """).run()
            }
        }
        let result = await send()
        renewal.cancel()
        return result
    }

    /// One send's outcome and the claim it was for: an entry of a completion batch.
    struct CompletedSend: Sendable {
        var outcome: MailerOutcome
        var claim: Claim
    }

    /// What one outcome does to its subtask and its service. ``effect(of:attempts:now:)`` is the
    /// one place each `MailerOutcome` case is decided; a new case slots in there.
    struct OutcomeEffect: Sendable, Equatable {
        /// What the outcome says about the service's health (its failure streak and freeze).
        enum ServiceEffect: Sendable, Equatable {
            /// The service works: the streak resets.
            case success
            /// The service failed: the streak grows and may freeze it.
            case failure
            /// Nothing about the service (e.g. a recipient's message cannot be built).
            case neutral
            /// The provider refused the service's own settings (SMTP 530/535, HTTP 401): the
            /// service is frozen at once, whatever its streak (reference case C09).
            case pause
        }
        /// The subtask's new status: `sent`, `failed` (final) or `pending` (retried at `retryAt`).
        var status: SubTaskRecord.Status
        var lastError: String? = nil
        var messageID: String? = nil
        var retryAt: Date? = nil
        var service: ServiceEffect
        /// Whether the attempt counted at claim time stays spent (`false` gives it back).
        var attemptSpent = true
    }

    /// The effect of `outcome` for a subtask on its `attempts`-th attempt, at `now`.
    func effect(of outcome: MailerOutcome, attempts: Int, now: Date) -> OutcomeEffect {
        switch outcome {
        case .sent(let messageID):
            return OutcomeEffect(status: .sent, messageID: messageID, service: .success)
        case .invalidMessage(let reason):
            return OutcomeEffect(status: .failed, lastError: String(reason.prefix(1000)), service: .neutral)
        case .permanentFailure(let reason):
            return OutcomeEffect(status: .failed, lastError: String(reason.prefix(1000)), service: .failure)
        case .hardBounce(let reason):
            // The mailbox does not exist: the recipient's fault, not the service's health.
            return OutcomeEffect(status: .failed, lastError: String(reason.prefix(1000)), service: .neutral)
        case .transientFailure(let reason), .retryLater(let reason, _):
            var hint = 0.0
            if case .retryLater(_, let seconds) = outcome { hint = seconds }
            let giveUp = attempts >= configuration.maxAttempts
            let delay = max(configuration.retryDelay(afterAttempt: attempts), hint)
            return OutcomeEffect(status: giveUp ? .failed : .pending, lastError: String(reason.prefix(1000)),
                                 retryAt: giveUp ? nil : now.addingTimeInterval(delay), service: .failure)
        case .sessionFailure(let reason):
            // The connection, not the recipient (a 421): again at once, on a fresh connection
            // after the service's pause; the attempt is given back.
            return OutcomeEffect(status: .pending, lastError: String(reason.prefix(1000)), service: .failure, attemptSpent: false)
        case .serviceConfigurationFailure(let reason):
            return OutcomeEffect(status: .pending, lastError: String(reason.prefix(1000)), service: .pause, attemptSpent: false)
        case .withdrawn:
            // Never reached a connection: as if it had not been claimed.
            return OutcomeEffect(status: .pending, service: .neutral, attemptSpent: false)
        }
    }

    /// What applying a completion batch changed.
    struct BatchApplied: Sendable, Equatable {
        /// Subtask rows the guarded updates changed.
        var changedRows = 0
        /// Entries whose subtask came earlier in the same batch (ignored).
        var duplicates = 0
        /// Entries whose subtask this instance no longer holds (recorded already, or its lease
        /// was lost and another instance took it): nothing changed.
        var stale = 0
        /// Tasks whose first message this batch sent.
        var firstSent: Set<UUID> = []
        /// Tasks with a subtask that reached a final state (or whose entries were stale, so that
        /// the follow-ups of an earlier, committed attempt still run).
        var settledTasks: Set<UUID> = []
    }

    /// Records a batch of outcomes of `service` in one transaction (``applyBatch(_:service:on:now:)``),
    /// then calls the monitoring hooks: first sent, progress and completion of each task touched.
    ///
    /// Safe to call again with the same batch after a failure, even one whose commit went
    /// through (``recordUnrecorded(on:)``): only rows still claimed by this instance change, so
    /// nothing is counted twice (reference case C24).
    @discardableResult
    func recordBatch(_ sends: [CompletedSend], service: EmailService, on db: any Database, now: Date, pacedFrom: Date? = nil) async throws -> BatchApplied {
        let applied = try await db.transaction { tx in
            try await self.applyBatch(sends, service: service, on: tx.sql, now: now, pacedFrom: pacedFrom)
        }
        let sql = db.sql
        var tasks: [UUID: TaskRecord] = [:]
        for send in sends { if let id = send.claim.task.id { tasks[id] = send.claim.task } }
        for taskID in applied.firstSent.sorted(by: { $0.uuidString < $1.uuidString }) {
            guard let task = tasks[taskID] else { continue }
            let wait = TaskFigures.waitSeconds(createdAt: task.createdAt, scheduledAt: task.scheduledAt, firstSentAt: now)
            await hooks.firstSent(taskID: taskID, userID: task.$user.id, waitSeconds: wait, totalSubtasks: task.totalCount, at: now)
        }
        for taskID in applied.settledTasks.sorted(by: { $0.uuidString < $1.uuidString }) {
            guard let task = tasks[taskID] else { continue }
            if let counts = try await sql.raw("SELECT sent_count, failed_count, total_count FROM tasks WHERE id = \(bind: taskID)").first(decoding: CountsRow.self) {
                await hooks.progress(taskID: taskID, userID: task.$user.id, sent: counts.sent_count, failed: counts.failed_count, total: counts.total_count, at: now)
            }
            try await finishIfDone(taskID: taskID, on: sql, now: now)
        }
        return applied
    }

    /// The statements of ``recordBatch(_:service:on:now:pacedFrom:)``, on one transaction's `sql`.
    ///
    /// 1. Entries are deduplicated by subtask (the first wins).
    /// 2. Each subtask row changes only when it is still `sending` and claimed by this instance
    ///    (`UPDATE … RETURNING`); a `sent` outcome also moves a row that housekeeping marked
    ///    `interrupted` meanwhile (this instance stalled past its lease) from failed to sent.
    /// 3. Task counts, quota and the service's pacing and failure streak change by exactly the
    ///    rows step 2 changed, summed per task and per service before one `UPDATE` per key.
    /// - Parameter pacedFrom: the instant the batch was claimed: the service's next send is due
    ///   `sending_interval_seconds` after it (the least gap between the starts of two sends, so an
    ///   interval of 0.05 s paces 20/s whatever a send and its bookkeeping take); `nil` paces from
    ///   `now`.
    func applyBatch(_ sends: [CompletedSend], service: EmailService, on sql: any SQLDatabase, now: Date, pacedFrom: Date? = nil) async throws -> BatchApplied {
        let serviceID = try service.requireID()
        let me = configuration.instanceID
        var result = BatchApplied()
        var seen: Set<UUID> = []
        var counts: [UUID: (sent: Int, failed: Int)] = [:]
        var sentCount = 0
        // The failure streak over the changed rows in batch order: reset by a success.
        var streakReset = false
        var failuresAfterReset = 0
        // Set by an outcome that pauses the service (its reason).
        var pauseReason: String?

        // Step 1: deduplicate, and decide each entry's effect.
        struct Entry { var send: CompletedSend; var subtaskID: UUID; var taskID: UUID; var effect: OutcomeEffect }
        var entries: [Entry] = []
        entries.reserveCapacity(sends.count)
        for send in sends {
            let subtaskID = try send.claim.subtask.requireID()
            guard seen.insert(subtaskID).inserted else { result.duplicates += 1; continue }
            entries.append(Entry(send: send, subtaskID: subtaskID, taskID: try send.claim.task.requireID(),
                                 effect: effect(of: send.outcome, attempts: send.claim.subtask.attempts, now: now)))
        }

        // Step 2: the guarded updates. Every `sent` row in one statement per chunk (the common
        // case: a batch of hundreds costs one round trip, not hundreds); the rest one by one.
        var changed: Set<UUID> = []
        var recoveredFromInterrupted: Set<UUID> = []
        let sent = entries.filter { $0.effect.status == .sent }
        for chunk in stride(from: 0, to: sent.count, by: Self.completionChunk).map({ sent[$0..<min($0 + Self.completionChunk, sent.count)] }) {
            let rows: [SQLQueryString] = chunk.map { "(\(bind: $0.subtaskID), \(bind: $0.effect.messageID))" }
            let updated = try await sql.raw("""
                WITH v(sid, mid) AS (VALUES \(SQLList(rows)))
                UPDATE sub_tasks SET status = \(bind: SubTaskStatus.sent.rawValue), sent_at = \(bind: now), provider_message_id = v.mid,
                    last_error = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
                FROM v WHERE sub_tasks.id = v.sid AND sub_tasks.claimed_by = \(bind: me) AND sub_tasks.status = \(bind: SubTaskStatus.sending.rawValue)
                RETURNING id
                """).all(decoding: IDRow.self)
            changed.formUnion(updated.map(\.id))
        }
        for entry in sent where !changed.contains(entry.subtaskID) {
            // Housekeeping marked it interrupted meanwhile (this instance stalled past its lease):
            // it did go out, so it moves from failed to sent.
            let recovered = try await sql.raw("""
                UPDATE sub_tasks SET status = \(bind: SubTaskStatus.sent.rawValue), sent_at = \(bind: now), provider_message_id = \(bind: entry.effect.messageID),
                    last_error = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
                WHERE id = \(bind: entry.subtaskID) AND claimed_by = \(bind: me) AND status = \(bind: SubTaskStatus.failed.rawValue) AND last_error = 'interrupted'
                RETURNING id
                """).all()
            if !recovered.isEmpty { changed.insert(entry.subtaskID); recoveredFromInterrupted.insert(entry.subtaskID) }
        }
        for entry in entries where entry.effect.status != .sent {
            let e = entry.effect
            let updated = try await sql.raw("""
                UPDATE sub_tasks SET status = \(bind: e.status.rawValue), last_error = \(bind: e.lastError), next_attempt_at = \(bind: e.retryAt),
                    attempts = attempts - \(bind: e.attemptSpent ? 0 : 1), claimed_by = NULL, lease_expires_at = NULL, updated_at = \(bind: now)
                WHERE id = \(bind: entry.subtaskID) AND claimed_by = \(bind: me) AND status = \(bind: SubTaskStatus.sending.rawValue)
                RETURNING id
                """).all()
            if !updated.isEmpty { changed.insert(entry.subtaskID) }
        }

        // Step 3's sums, over the changed rows in batch order (the streak depends on it).
        for entry in entries {
            let subtaskID = entry.subtaskID, taskID = entry.taskID, e = entry.effect
            guard changed.contains(subtaskID) else {
                result.stale += 1
                result.settledTasks.insert(taskID)
                continue
            }
            result.changedRows += 1
            switch e.status {
            case .sent:
                counts[taskID, default: (0, 0)].sent += 1
                if recoveredFromInterrupted.contains(subtaskID) { counts[taskID, default: (0, 0)].failed -= 1 }
                sentCount += 1
                result.settledTasks.insert(taskID)
            case .failed:
                counts[taskID, default: (0, 0)].failed += 1
                result.settledTasks.insert(taskID)
            default:
                break
            }
            switch e.service {
            case .success: streakReset = true; failuresAfterReset = 0
            case .failure: failuresAfterReset += 1
            case .pause: failuresAfterReset += 1; pauseReason = e.lastError ?? ""
            case .neutral: break
            }
            if case .withdrawn = entry.send.outcome {
                logger.debug("send withdrawn: no connection took it before the scheduler stopped; pending again", metadata: [
                    "service": "\(service.name)", "subtask_id": "\(subtaskID)",
                ])
            } else if e.status != .sent {
                logger.notice("send failed", metadata: [
                    "service": "\(service.name)", "subtask_id": "\(subtaskID)", "attempt": "\(entry.send.claim.subtask.attempts)",
                    "final": "\(e.status == .failed)", "reason": "\(e.lastError ?? "")",
                ])
            }
        }
        guard result.changedRows > 0 else { return result }

        for (taskID, delta) in counts.sorted(by: { $0.key.uuidString < $1.key.uuidString }) {
            if delta.sent > 0 {
                let first = try await sql.raw("UPDATE tasks SET started_at = \(bind: now) WHERE id = \(bind: taskID) AND started_at IS NULL RETURNING id").all()
                if !first.isEmpty { result.firstSent.insert(taskID) }
            }
            try await sql.raw("""
                UPDATE tasks SET sent_count = sent_count + \(bind: delta.sent), failed_count = failed_count + \(bind: delta.failed), updated_at = \(bind: now)
                WHERE id = \(bind: taskID)
                """).run()
        }

        let streak: SQLQueryString = "CASE WHEN \(bind: streakReset ? 1 : 0) = 1 THEN \(bind: failuresAfterReset) ELSE consecutive_failures + \(bind: failuresAfterReset) END"
        let freezes: SQLQueryString = "(\(bind: pauseReason == nil ? 0 : 1) = 1 OR (\(bind: failuresAfterReset) > 0 AND \(streak) >= \(bind: configuration.freezeAfterFailures)))"
        let freezeUntil = now.addingTimeInterval(configuration.freezeSeconds)
        let frozen = try await sql.raw("""
            UPDATE email_services SET
                used_quota = CASE WHEN used_quota + \(bind: sentCount) <= daily_quota THEN used_quota + \(bind: sentCount) ELSE daily_quota END,
                next_available_at = \(bind: (pacedFrom ?? now).addingTimeInterval(service.sendingIntervalSeconds)),
                consecutive_failures = \(streak),
                is_frozen = CASE WHEN \(freezes) THEN \(SQLLiteral.boolean(true)) ELSE is_frozen END,
                frozen_until = CASE WHEN \(freezes) THEN \(bind: freezeUntil) ELSE frozen_until END
            WHERE id = \(bind: serviceID)
            RETURNING is_frozen
            """).all(decoding: FrozenRow.self)
        if let pauseReason {
            logger.error("email service paused: the provider refused its settings; fix them and unfreeze it",
                         metadata: ["service": "\(service.name)", "until": "\(freezeUntil)", "reason": "\(pauseReason)"])
        } else if frozen.first?.is_frozen == true && !service.isFrozen {
            logger.warning("service frozen after consecutive failures", metadata: ["service": "\(service.name)", "until": "\(freezeUntil)"])
        }
        return result
    }

    /// Most `sent` rows one completion statement updates (two bound values each).
    static let completionChunk = 500

    struct TaskIDRow: Decodable { var task_id: UUID }
    struct TaskIDAndIDRow: Decodable { var id: UUID; var task_id: UUID }
    struct IDRow: Decodable { var id: UUID }
    struct FrozenRow: Decodable { var is_frozen: Bool }
    struct CountsRow: Decodable { var sent_count: Int; var failed_count: Int; var total_count: Int }
    struct FinishedRow: Decodable { var user_id: UUID; var status: String; var sent_count: Int; var failed_count: Int; var total_count: Int }
}
