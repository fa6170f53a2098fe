import Foundation

/// The figures of a sending task — progress, wait time, throughput, ETA, failure rate — as pure
/// functions over values. The API (`/api/tasks`, `/api/monitoring/…`), the dashboard (which shows
/// what the API returns) and the task monitor (its `task_processing_metrics` rows and derived
/// series) all compute them here, so that one figure has one definition.
///
/// Units: seconds for durations, emails per hour for throughput, percent 0…100 for shares.
public enum TaskFigures {
    // MARK: - Progress

    /// Terminal share of a task, percent 0…100 rounded to two decimals:
    /// `(sent + failed) / total × 100`; 0 for a task without recipients.
    ///
    /// Example: 1 of 3 → 33.33; 2 of 3 → 66.67.
    public static func progressPercent(sent: Int, failed: Int, total: Int) -> Double {
        guard total > 0 else { return 0 }
        return (Double(sent + failed) / Double(total) * 10_000).rounded() / 100
    }

    // MARK: - Wait time

    /// The instant a task became eligible to send: `max(created_at, scheduled_at)`.
    ///
    /// A task without `created_at` (never in practice: the creator sets it) counts as created at
    /// `fallback`; without `scheduled_at` it is eligible from its creation.
    public static func eligibleAt(createdAt: Date?, scheduledAt: Date?, fallback: Date) -> Date {
        max(createdAt ?? fallback, scheduledAt ?? .distantPast)
    }

    /// Wait time of a task, seconds ≥ 0: its first email sent (`firstSentAt`) − the instant it
    /// became eligible (``eligibleAt(createdAt:scheduledAt:fallback:)``). A first send before the
    /// eligible instant (clock steps) counts as 0.
    public static func waitSeconds(createdAt: Date?, scheduledAt: Date?, firstSentAt: Date) -> Double {
        max(0, firstSentAt.timeIntervalSince(eligibleAt(createdAt: createdAt, scheduledAt: scheduledAt, fallback: firstSentAt)))
    }

    // MARK: - Throughput

    /// `count` emails over `seconds`, scaled to emails per hour: `count × 3600 / seconds`.
    /// 0 when `seconds` is not positive.
    public static func perHour(count: Int, overSeconds seconds: Double) -> Double {
        seconds > 0 ? Double(count) * 3600 / seconds : 0
    }

    /// Average throughput of a task, emails per hour: `sent / ((end − start) / 3600)`, where start
    /// is its first send (`started_at`) and end its completion, else its last send, else now.
    /// `nil` when the span is not positive (nothing measurable yet).
    public static func averagePerHour(sent: Int, startedAt: Date, endedAt: Date) -> Double? {
        let hours = endedAt.timeIntervalSince(startedAt) / 3600
        guard hours > 0 else { return nil }
        return Double(sent) / hours
    }

    /// Whether a finished task's average throughput is worth recording in its `completed` metric
    /// row: at least two emails over at least one second. One email, or a task that went out in
    /// under a second, has no meaningful rate, and would otherwise dominate the mean of
    /// `/api/monitoring/task-stats` with a huge value.
    public static func hasMeasurableAverage(sent: Int, durationSeconds: Double) -> Bool {
        durationSeconds >= 1 && sent >= 2
    }

    /// The trailing window over which a task's *current* throughput is measured.
    ///
    /// Normally the last `windowSeconds` before `now` (5 minutes). In a task's first window
    /// (`started_at` less than `windowSeconds` ago) the rate is over the time since it started,
    /// at least 10 s, so that a task sending 2 emails/s for 20 s reads 7,200/h, not 480/h; the
    /// window's start then reaches 1 ms before `started_at` so that the first send counts.
    /// Without `startedAt` (all tasks, or a task that sent nothing) the window is the whole
    /// `windowSeconds`.
    ///
    /// - Returns: count sends with `since < sent_at ≤ now`, and divide by `seconds`
    ///   (``perHour(count:overSeconds:)``).
    public static func currentWindow(startedAt: Date?, now: Date, windowSeconds: Double) -> (since: Date, seconds: Double) {
        let since = now.addingTimeInterval(-windowSeconds)
        guard let startedAt, now.timeIntervalSince(startedAt) < windowSeconds else { return (since, windowSeconds) }
        return (min(since, startedAt.addingTimeInterval(-0.001)), max(10, now.timeIntervalSince(startedAt)))
    }

