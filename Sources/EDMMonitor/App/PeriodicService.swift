import Logging
import ServiceLifecycle
import Synchronization

/// One long-running loop of `serve` (the scheduler, the task monitor, the system collectors,
/// alert evaluation, notification delivery, metric retention, configuration reload), run by the
/// one `ServiceGroup` that `serve` owns (``ServeCommand``).
///
/// Each cycle calls the service's plain `runOnce()`-style body, then waits until
/// `interval()` seconds have passed since the cycle *started*. The interval is re-read at least
/// once a second while waiting, so a run-time configuration change (a shorter interval) applies
/// within a second. A body that reports more work (`true`) runs again at once.
///
/// Failures are logged by one ``FailureStreak``: "`name` failing: …" once when a streak starts,
/// "`name` recovered after N failures" when it ends; the loop goes on either way.
///
/// Stopping: on graceful shutdown (SIGTERM/SIGINT through the group) the wait ends at once and
/// the loop returns after the body in flight has finished. The body runs in its own task, so
/// neither graceful shutdown nor the group's cancellation (after
/// ``Settings/shutdownTimeoutSeconds``) reaches it: a send and the recording of its outcome are
/// never cut half-way. Cancellation only stops the wait for a body that is late, so the process
/// can still exit within the bound; such a cycle is counted in ``abandonedCycles`` and `serve`
/// then exits without tearing down what the cycle still uses (``exitLeavingAbandonedCycles(_:)``).
///
/// A loop whose body only waits on the network and can give its work back (notification
/// delivery: a claimed notification is released and sent again later) is made with
/// `cancelsCycleOnShutdown: true`: graceful shutdown cancels its body at once, so a receiver that
/// hangs for the whole HTTP timeout never holds the process past the bound.
public struct PeriodicService: Service {
    /// Name used in the log ("scheduler", "task monitor"…).
    public let name: String
    let interval: @Sendable () -> Double
    /// For a loop on a schedule (``onSchedule(name:logger:untilNext:body:)``): seconds from now
    /// until the next cycle is due, re-read at least once a second; `nil` for an interval loop.
    let untilNext: (@Sendable () -> Double)?
    let body: @Sendable () async throws -> Bool
    let onStop: (@Sendable () async -> Void)?
    let cancelsCycleOnShutdown: Bool
    let streak: FailureStreak
    let logger: Logger
    private let inFlight = InFlightCycle()

    /// Cycles of every loop in this process that were still running when their loop stopped
    /// waiting for them (the shutdown bound passed). Non-zero means work is running that the
    /// application's shutdown would pull resources from under.
    public static var abandonedCycles: Int { abandoned.load(ordering: .relaxed) }
    private static let abandoned = Atomic<Int>(0)

    /// A loop that runs `body` every `interval()` seconds (at least 1 ms; re-read each cycle).
    /// - Parameters:
    ///   - name: subject of the log lines.
    ///   - interval: seconds between the starts of two cycles.
    ///   - logger: where failures, recovery and the stop are logged.
    ///   - onStop: awaited once after the last cycle (e.g. closing SMTP connections).
    ///   - cancelsCycleOnShutdown: cancel the body in flight on graceful shutdown instead of
    ///     letting it finish (only for bodies that give back unfinished work when cancelled).
    ///   - body: one cycle; a thrown error is logged by the failure streak.
    public init(name: String, interval: @escaping @Sendable () -> Double, logger: Logger,
                onStop: (@Sendable () async -> Void)? = nil, cancelsCycleOnShutdown: Bool = false,
                body: @escaping @Sendable () async throws -> Void) {
        self.init(name, interval, logger, onStop, cancelsCycleOnShutdown, { try await body(); return false })
    }

    /// A loop whose body says whether it has more work: `true` runs the next cycle at once,
    /// `false` waits out `interval()` seconds since the cycle started (the scheduler: send while
    /// there is mail, pause when idle).
    public static func whileBusy(name: String, interval: @escaping @Sendable () -> Double, logger: Logger,
                                 onStop: (@Sendable () async -> Void)? = nil, moreWork body: @escaping @Sendable () async throws -> Bool) -> PeriodicService {
        PeriodicService(name, interval, logger, onStop, false, body)
    }

