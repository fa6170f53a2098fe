import Synchronization
import Vapor

/// Starts a background loop (the scheduler, task monitoring…) when the server has booted and
/// stops it (letting the work in flight finish) on shutdown. Registered by `serve` only, so tests
/// drive `runOnce()` themselves.
final class BackgroundLoop: LifecycleHandler, Sendable {
    let body: @Sendable () async -> Void
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ body: @escaping @Sendable () async -> Void) {
        self.body = body
    }

    func didBootAsync(_ application: Application) async throws {
        let body = self.body
        task.withLock { $0 = Task { await body() } }
    }

    func shutdownAsync(_ application: Application) async {
        let running = task.withLock { t in defer { t = nil }; return t }
        running?.cancel()
        await running?.value
    }
}

/// Sleeps until `interval()` seconds have passed since `start`, re-reading `interval` at least
/// once a second, so a loop waiting out a long interval notices a shorter one (a run-time
/// configuration change) within a second. Returns early when the task is cancelled.
func sleepUntilDue(since start: ContinuousClock.Instant, interval: () -> Double) async {
    while !Task.isCancelled {
        let remaining = start.advanced(by: .seconds(interval())) - ContinuousClock.now
        guard remaining > .zero else { return }
        try? await Task.sleep(for: min(remaining, .seconds(1)))
    }
}
