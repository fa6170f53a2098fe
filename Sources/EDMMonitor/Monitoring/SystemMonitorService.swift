import EDMMonitorCore
import FluentKit
import Foundation
import Logging
import Synchronization
import Vapor

/// The latest cycle of a ``SystemMonitorService``: when it ran, its points by collector, and
/// the collectors that failed (with their error text).
public struct SystemSnapshot: Sendable, Equatable {
    /// The instant of the cycle (the clock's now).
    public var collectedAt: Date
    /// Points by collector name (`host`, `process`, `database`, `queue`).
    public var points: [String: [MetricPoint]]
    /// Collector name → error description, for collectors that failed in this cycle.
    public var failures: [String: String]
}

/// Collects the system's figures on an interval and writes each cycle as one batch to the
/// ``MetricStore`` (ARCHITECTURE.md data flow 3).
///
/// Every cycle runs every collector; a collector that throws loses only its own points, is
/// logged once when its failure streak starts (warning) and once when it recovers (info), and
/// never stops the others or the loop. When the store cannot be written (database down) the
/// cycle's points are kept in a bounded buffer (``bufferLimit`` points, the oldest dropped
/// beyond it) and written, oldest first, by the first cycle that reaches the database again, so
/// an outage leaves no hole in the charts. `serve` runs ``cycle()`` in a ``PeriodicService``
/// every ``interval`` seconds; tests call ``collectOnce()``.
public final class SystemMonitorService: Sendable {
    /// Seconds between cycles (default 15); changeable at run time.
    public var interval: TimeInterval {
        get { intervalBox.withLock { $0 } }
        set { intervalBox.withLock { $0 = newValue } }
    }
    /// When `false`, ``cycle()`` collects nothing (`system_monitoring_enabled`).
    public var enabled: Bool {
        get { enabledBox.withLock { $0 } }
        set { enabledBox.withLock { $0 = newValue } }
    }
    private let intervalBox: Mutex<TimeInterval>
    private let enabledBox = Mutex(true)
    let collectors: [any MetricCollector]
    let store: MetricStore
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let logger: Logger
    /// Most points kept while the store cannot be written (default 20,000: over an hour of the
    /// standard collectors at the default interval).
    public let bufferLimit: Int
    /// One failure streak per collector name, and `store` for the write.
    private let streaks: [String: FailureStreak]
    private let latest = Mutex<SystemSnapshot?>(nil)
    /// Points not yet written, oldest first, and how many were dropped since the last success.
    private let pending = Mutex<(points: [MetricPoint], dropped: Int)>(([], 0))

    /// A service running `collectors` and writing to `store` on `database`, at `interval` seconds,
    /// keeping at most `bufferLimit` points while the store cannot be written.
    public init(collectors: [any MetricCollector], store: MetricStore, database: @escaping @Sendable () -> any Database,
                clock: any WallClock, interval: TimeInterval = 15, bufferLimit: Int = 20_000, logger: Logger = Logger(label: "edm.system-monitor")) {
        self.bufferLimit = max(0, bufferLimit)
        self.collectors = collectors
        self.store = store
        self.database = database
        self.clock = clock
        self.intervalBox = Mutex(interval)
        self.logger = logger
        self.streaks = Dictionary((collectors.map(\.name) + ["store"]).map { name in
            (name, FailureStreak(subject: "metric collector", logger: logger, level: .warning, metadata: ["collector": "\(name)"]))
        }, uniquingKeysWith: { first, _ in first })
    }

    /// The standard collectors: host (measuring the disk of `dataDirectory`), process, database
    /// and queue.
    public static func standardCollectors(database: @escaping @Sendable () -> any Database, dataDirectory: String,
                                          filesystem: HostFilesystem = HostFilesystem()) -> [any MetricCollector] {
        [HostCollector(filesystem: filesystem, dataDirectory: dataDirectory), ProcessCollector(filesystem: filesystem),
         DatabaseCollector(database: database), QueueCollector(database: database)]
    }

    /// The last cycle's snapshot, `nil` before the first.
    public var latestSnapshot: SystemSnapshot? { latest.withLock { $0 } }

    /// Points collected but not yet written (the store failed), at most ``bufferLimit``.
    public var bufferedPointCount: Int { pending.withLock { $0.points.count } }

    /// Runs one cycle: every collector (in order), then one batched write of all points.
    /// A failing write is logged and reported in the snapshot under `store`; it does not throw.
    /// - Returns: the cycle's snapshot.
    @discardableResult
    public func collectOnce() async -> SystemSnapshot {
        let now = clock.now()
        var snapshot = SystemSnapshot(collectedAt: now, points: [:], failures: [:])
        for collector in collectors {
            do {
                snapshot.points[collector.name] = try await collector.collect(now: now)
                recovered(collector.name)
            } catch {
                snapshot.failures[collector.name] = "\(error)"
                failed(collector.name, error)
            }
        }
        let batch = snapshot.points.keys.sorted().flatMap { snapshot.points[$0] ?? [] }
        // Earlier cycles' unwritten points first, in batches the store accepts; each batch is
        // all or nothing, so what is left after a failure is exactly what was not written.
        var unwritten = pending.withLock { p in defer { p.points.removeAll() }; return p.points } + batch
        do {
            while !unwritten.isEmpty {
                let count = min(unwritten.count, MetricStore.maxBatchSize)
                try await store.insert(Array(unwritten.prefix(count)), on: database())
                unwritten.removeFirst(count)
            }
            let dropped = pending.withLock { p in defer { p.dropped = 0 }; return p.dropped }
            if dropped > 0 { logger.warning("metric points dropped while the database was unreachable", metadata: ["points": "\(dropped)", "buffer_limit": "\(bufferLimit)"]) }
            recovered("store")
        } catch {
            snapshot.failures["store"] = "\(error)"
            failed("store", error)
            let overflow = max(0, unwritten.count - bufferLimit)
            pending.withLock { p in
                p.points = Array(unwritten.dropFirst(overflow))
                p.dropped += overflow
            }
        }
        latest.withLock { $0 = snapshot }
        return snapshot
    }

    /// One cycle of `serve`'s loop: ``collectOnce()`` when enabled, else nothing (`nil`).
    @discardableResult
    public func cycle() async -> SystemSnapshot? {
        guard enabled else { return nil }
        return await collectOnce()
    }

    private func failed(_ name: String, _ error: any Error) {
        streaks[name]?.failed(error)
    }

    private func recovered(_ name: String) {
        streaks[name]?.succeeded()
    }
}


extension DatabaseLocation {
    /// The folder whose disk the host collector measures: the SQLite file's folder, else the
    /// working directory.
    var dataDirectory: String {
        if case .sqliteFile(let path) = self {
            let folder = (path as NSString).deletingLastPathComponent
            return folder.isEmpty ? "." : folder
        }
        return "."
    }
}