    /// A loop whose cycles follow a schedule instead of an interval: after each cycle it waits
    /// `untilNext()` seconds (0: at once), re-reading it at least once a second, so a schedule
    /// that depends on run-time settings applies within a second. Alert evaluation uses it for
    /// the rule group's slots (``RuleGroupSchedule``, reference case C31): the body decides which
    /// slot it runs; the wait only wakes it when one is due. Cycles never overlap.
    public static func onSchedule(name: String, logger: Logger, untilNext: @escaping @Sendable () -> Double,
                                  body: @escaping @Sendable () async throws -> Void) -> PeriodicService {
        PeriodicService(name, { 1 }, logger, nil, false, { try await body(); return false }, untilNext: untilNext)
    }

    private init(_ name: String, _ interval: @escaping @Sendable () -> Double, _ logger: Logger,
                 _ onStop: (@Sendable () async -> Void)?, _ cancelsCycleOnShutdown: Bool, _ body: @escaping @Sendable () async throws -> Bool,
                 untilNext: (@Sendable () -> Double)? = nil) {
        self.name = name
        self.interval = interval
        self.untilNext = untilNext
        self.body = body
        self.onStop = onStop
        self.cancelsCycleOnShutdown = cancelsCycleOnShutdown
        self.logger = logger
        self.streak = FailureStreak(subject: name, logger: logger)
    }

    /// Runs cycles until graceful shutdown or cancellation, then awaits `onStop`.
    public func run() async throws {
        let stop = LoopStopSignal()
        await withGracefulShutdownHandler {
            while !stop.isRaised && !Task.isCancelled {
                let started = ContinuousClock.now
                let more = await cycle(stop: stop)
                if stop.isRaised || Task.isCancelled { break }
                if !more {
                    if let untilNext {
                        await stop.wait { .seconds(untilNext()) }
                    } else {
                        await stop.wait(until: started, interval: interval)
                    }
                }
            }
        } onGracefulShutdown: {
            stop.raise()
            if cancelsCycleOnShutdown { inFlight.task.withLock { $0 }?.cancel() }
        }
        if inFlight.abandoned.withLock({ $0 }) {
            // `onStop` would wait for the abandoned cycle (closing a connection it is using).
            logger.info("\(name) stopped without its clean-up: a cycle is still running")
            return
        }
        await onStop?()
        logger.info("\(name) stopped")
    }

    /// One cycle, shielded from cancellation: the body runs in an unstructured task whose result
    /// is awaited; when the loop's task is cancelled (the group's shutdown bound has passed) the
    /// wait ends at once but the body is left to finish on its own.
    /// - Parameter stop: the loop's stop signal, for a loop that cancels its cycle on shutdown.
    /// - Returns: whether the body reported more work; `false` after a failure or when the wait
    ///   was abandoned.
    func cycle(stop: LoopStopSignal? = nil) async -> Bool {
        let body = self.body
        let task = Task { try await body() }
        inFlight.task.withLock { $0 = task }
        defer { inFlight.task.withLock { $0 = nil } }
        // The shutdown may have come between the loop's check and `inFlight` being set.
        if cancelsCycleOnShutdown, stop?.isRaised == true { task.cancel() }
        let waiter = OnceContinuation<Result<Bool, any Error>?>()
        let outcome = await withTaskCancellationHandler {
            await waiter.wait {
                Task { waiter.resume(with: await task.result) }
            }
        } onCancel: {
            // Not forwarded to `task`: the body finishes what it started.
            waiter.resume(with: nil)
        }
        switch outcome {
        case .success(let more)?:
            streak.succeeded()
            return more
        case .failure(let error)?:
            streak.failed(error)
            return false
        case nil:
            Self.abandoned.add(1, ordering: .relaxed)
            inFlight.abandoned.withLock { $0 = true }
            logger.warning("\(name): stopped waiting for the cycle in flight (shutdown bound passed); it goes on until the process exits")
            return false
        }
    }
}

/// The body task of a loop's cycle in flight, if any (for cancelling it on shutdown).
final class InFlightCycle: Sendable {
    let task = Mutex<Task<Bool, any Error>?>(nil)
    /// Whether the loop stopped waiting for a cycle (it may still be running).
    let abandoned = Mutex(false)
}

