import EDMMonitorCore
import Logging
import NIOCore
import NIOPosix

/// Up to `maxConnections` reused SMTP connections to one server, for concurrent sends of one
/// email service (the idea of listmonk's SMTP pool).
///
/// Each connection is an ``SMTPMailer`` and carries one message at a time; a send takes the
/// connection used most recently (so the others go idle and are retired), opens a new one while
/// fewer than `maxConnections` exist, or waits for one in arrival order. A per-connection limit
/// that one connection learns from the server (421 or 452 4.4.5 to MAIL, reference case C25) is
/// passed on to all of them. Connections idle for `idleTimeout` (240 s by default, below RFC 5321
/// §4.5.3.2.7's 5-minute server timeout) are ended with QUIT at their next use, and by a sweep
/// every 30 s while the pool is open.
public actor SMTPConnectionPool {
    /// Most connections open at once (and most sends in progress at once).
    public nonisolated let maxConnections: Int
    /// The settings every connection is made with.
    public nonisolated let configuration: SMTPMailerConfiguration
    /// The lowest messages-per-connection limit a server taught; `nil` until one did.
    public private(set) var learnedMessageLimit: Int?

    private let group: any EventLoopGroup
    private let clock: any WallClock
    private let logger: Logger
    private var all: [SMTPMailer]
    private var free: [SMTPMailer]
    private var waiting: [CheckedContinuation<SMTPMailer, Never>] = []
    private var sweeper: Task<Void, Never>?

    /// A pool that connects on its first send.
    /// - Parameters:
    ///   - maxConnections: 1 or more; values below 1 count as 1.
    ///   - clock: the time idle connections are measured in (`ManualClock` in tests).
    /// - Throws: `SMTPMailerConfigurationError` naming the first unusable setting.
    public init(configuration: SMTPMailerConfiguration, maxConnections: Int = 4,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                clock: any WallClock = SystemClock(),
                logger: Logger = Logger(label: "edm.smtp")) throws(SMTPMailerConfigurationError) {
        let first = try SMTPMailer(configuration: configuration, eventLoopGroup: eventLoopGroup, clock: clock, logger: logger)
        self.maxConnections = max(1, maxConnections)
        self.configuration = configuration
        self.group = eventLoopGroup
        self.clock = clock
        self.logger = logger
        all = [first]
        free = [first]
    }

    deinit { sweeper?.cancel() }

    /// TCP connections opened so far by all connections of the pool, reconnections included.
    public var connectionsOpened: Int {
        get async {
            var total = 0
            for mailer in all { total += await mailer.connectionsOpened }
            return total
        }
    }

    /// Sends one message on a free connection; see ``SMTPMailer/send(_:)`` for the result.
    /// - Throws: `CancellationError` when the task is cancelled before the transaction starts.
    public func send(_ envelope: SMTPEnvelope) async throws -> SMTPDeliveryResult {
        try Task.checkCancellation()
        startSweeper()
        let mailer = await checkOut()
        let result: SMTPDeliveryResult
        do {
            result = try await mailer.send(envelope)
        } catch {
            checkIn(mailer)
            throw error
        }
        if let learned = await mailer.learnedMessageLimit, learned < learnedMessageLimit ?? .max {
            learnedMessageLimit = learned
            for other in all { await other.lowerMessageLimit(to: learned) }
        }
        checkIn(mailer)
        return result
    }

    /// Ends (QUIT) every free connection idle past `idleTimeout` or at its message limit.
    public func retireIdleConnections() async {
        for mailer in free { await mailer.retireIfDue() }
    }

    /// Ends (QUIT) every connection no send is using now; a later send connects again.
    public func closeIdleConnections() async {
        for mailer in free { await mailer.close() }
    }

    /// Stops the sweep and ends every connection with QUIT, waiting for sends in progress.
    /// A later send connects again.
    public func close() async {
        sweeper?.cancel()
        sweeper = nil
        for mailer in all { await mailer.close() }
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(30))
                guard let self, !Task.isCancelled else { return }
                await self.retireIdleConnections()
            }
        }
    }

    private func checkOut() async -> SMTPMailer {
        if let mailer = free.popLast() { return mailer }
        if all.count < maxConnections,
           let mailer = try? SMTPMailer(configuration: configuration, eventLoopGroup: group, clock: clock, logger: logger) {
            all.append(mailer)
            if let learnedMessageLimit { await mailer.lowerMessageLimit(to: learnedMessageLimit) }
            return mailer
        }
        return await withCheckedContinuation { waiting.append($0) }
    }

    private func checkIn(_ mailer: SMTPMailer) {
        if waiting.isEmpty {
            free.append(mailer)
        } else {
            waiting.removeFirst().resume(returning: mailer)
        }
    }
}
