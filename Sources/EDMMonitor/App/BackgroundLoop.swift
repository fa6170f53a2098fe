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