/// A continuation resumed by whichever comes first; later resumes are ignored.
final class OnceContinuation<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Never>?, early: T?, done: Bool)>((nil, nil, false))

    /// Suspends until ``resume(with:)``; `start` runs once the continuation is in place.
    func wait(_ start: () -> Void) async -> T {
        await withCheckedContinuation { continuation in
            let early = state.withLock { s -> T? in
                if s.done { return s.early }
                s.continuation = continuation
                return nil
            }
            if let early { continuation.resume(returning: early); return }
            start()
        }
    }

    /// Resumes the waiter with `value` unless it was resumed already.
    func resume(with value: T) {
        let continuation = state.withLock { s -> CheckedContinuation<T, Never>? in
            if s.done { return nil }
            s.done = true
            if s.continuation == nil { s.early = value }
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(returning: value)
    }
}

/// Logs a failure streak once at each end: "`subject` failing: error" (error level) on the first
/// failure, "`subject` recovered after N failures" (notice) on the first success after it.
/// Used by ``PeriodicService`` for whole cycles and by monitors for their single writes.
public final class FailureStreak: Sendable {
    /// What is failing, e.g. "scheduler" or "metric collector".
    public let subject: String
    let logger: Logger
    let level: Logger.Level
    let metadata: Logger.Metadata
    private let state = Mutex<(count: Int, last: String?)>((0, nil))

    /// - Parameters:
    ///   - subject: the first words of both log lines.
    ///   - level: level of the "failing" line (the "recovered" line is notice, or info when
    ///     `level` is below warning).
    ///   - metadata: added to both lines (e.g. the collector's name).
    public init(subject: String, logger: Logger, level: Logger.Level = .error, metadata: Logger.Metadata = [:]) {
        self.subject = subject
        self.logger = logger
        self.level = level
        self.metadata = metadata
    }

    /// Failures in the current streak; 0 after a success.
    public var count: Int { state.withLock { $0.count } }

    /// The last failure's text while a streak lasts, else `nil`.
    public var lastError: String? { state.withLock { $0.last } }

    /// Records a failure; logs it when it starts a streak.
    public func failed(_ error: any Error) {
        let text = DatabaseErrorText.describe(error)
        let first = state.withLock { s in s.count += 1; s.last = text; return s.count == 1 }
        if first {
            logger.log(level: level, "\(subject) failing: \(text)", metadata: metadata.merging(["error": "\(String(reflecting: error))"]) { a, _ in a })
        }
    }

    /// Records a success; logs the end of a streak.
    public func succeeded() {
        let ended = state.withLock { s in defer { s = (0, nil) }; return s.count }
        if ended > 0 {
            logger.log(level: level >= .warning ? .notice : .info, "\(subject) recovered after \(ended) failure\(ended == 1 ? "" : "s")", metadata: metadata)
        }
    }
}

/// Raised once on graceful shutdown; wakes a loop waiting for its next cycle.
final class LoopStopSignal: Sendable {
    private let state = Mutex<(raised: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    var isRaised: Bool { state.withLock { $0.raised } }

    func raise() {
        let waiter = state.withLock { s in defer { s = (true, nil) }; return s.waiter }
        waiter?.resume()
    }

    /// Waits until `interval()` seconds after `start`, re-reading `interval` at least once a
    /// second; returns early when the signal is raised or the task is cancelled.
    func wait(until start: ContinuousClock.Instant, interval: () -> Double) async {
        await wait { start.advanced(by: .seconds(max(0.001, interval()))) - ContinuousClock.now }
    }

    /// Waits while `remaining()` (re-read at least once a second) is positive; returns early
    /// when the signal is raised or the task is cancelled.
    func wait(remaining: () -> Duration) async {
        while !isRaised && !Task.isCancelled {
            let left = remaining()
            guard left > .zero else { return }
            await sleep(for: min(left, .seconds(1)))
        }
    }

    /// Sleeps for `duration`, or less when the signal is raised or the task cancelled.
    private func sleep(for duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.state.withLock { s -> Bool in
                            if s.raised || Task.isCancelled { return true }
                            s.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { s in defer { s.waiter = nil }; return s.waiter }
                    waiter?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