    // MARK: - Failure rate

    /// Failed share of the subtasks that ended, percent 0…100: `failed / (sent + failed) × 100`;
    /// 0 when none ended.
    public static func failureRatePercent(sent: Int, failed: Int) -> Double {
        sent + failed == 0 ? 0 : Double(failed) / Double(sent + failed) * 100
    }

    // MARK: - ETA

    /// Where a task stands, as far as its ETA is concerned.
    public enum Phase: Sendable, Equatable {
        /// Queued or sending.
        case active
        /// Paused by an operator.
        case paused
        /// Completed, failed or cancelled, at `completedAt` (when known).
        case finished(completedAt: Date?)
    }

    /// A task's estimated completion: `at`/`seconds` when known, else `reason`.
    public struct ETA: Sendable, Equatable {
        /// The estimated completion instant (`nil` when unknown; a finished task's completion).
        public var at: Date?
        /// Seconds from now, rounded to whole seconds; 0 for a finished task.
        public var seconds: Double?
        /// Why the ETA is unknown, in words an operator reads; `nil` when known.
        public var reason: String?

        /// Creates an ETA.
        public init(at: Date?, seconds: Double?, reason: String?) {
            self.at = at
            self.seconds = seconds
            self.reason = reason
        }

        /// An unknown ETA, with the reason.
        public static func unknown(_ reason: String) -> ETA { ETA(at: nil, seconds: nil, reason: reason) }
    }

    /// What the usable services can still send today: the sum of `max(0, daily − used)` over
    /// them, saturating at `Int.max` (quotas are capped at 10⁹ on input, but older rows and hand
    /// edits are not).
    public static func remainingCapacity(_ quotas: [(daily: Int, used: Int)]) -> Int {
        quotas.map { max(0, $0.daily - $0.used) }.reduce(0) { a, b in
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? Int.max : sum
        }
    }

    /// ETA of a task from its current throughput, capped by today's quota.
    ///
    /// In this order: a finished task's ETA is its completion (0 s); nothing pending → now (0 s);
    /// paused → unknown; no usable service (`remainingQuota == nil`) → unknown; no send in the
    /// throughput window → unknown; today's remaining quota below the pending recipients →
    /// unknown, since the rest waits for quota resets; else `pending / currentPerHour × 3600`
    /// seconds from `now`.
    ///
    /// - Parameters:
    ///   - pending: subtasks `pending` or `sending`.
    ///   - currentPerHour: the task's current throughput, emails per hour.
    ///   - remainingQuota: ``remainingCapacity(_:)`` of the usable (not disabled, not frozen)
    ///     services, or `nil` when there is none.
    public static func eta(phase: Phase, pending: Int, currentPerHour: Double, remainingQuota: Int?, now: Date) -> ETA {
        if case .finished(let completedAt) = phase { return ETA(at: completedAt, seconds: 0, reason: nil) }
        if pending == 0 { return ETA(at: now, seconds: 0, reason: nil) }
        if phase == .paused { return .unknown("task is paused") }
        guard let capacity = remainingQuota else { return .unknown("no email service is available") }
        if currentPerHour <= 0 { return .unknown("nothing sent in the throughput window") }
        if capacity < pending { return .unknown("today's remaining quota (\(capacity)) is below the pending recipients (\(pending))") }
        let seconds = Double(pending) / currentPerHour * 3600
        return ETA(at: now.addingTimeInterval(seconds), seconds: seconds.rounded(), reason: nil)
    }
}
