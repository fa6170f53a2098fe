@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import Vapor
import VaporTesting

/// Issue #14: per-service limits, batched claims (C22) and completions (C24), the crash rule.
@Suite("Batched scheduler")
struct BatchSchedulerTests {
    /// The five planner switches of C22 that make PostgreSQL re-run an `IN (…)` sub-select for
    /// every outer row.
    static let forcedPlanner = ["enable_hashagg", "enable_material", "enable_hashjoin", "enable_mergejoin", "enable_sort"]

    struct C22Run: Sendable, CustomTestStringConvertible {
        var db: TestDatabase
        var forcedPlanner: Bool
        var testDescription: String { "\(db.rawValue)\(forcedPlanner ? ", forced planner" : "")" }
    }

    static var c22Runs: [C22Run] {
        TestDatabase.enabled.flatMap { db in db == .postgres ? [C22Run(db: db, forcedPlanner: false), C22Run(db: db, forcedPlanner: true)] : [C22Run(db: db, forcedPlanner: false)] }
    }

    @Test("C22: a batch claim returns at most N rows and never one row to two instances", arguments: c22Runs)
    func c22BatchClaim(_ run: C22Run) async throws {
        let clock = ManualClock()
        try await withApp(run.db, clock: clock, scheduler: .init(instanceID: "instance-a")) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "smtp-a")
            let taskID = try await Fixtures.task(app, user: user, recipients: 10, name: "T-20260309-0007")
            let a = app.edm.scheduler
            let b = QueueScheduler(database: { app.db }, clock: clock, configuration: .manualClock(instanceID: "instance-b"),
                                   mailers: ScriptedMailers(clock: clock), hooks: DisabledTaskMonitorHooks())
            // Subtask ids 1–10 of the case are the positions by sequence.
            let ordered = try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == taskID).sort(\.$sequence).all()
            let position = Dictionary(uniqueKeysWithValues: try ordered.enumerated().map { (try $1.requireID(), $0 + 1) })

            @Sendable func claim(_ scheduler: QueueScheduler, on sql: any SQLDatabase) async throws -> Set<Int> {
                if run.forcedPlanner {
                    for name in Self.forcedPlanner { try await sql.raw("SET LOCAL \(unsafeRaw: name) = off").run() }
                }
                let statement = scheduler.claimStatement(serviceID: serviceID, limit: 3, now: clock.now(), dialect: SQLDialectKind(sql))
                let rows = try await sql.raw(statement).all(decoding: QueueScheduler.TaskIDAndIDRow.self)
                #expect(rows.count <= 3)
                return Set(rows.compactMap { position[$0.id] })
            }

            var steps: [Set<Int>] = []
            if run.db == .postgres {
                // Statistics as autovacuum would leave them: with none the planner guesses one row
                // per table and picks plans under which even the faulty shapes of C22 pass.
                try await app.sql.raw("ANALYZE").run()
                // Two connections: A's transaction stays open while B claims.
                let loops = Array(app.eventLoopGroup.makeIterator())
                try #require(loops.count >= 2, "two event loops give two connection pools")
                let connectionA = try #require(app.databases.database(logger: app.logger, on: loops[0]))
                let connectionB = try #require(app.databases.database(logger: app.logger, on: loops[1]))
                let (first, second) = try await connectionA.transaction { txA in
                    let first = try await claim(a, on: txA.sql)
                    let second = try await connectionB.transaction { txB in try await claim(b, on: txB.sql) }
                    return (first, second)
                }
                steps += [first, second]
                for (scheduler, connection) in [(a, connectionA), (b, connectionB), (a, connectionA)] {
                    steps.append(try await connection.transaction { tx in try await claim(scheduler, on: tx.sql) })
                }
            } else {
                // SQLite: one writer, so each claim is atomic on its own.
                for scheduler in [a, b, a, b, a] { steps.append(try await claim(scheduler, on: app.sql)) }
            }
            #expect(steps == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10], []])
            if run.db == .postgres {
                // Whatever the plan, the locking sub-select is a materialised CTE, run once.
                struct PlanLine: Decodable { var plan: String }
                let plan = try await app.db.transaction { tx in
                    if run.forcedPlanner {
                        for name in Self.forcedPlanner { try await tx.sql.raw("SET LOCAL \(unsafeRaw: name) = off").run() }
                    }
                    let statement = a.claimStatement(serviceID: serviceID, limit: 3, now: clock.now(), dialect: .postgres)
                    return try await tx.sql.raw("EXPLAIN \(statement)").all().map { try $0.decode(column: "QUERY PLAN", as: String.self) }
                }.joined(separator: "\n")
                #expect(plan.contains("CTE picked"), "\(plan)")
                #expect(plan.contains("CTE Scan on picked"), "\(plan)")
                #expect(plan.contains("LockRows"), "\(plan)")
            }
            let after = try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == taskID).all()
            let claimedBy = Dictionary(uniqueKeysWithValues: try after.map { (position[try $0.requireID()]!, $0.claimedBy ?? "") })
            #expect(claimedBy == [1: "instance-a", 2: "instance-a", 3: "instance-a", 7: "instance-a", 8: "instance-a", 9: "instance-a",
                                  4: "instance-b", 5: "instance-b", 6: "instance-b", 10: "instance-b"])
            #expect(after.allSatisfy { $0.status == .sending && $0.attempts == 1 })
        }
    }

    @Test("a batch takes users in turns: each user's first, then each user's second; FIFO by task within a user", arguments: TestDatabase.enabled)
    func batchTakesTurns(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock) { app, _ in
            let ann = try await Fixtures.user(app, name: "Ann")
            let bob = try await Fixtures.user(app, name: "Bob")
            let serviceID = try await Fixtures.service(app, name: "only")
            _ = try await Fixtures.task(app, user: ann, recipients: 3, name: "ann-1", prefix: "ann")
            clock.advance(by: 1)
            _ = try await Fixtures.task(app, user: ann, recipients: 1, name: "ann-2", prefix: "ann2-")
            clock.advance(by: 1)
            _ = try await Fixtures.task(app, user: bob, recipients: 2, name: "bob-1", prefix: "bob")
            let paused = try await Fixtures.task(app, user: bob, recipients: 1, name: "bob-paused", prefix: "paused")
            _ = try await TaskService.control(.pause, taskID: paused, on: app.db, clock: clock)
            let scheduler = app.edm.scheduler
            let first = try await scheduler.claimBatch(serviceID: serviceID, limit: 4, on: app.sql, now: clock.now())
            #expect(Set(first.map(\.subtask.recipientEmail)) == ["ann0@example.com", "bob0@example.com", "ann1@example.com", "bob1@example.com"])
            clock.advance(by: 1)
            let second = try await scheduler.claimBatch(serviceID: serviceID, limit: 4, on: app.sql, now: clock.now())
            #expect(second.map(\.subtask.recipientEmail) == ["ann2@example.com", "ann2-0@example.com"])
            #expect(try await scheduler.claimBatch(serviceID: serviceID, limit: 4, on: app.sql, now: clock.now()).isEmpty)
        }
    }

    @Test("a service has at most max_connections sends in flight; batches grow from one (slow start) and fall back to one after a failure",
          arguments: TestDatabase.enabled)
    func connectionsPerCycle(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        // Call 7 of the service fails temporarily.
        let mailers = ScriptedMailers(clock: clock) { _, call in call == 7 ? .transientFailure("421 busy") : .sent(messageID: nil) }
        try await withApp(db, clock: clock, mailers: mailers, scheduler: .oneMessagePerConnection) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "three", maxConnections: 3)
            _ = try await Fixtures.task(app, user: user, recipients: 12)
            var perCycle: [Int] = []
            for _ in 0..<7 {
                let report = try await app.edm.scheduler.runOnce()
                perCycle.append(report.dispatched)
            }
            // 1, 2, then max_connections; the batch with the failure (calls 7–9) falls back to 1.
            #expect(perCycle == [1, 2, 3, 3, 1, 2, 0])
            #expect(mailers.overlaps.withLock { $0 } == 0)
            #expect((mailers.mostInFlight.withLock { $0["three"] } ?? 0) <= 3)
        }
    }

    @Test("a batch is max_connections × pipeline depth, sent with at most max_connections in flight, every outcome recorded in one completion",
          arguments: TestDatabase.enabled)
    func pipelinedBatch(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        // Call 5 bounces (the recipient's fault: the window keeps growing); the rest go out with provider message ids.
        let mailers = ScriptedMailers(clock: clock) { _, call in call == 5 ? .hardBounce("550 5.1.1 no such user") : .sent(messageID: "m\(call)") }
        var config = SchedulerConfiguration.testInstance
        config.pipelineDepth = 4
        try await withApp(db, clock: clock, mailers: mailers, scheduler: config) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "three", maxConnections: 3)
            let taskID = try await Fixtures.task(app, user: user, recipients: 40)
            var perCycle: [Int] = []
            for _ in 0..<6 { perCycle.append(try await app.edm.scheduler.runOnce().dispatched) }
            // Slow start 1, 2, 4, 8, then 3 × 4 = 12 a batch: 1 + 2 + 4 + 8 + 12 + 12 = 39.
            #expect(perCycle == [1, 2, 4, 8, 12, 12])
            #expect(mailers.overlaps.withLock { $0 } == 0)
            #expect((1...3).contains(mailers.mostInFlight.withLock { $0["three"] } ?? 0))
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.sentCount == 38)
            #expect(task.failedCount == 1)
            let sent = try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == taskID).filter(\.$status == .sent).all()
            #expect(sent.count == 38)
            #expect(Set(sent.compactMap(\.providerMessageID)).count == 38)
            #expect(sent.allSatisfy { $0.claimedBy == "test-instance" && $0.leaseExpiresAt == nil && $0.sentAt != nil })
        }
    }

    @Test("a service sends batch after batch in one cycle while it holds the reservation, stopping at its quota; at most max_connections in flight",
          arguments: TestDatabase.enabled)
    func batchesInOneCycle(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        var config = SchedulerConfiguration.testInstance
        config.pipelineDepth = 2
        config.maxBatchesPerDispatch = 20
        config.dispatchBudgetSeconds = 3600
        try await withApp(db, clock: clock, mailers: mailers, scheduler: config) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "two", quota: 30, maxConnections: 2)
            let taskID = try await Fixtures.task(app, user: user, recipients: 40)
            // Batches of 1, 2, 4, 4, … (2 connections × depth 2) until the quota of 30 is spent.
            let first = try await app.edm.scheduler.runOnce()
            #expect(first.sent == 30)
            #expect(mailers.overlaps.withLock { $0 } == 0)
            #expect(try await EmailService.find(serviceID, on: app.db)?.usedQuota == 30)
            #expect(try await TaskRecord.find(taskID, on: app.db)?.sentCount == 30)
            #expect(try await app.edm.scheduler.runOnce().sent == 0)
            // The reservation was given back at the end of the cycle.
            #expect(try await app.sql.raw("SELECT count(*) AS n FROM service_reservations").first(decoding: Count.self)?.n == 0)
        }
    }

    /// Hooks that move the clock on each progress report: a cycle that takes `seconds` after
    /// its sends were recorded (a slow database, a busy machine).
    struct SlowCycleHooks: TaskMonitorHooks {
        let clock: ManualClock
        let seconds: Double
        func taskCreated(taskID: UUID, userID: UUID, totalSubtasks: Int, at: Date) async {}
        func firstSent(taskID: UUID, userID: UUID, waitSeconds: Double, totalSubtasks: Int, at: Date) async {}
        func progress(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async { clock.advance(by: seconds) }
        func completed(taskID: UUID, userID: UUID, sent: Int, failed: Int, total: Int, at: Date) async {}
        func failed(taskID: UUID, userID: UUID, reason: String, at: Date) async {}
    }

    @Test("a paced service that became available while the cycle ran is served after 1 ms, not after the idle delay (0.05 s interval, cycle of 0.2 s)",
          arguments: TestDatabase.enabled)
    func pacingOutlastedByTheCycle(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers, hooks: SlowCycleHooks(clock: clock, seconds: 0.2)) { app, _ in
            let user = try await Fixtures.user(app)
            try await Fixtures.service(app, name: "paced", interval: 0.05)
            _ = try await Fixtures.task(app, user: user, recipients: 3)
            let scheduler = app.edm.scheduler
            #expect(try await scheduler.runOnce().sent == 1)
            // next_available_at (start + 0.05 s) passed while the cycle ran: go again at once.
            #expect(scheduler.idleDelaySeconds() == 0.001)
            #expect(try await scheduler.runOnce().sent == 1)
            #expect(scheduler.idleDelaySeconds() == 0.001)
        }
    }

    @Test("a sending interval is the least gap between the starts of two sends: a send that takes 0.02 s does not stretch a 0.05 s interval",
          arguments: TestDatabase.enabled)
    func intervalFromSendStart(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock) { _, _ in clock.advance(by: 0.02); return .sent(messageID: nil) }
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "paced", interval: 0.05)
            _ = try await Fixtures.task(app, user: user, recipients: 2)
            let started = clock.now()
            #expect(try await app.edm.scheduler.runOnce().sent == 1)
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            let next = try #require(service.nextAvailableAt)
            #expect(abs(next.timeIntervalSince(started) - 0.05) < 1e-6, "next send due \(next.timeIntervalSince(started)) s after the first started")
        }
    }

    @Test("a new service keeps the sends it counted before its first housekeeping (its quota day is set, its quota not reset)",
          arguments: TestDatabase.enabled)
    func newServiceKeepsItsCount(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        try await withApp(db, clock: clock, mailers: ScriptedMailers(clock: clock)) { app, _ in
            let scheduler = app.edm.scheduler
            _ = try await scheduler.runOnce()  // the first housekeeping, before the service exists
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "new")
            _ = try await Fixtures.task(app, user: user, recipients: 3)
            #expect(try await scheduler.runOnce().sent == 1)  // within the housekeeping interval
            #expect(try await EmailService.find(serviceID, on: app.db)?.quotaDay == nil)
            clock.advance(by: 2)
            #expect(try await scheduler.runOnce().sent == 2)  // housekeeping first, then the batch
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.quotaDay != nil)
            #expect(service.usedQuota == 3)
        }
    }

    @Test("the rate limit is a token bucket: a burst of one second's worth, then one message per 1/rate seconds; the idle loop waits for the next token",
          arguments: TestDatabase.enabled)
    func rateLimit(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "limited", maxConnections: 10, rateLimit: 4)
            _ = try await Fixtures.task(app, user: user, recipients: 20)
            let scheduler = app.edm.scheduler
            // Slow start 1, 2, 4 — but the bucket holds 4 tokens: 1 + 2 + 1.
            #expect(try await scheduler.runOnce().sent == 1)
            #expect(try await scheduler.runOnce().sent == 2)
            #expect(try await scheduler.runOnce().sent == 1)
            #expect(try await scheduler.runOnce().sent == 0)
            let service = try #require(try await EmailService.find(serviceID, on: app.db))
            #expect(service.nextAvailableAt == clock.now().addingTimeInterval(0.25))
            #expect(abs(scheduler.idleDelaySeconds() - 0.25) < 1e-6)
            clock.advance(by: 0.25)
            #expect(try await scheduler.runOnce().sent == 1)
            clock.advance(by: 10)
            #expect(try await scheduler.runOnce().sent == 4)
            #expect(mailers.all.count == 9)
        }
    }

    @Test("crash rule: an expired claim never handed to a mailer is pending again; one handed over is failed as interrupted",
          arguments: TestDatabase.enabled)
    func crashRule(_ db: TestDatabase) async throws {
        let clock = ManualClock()
        let mailers = ScriptedMailers(clock: clock)
        try await withApp(db, clock: clock, mailers: mailers) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "a")
            let taskID = try await Fixtures.task(app, user: user, recipients: 2)
            // A dead instance claimed both and handed only the first to its mailer.
            let dead = QueueScheduler(database: { app.db }, clock: clock, configuration: .manualClock(instanceID: "dead"),
                                      mailers: mailers, hooks: DisabledTaskMonitorHooks())
            let claims = try await dead.claimBatch(serviceID: serviceID, limit: 2, on: app.sql, now: clock.now())
            try #require(claims.count == 2)
            let handed = try claims[0].subtask.requireID(), notHanded = try claims[1].subtask.requireID()
            try await app.sql.raw("UPDATE sub_tasks SET handed_over_at = \(bind: clock.now()) WHERE id = \(bind: handed)").run()

            clock.advance(by: 29)
            let early = try await Fixtures.drain(app)
            #expect(early.requeued == 0 && early.interrupted == 0 && mailers.all.isEmpty)
            clock.advance(by: 2)
            let report = try await Fixtures.drain(app)
            #expect(report.requeued == 1)
            #expect(report.interrupted == 1)
            #expect(mailers.all.map(\.to) == [claims[1].subtask.recipientEmail])
            let first = try #require(try await SubTaskRecord.find(handed, on: app.db))
            #expect(first.status == .failed)
            #expect(first.lastError == "interrupted")
            let second = try #require(try await SubTaskRecord.find(notHanded, on: app.db))
            #expect(second.status == .sent)
            #expect(second.attempts == 1)  // the dead instance's claim gave its attempt back
            let task = try #require(try await TaskRecord.find(taskID, on: app.db))
            #expect(task.sentCount == 1)
            #expect(task.failedCount == 1)
            #expect(task.status == .completed)
        }
    }

    @Test("C24: a completion batch is deduplicated, guarded by the claim, counted by the rows it changed; applying it again changes nothing",
          arguments: TestDatabase.enabled)
    func c24CompletionBatch(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: try #require(APIJSON.parse("2026-03-09T10:07:05Z")))
        let hooks = RecordingHooks()
        try await withApp(db, clock: clock, hooks: hooks, scheduler: .manualClock(instanceID: "a-17")) { app, _ in
            let user = try await Fixtures.user(app)
            let serviceID = try await Fixtures.service(app, name: "smtp-a")
            let t1 = try await Fixtures.task(app, user: user, recipients: 3, name: "T1", prefix: "t1-")
            let t2 = try await Fixtures.task(app, user: user, recipients: 3, name: "T2", prefix: "t2-")
            func subtasks(_ task: UUID) async throws -> [SubTaskRecord] {
                try await SubTaskRecord.query(on: app.db).filter(\.$task.$id == task).sort(\.$sequence).all()
            }
            let rows1 = try await subtasks(t1), rows2 = try await subtasks(t2)
            let (s101, s102, s103) = (rows1[0], rows1[1], rows1[2])
            let (s104, s105, s106) = (rows2[0], rows2[1], rows2[2])
            let lease = clock.now().addingTimeInterval(30)
            for subtask in [s101, s102, s103, s105, s106] {
                try await app.sql.raw("""
                    UPDATE sub_tasks SET status = 'sending', claimed_by = 'a-17', service_id = \(bind: serviceID), attempts = 1,
                        lease_expires_at = \(bind: lease), handed_over_at = \(bind: clock.now()) WHERE id = \(bind: subtask.requireID())
                    """).run()
            }
            // A lost 104's lease; B re-claimed it, sent it and recorded it (counted in T2 and the quota).
            try await app.sql.raw("""
                UPDATE sub_tasks SET status = 'sent', claimed_by = 'b-03', service_id = \(bind: serviceID), attempts = 1, sent_at = \(bind: clock.now()),
                    provider_message_id = '9A0B11C2D4' WHERE id = \(bind: s104.requireID())
                """).run()
            try await app.sql.raw("UPDATE tasks SET status = 'sending', sent_count = 1 WHERE id = \(bind: t2)").run()
            try await app.sql.raw("UPDATE tasks SET status = 'sending' WHERE id = \(bind: t1)").run()
            try await app.sql.raw("UPDATE email_services SET used_quota = 1 WHERE id = \(bind: serviceID)").run()

            let tasks = Dictionary(uniqueKeysWithValues: try await TaskRecord.query(on: app.db).all().map { (try $0.requireID(), $0) })
            func entry(_ subtask: SubTaskRecord, _ outcome: MailerOutcome) throws -> QueueScheduler.CompletedSend {
                subtask.attempts = 1
                return QueueScheduler.CompletedSend(outcome: outcome, claim: .init(subtask: subtask, task: try #require(tasks[subtask.$task.id])))
            }
            let batch = [
                try entry(s101, .sent(messageID: "7C1E20A001")),
                try entry(s102, .sent(messageID: "7C1E20A0F3")),
                try entry(s103, .permanentFailure("550 5.1.1 user unknown")),
                try entry(s101, .sent(messageID: "7C1E20A001")),
                try entry(s104, .sent(messageID: "9A0B11C2D4")),
                try entry(s105, .sent(messageID: "9A0B11C301")),
            ]
            let service = try #require(try await EmailService.find(serviceID, on: app.db))

            struct Expected: Equatable { var t1: [Int]; var t2: [Int]; var used: Int; var statuses: [String] }
            func state() async throws -> Expected {
                let t = try await TaskRecord.query(on: app.db).all()
                func counts(_ id: UUID) -> [Int] { t.first { $0.id == id }.map { [$0.sentCount, $0.failedCount] } ?? [] }
                let rows = try await subtasks(t1) + (try await subtasks(t2))
                return Expected(t1: counts(t1), t2: counts(t2), used: try await EmailService.find(serviceID, on: app.db)?.usedQuota ?? -1,
                                statuses: rows.map { "\($0.status.rawValue):\($0.claimedBy ?? "-")" })
            }
            let expected = Expected(t1: [2, 1], t2: [2, 0], used: 4, statuses: ["sent:a-17", "sent:a-17", "failed:-", "sent:b-03", "sent:a-17", "sending:a-17"])

            let first = try await app.edm.scheduler.recordBatch(batch, service: service, on: app.db, now: clock.now())
            #expect(first.changedRows == 4)
            #expect(first.duplicates == 1)
            #expect(first.stale == 1)
            #expect(try await state() == expected)
            let b104 = try #require(try await SubTaskRecord.find(s104.requireID(), on: app.db))
            #expect(b104.providerMessageID == "9A0B11C2D4")
            #expect(try await TaskRecord.find(t1, on: app.db)?.status == .completed)

            // The acknowledgement was lost: the same batch again changes nothing.
            let again = try await app.edm.scheduler.recordBatch(batch, service: service, on: app.db, now: clock.now())
            #expect(again.changedRows == 0)
            #expect(again.duplicates == 1)
            #expect(again.stale == 5)
            #expect(try await state() == expected)
            // Invariant: per task, sent + failed = subtasks in a final state.
            for task in [t1, t2] {
                let rows = try await subtasks(task)
                let final = rows.filter { $0.status == .sent || $0.status == .failed }.count
                let record = try #require(try await TaskRecord.find(task, on: app.db))
                #expect(record.sentCount + record.failedCount == final)
            }
            #expect(hooks.all.filter { $0 == .completed(t1, sent: 2, failed: 1) }.count == 1)
        }
    }

    @Test("service limits: defaults, set, cleared and shown by the API; bad values are one 400 naming each field", arguments: [TestDatabase.sqlite])
    func limitsThroughAPI(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            struct Service: Decodable { var id: UUID; var max_connections: Int; var max_messages_per_connection: Int?; var rate_limit_per_second: Double }
            var created: Service?
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: {
                try $0.content.encode(["name": JSONValue.string("pool"), "provider": .string("dry_run"), "sender_address": .string("news@example.com"), "daily_quota": .number(100)], as: .json)
            }) { res in
                #expect(res.status == .created)
                created = try res.content.decode(Service.self)
            }
            let service = try #require(created)
            #expect(service.max_connections == 4)
            #expect(service.max_messages_per_connection == nil)
            #expect(service.rate_limit_per_second == 0)
            try await app.testing().test(.PATCH, "/api/email-services/\(service.id)", beforeRequest: {
                try $0.content.encode(["max_connections": JSONValue.number(10), "max_messages_per_connection": .number(500), "rate_limit_per_second": .number(2.5)], as: .json)
            }) { res in
                #expect(res.status == .ok)
                let updated = try res.content.decode(Service.self)
                #expect(updated.max_connections == 10)
                #expect(updated.max_messages_per_connection == 500)
                #expect(updated.rate_limit_per_second == 2.5)
            }
            try await app.testing().test(.PATCH, "/api/email-services/\(service.id)", beforeRequest: {
                try $0.content.encode(["max_messages_per_connection": JSONValue.null], as: .json)
            }) { res in
                let updated = try res.content.decode(Service.self)
                #expect(updated.max_messages_per_connection == nil)
                #expect(updated.max_connections == 10)
            }
            try await app.testing().test(.PATCH, "/api/email-services/\(service.id)", beforeRequest: {
                try $0.content.encode(["max_connections": JSONValue.number(0), "max_messages_per_connection": .number(0), "rate_limit_per_second": .number(-1)], as: .json)
            }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(Set(error.error.details.map(\.field)) == ["max_connections", "max_messages_per_connection", "rate_limit_per_second"])
            }
            let stored = try #require(try await EmailService.find(service.id, on: app.db))
            #expect(stored.maxConnections == 10)
            #expect(stored.rateLimitPerSecond == 2.5)

            // Counts given as fractions or beyond any count name their fields, all at once.
            try await app.testing().test(.PATCH, "/api/email-services/\(service.id)", beforeRequest: {
                try $0.content.encode(["max_connections": JSONValue.number(2.5), "max_messages_per_connection": .number(1e30), "daily_quota": .number(0.5)], as: .json)
            }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(Set(error.error.details.map(\.field)) == ["max_connections", "max_messages_per_connection", "daily_quota"], "\(error.error.details)")
                #expect(error.error.details.allSatisfy { $0.reason == "must be a whole number" })
            }
            // A rate so small it would park the service for ages is refused…
            try await app.testing().test(.PATCH, "/api/email-services/\(service.id)", beforeRequest: {
                try $0.content.encode(["rate_limit_per_second": JSONValue.number(1e-320)], as: .json)
            }) { res in
                #expect(res.status == .badRequest)
                let error = try res.content.decode(ErrorBody.self)
                #expect(error.error.details.map(\.field) == ["rate_limit_per_second"])
            }
            // …and a service paced far ahead by an old rate or interval is free again once the
            // operator changes it, or unfreezes it.
            for change: [String: JSONValue] in [["rate_limit_per_second": 10], ["sending_interval_seconds": 1], [:]] {
                stored.nextAvailableAt = Date().addingTimeInterval(10_000)
                try await stored.save(on: app.db)
                let (method, path): (HTTPMethod, String) = change.isEmpty ? (.POST, "/api/email-services/\(service.id)/unfreeze") : (.PATCH, "/api/email-services/\(service.id)")
                try await app.testing().test(method, path, beforeRequest: { if !change.isEmpty { try $0.content.encode(change, as: .json) } }) { res in
                    #expect(res.status == .ok, "\(res.body.string)")
                }
                #expect(try await EmailService.find(service.id, on: app.db)?.nextAvailableAt == nil, "\(change)")
            }
        }
    }
}
