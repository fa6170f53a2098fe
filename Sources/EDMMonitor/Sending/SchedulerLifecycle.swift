import Synchronization
import Vapor

/// Starts the dispatch loop when the server has booted and stops it (waiting for the message in
/// flight) on shutdown. Registered by `serve` only, so tests drive `runOnce()` themselves.
final class SchedulerLifecycle: LifecycleHandler, Sendable {
    let scheduler: QueueScheduler
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(scheduler: QueueScheduler) {
        self.scheduler = scheduler
    }

    func didBootAsync(_ application: Application) async throws {
        let scheduler = self.scheduler
        task.withLock { $0 = Task { await scheduler.run() } }
    }

    func shutdownAsync(_ application: Application) async {
        let running = task.withLock { t in defer { t = nil }; return t }
        running?.cancel()
        await running?.value
    }
}
