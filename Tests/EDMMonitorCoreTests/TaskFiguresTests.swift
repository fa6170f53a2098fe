import EDMMonitorCore
import Foundation
import Testing

/// The task figures the API, the dashboard and the task monitor share, with exact values.
@Suite("Task figures")
struct TaskFiguresTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("progress: terminal share in percent, two decimals, 0 without recipients")
    func progress() {
        #expect(TaskFigures.progressPercent(sent: 1, failed: 0, total: 3) == 33.33)
        #expect(TaskFigures.progressPercent(sent: 1, failed: 1, total: 3) == 66.67)
        #expect(TaskFigures.progressPercent(sent: 3, failed: 1, total: 8) == 50)
        #expect(TaskFigures.progressPercent(sent: 7, failed: 3, total: 10) == 100)
        #expect(TaskFigures.progressPercent(sent: 1, failed: 0, total: 200_000) == 0)
        #expect(TaskFigures.progressPercent(sent: 0, failed: 0, total: 0) == 0)
    }

    @Test("wait time: first send − max(created, scheduled), never negative")
    func waitTime() {
        // Created, not scheduled: from creation.
        #expect(TaskFigures.waitSeconds(createdAt: t0, scheduledAt: nil, firstSentAt: t0 + 42) == 42)
        // Scheduled after creation: from the scheduled instant.
        #expect(TaskFigures.waitSeconds(createdAt: t0, scheduledAt: t0 + 600, firstSentAt: t0 + 630) == 30)
        // Scheduled in the past (before creation): from creation.
        #expect(TaskFigures.waitSeconds(createdAt: t0, scheduledAt: t0 - 600, firstSentAt: t0 + 5) == 5)
        // A first send before the eligible instant (clock step) is 0, not negative.
        #expect(TaskFigures.waitSeconds(createdAt: t0, scheduledAt: nil, firstSentAt: t0 - 3) == 0)
        // No creation instant: counted as created at the first send, so the wait is 0.
        #expect(TaskFigures.waitSeconds(createdAt: nil, scheduledAt: nil, firstSentAt: t0) == 0)
        #expect(TaskFigures.waitSeconds(createdAt: nil, scheduledAt: t0 - 20, firstSentAt: t0) == 0)
        #expect(TaskFigures.eligibleAt(createdAt: t0, scheduledAt: t0 + 1, fallback: t0 - 100) == t0 + 1)
        #expect(TaskFigures.eligibleAt(createdAt: nil, scheduledAt: nil, fallback: t0 - 100) == t0 - 100)
    }

    @Test("throughput: count per hour over a span; average from the first send")
    func throughput() {
        #expect(TaskFigures.perHour(count: 4, overSeconds: 300) == 48)
        #expect(TaskFigures.perHour(count: 90, overSeconds: 3600) == 90)
        #expect(TaskFigures.perHour(count: 40, overSeconds: 20) == 7200)
        #expect(TaskFigures.perHour(count: 5, overSeconds: 0) == 0)
        // 100 emails in 30 minutes: 200/h.
        #expect(TaskFigures.averagePerHour(sent: 100, startedAt: t0, endedAt: t0 + 1800) == 200)
        // 1 email in 2 seconds: 1800/h (the API shows it; the completed row does not record it).
        #expect(TaskFigures.averagePerHour(sent: 1, startedAt: t0, endedAt: t0 + 2) == 1800)
        #expect(TaskFigures.averagePerHour(sent: 3, startedAt: t0, endedAt: t0) == nil)
        #expect(TaskFigures.averagePerHour(sent: 3, startedAt: t0, endedAt: t0 - 1) == nil)
        #expect(TaskFigures.hasMeasurableAverage(sent: 2, durationSeconds: 1))
        #expect(!TaskFigures.hasMeasurableAverage(sent: 1, durationSeconds: 3600))
        #expect(!TaskFigures.hasMeasurableAverage(sent: 100, durationSeconds: 0.5))
    }

    @Test("current throughput window: 5 minutes, or since the start in a task's first window (at least 10 s)")
    func currentWindow() {
        let now = t0 + 10_000
        let whole = TaskFigures.currentWindow(startedAt: nil, now: now, windowSeconds: 300)
        #expect(whole.since == now - 300 && whole.seconds == 300)
        let old = TaskFigures.currentWindow(startedAt: now - 301, now: now, windowSeconds: 300)
        #expect(old.since == now - 300 && old.seconds == 300)
        let young = TaskFigures.currentWindow(startedAt: now - 20, now: now, windowSeconds: 300)
        #expect(young.seconds == 20)
        #expect(young.since == now - 300)  // the earlier of the window start and the task start
        let fresh = TaskFigures.currentWindow(startedAt: now - 2, now: now, windowSeconds: 300)
        #expect(fresh.seconds == 10)
        // 40 sends in the task's first 20 s: 7,200/h, not 480/h.
        #expect(TaskFigures.perHour(count: 40, overSeconds: young.seconds) == 7200)
    }

    @Test("failure rate: failed share of the ended subtasks, 0 when none ended")
    func failureRate() {
        #expect(TaskFigures.failureRatePercent(sent: 3, failed: 1) == 25)
        #expect(TaskFigures.failureRatePercent(sent: 0, failed: 2) == 100)
        #expect(TaskFigures.failureRatePercent(sent: 0, failed: 0) == 0)
    }

    @Test("remaining quota: sum of what each usable service has left, saturating")
    func remainingCapacity() {
        #expect(TaskFigures.remainingCapacity([(daily: 100, used: 30), (daily: 50, used: 60)]) == 70)
        #expect(TaskFigures.remainingCapacity([]) == 0)
        #expect(TaskFigures.remainingCapacity([(daily: Int.max, used: 0), (daily: 10, used: 0)]) == Int.max)
    }

    @Test("ETA: each reason in order, then pending ÷ throughput")
    func eta() {
        let now = t0 + 5_000
        let done = t0 + 4_000
        #expect(TaskFigures.eta(phase: .finished(completedAt: done), pending: 5, currentPerHour: 0, remainingQuota: nil, now: now)
                == .init(at: done, seconds: 0, reason: nil))
        #expect(TaskFigures.eta(phase: .active, pending: 0, currentPerHour: 0, remainingQuota: nil, now: now)
                == .init(at: now, seconds: 0, reason: nil))
        #expect(TaskFigures.eta(phase: .paused, pending: 5, currentPerHour: 100, remainingQuota: 1_000, now: now) == .unknown("task is paused"))
        #expect(TaskFigures.eta(phase: .active, pending: 5, currentPerHour: 100, remainingQuota: nil, now: now) == .unknown("no email service is available"))
        #expect(TaskFigures.eta(phase: .active, pending: 5, currentPerHour: 0, remainingQuota: 1_000, now: now) == .unknown("nothing sent in the throughput window"))
        #expect(TaskFigures.eta(phase: .active, pending: 500, currentPerHour: 100, remainingQuota: 120, now: now)
                == .unknown("today's remaining quota (120) is below the pending recipients (500)"))
        // 50 pending at 120/h: 1,500 s.
        #expect(TaskFigures.eta(phase: .active, pending: 50, currentPerHour: 120, remainingQuota: 50, now: now)
                == .init(at: now + 1500, seconds: 1500, reason: nil))
        // Seconds are rounded; the instant is not.
        let odd = TaskFigures.eta(phase: .active, pending: 1, currentPerHour: 7, remainingQuota: 10, now: now)
        #expect(odd.seconds == 514)
        #expect(odd.at == now.addingTimeInterval(1.0 / 7 * 3600))
    }
}
