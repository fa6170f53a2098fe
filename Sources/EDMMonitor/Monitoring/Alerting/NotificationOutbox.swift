import EDMMonitorCore
import FluentKit
import Foundation
import Logging

/// Delivers the `alert_notifications` outbox: claims due rows, sends each through its channel's
/// sender, records the outcome, retries failures with exponential backoff and gives up after
/// `giveUpAfterSeconds`.
///
/// Any number of instances may call ``deliverOnce(limit:)`` at the same time on one database:
/// each row is claimed by one of them (``AlertNotificationStore/claim(claimer:limit:now:until:)``),
/// so it is delivered once; a newer notification of the same alert and channel is claimed only
/// once every older one is delivered or failed, so a receiver sees them in order (a receiver
/// that was down never gets `resolved` before its `firing`, scripts/bench/receiver_outage.py).
/// A claim lasts ``claimLeaseSeconds`` (many HTTP timeouts); a crashed claimer's rows are
/// claimed again after it.
final class NotificationOutbox: Sendable {
    let database: @Sendable () -> any Database
    let clock: any WallClock
    let senders: NotificationSenders
    let settings: @Sendable () -> AlertingSettings
    let logger: Logger
    /// This outbox's claim identity (host, process, random suffix): unique per instance.
    let claimer = SchedulerConfiguration.defaultInstanceID()

    /// How long a claim lasts, seconds: a round claims at most ``claimBatch`` rows, each send
    /// bounded by the 10 s HTTP timeout, so a live claimer finishes long before.
    static let claimLeaseSeconds: Double = 300
    /// Rows claimed per round.
    static let claimBatch = 20

    init(database: @escaping @Sendable () -> any Database, clock: any WallClock, senders: NotificationSenders, settings: @escaping @Sendable () -> AlertingSettings, logger: Logger) {
        self.database = database
        self.clock = clock
        self.senders = senders
        self.settings = settings
        self.logger = logger
    }

    /// Delivers due notifications (at most `limit` attempts), oldest first, in rounds: each round
    /// claims what is claimable now, so the newer notification of an alert whose older one was
    /// just delivered goes out in the next round of the same pass.
    ///
    /// The rows of one claim go out concurrently: a claim holds at most one row per (alert,
    /// channel) — the oldest pending one — so order per receiver is kept, and a receiver that
    /// hangs for the whole HTTP timeout delays no other channel. A failure is retried with backoff
    /// (`retryBase × 2^(attempts−1)`, at most `maxBackoff`) counted from when the attempt
    /// *ended*; a delivered notification is never sent again. Stops claiming when the task is
    /// cancelled. An attempt under way when the task is cancelled (graceful shutdown of `serve`)
    /// is cut short and its row given back unrecorded, so it is sent again later: the one case
    /// where a receiver may get a notification twice.
    /// - Returns: how many were delivered.
    /// - Throws: the database's error (claims already made expire after their lease).
    @discardableResult
    func deliverOnce(limit: Int = 100) async throws -> Int {
        let store = AlertNotificationStore(sql: database().sql)
        let settings = self.settings()
        var delivered = 0
        var attempted = 0
        while attempted < limit, !Task.isCancelled {
            let now = clock.now()
            let claimed = try await store.claim(claimer: claimer, limit: min(Self.claimBatch, limit - attempted), now: now,
                                                until: now.addingTimeInterval(Self.claimLeaseSeconds))
            if claimed.isEmpty { break }
            attempted += claimed.count
            delivered += try await withThrowingTaskGroup(of: Bool.self) { group in
                for row in claimed {
                    group.addTask { try await self.attempt(row, store: store, settings: settings) }
                }
                var count = 0
                for try await ok in group where ok { count += 1 }
                return count
            }
        }
        return delivered
    }

    /// One attempt of a claimed row, and its outcome recorded.
    /// - Returns: whether it was delivered; `false` when it failed, or when the task was
    ///   cancelled and the row given back unrecorded.
    private func attempt(_ row: ClaimedNotification, store: AlertNotificationStore, settings: AlertingSettings) async throws -> Bool {
        if Task.isCancelled {
            try await giveBack([row.id], store: store)
            return false
        }
        let outcome = await deliver(row, now: clock.now(), externalURL: settings.externalURL)
        if Task.isCancelled {
            // Shutdown cut this attempt short: give it back unrecorded, so the next instance to
            // run sends it (the receiver may see it twice).
            try await giveBack([row.id], store: store)
            return false
        }
        let now = clock.now()
        switch outcome {
        case .success:
            if try await !store.markDelivered(row.id, claimer: claimer, now: now) {
                logger.warning("notification delivered, but its row was no longer claimed here (claim expired, or its rule was deleted); another instance may send it again",
                               metadata: ["notification_id": "\(row.id)"])
            }
            return true
        case .failure(let error):
            let attempts = row.attempts + 1
            let giveUp = now.timeIntervalSince(row.created_at) >= settings.giveUpAfterSeconds
            let delay = min(settings.maxBackoffSeconds, settings.retryBaseSeconds * pow(2, Double(attempts - 1)))
            try await store.markFailed(row.id, claimer: claimer, attempts: attempts, error: error.description, giveUp: giveUp,
                                       nextAttemptAt: now.addingTimeInterval(delay))
            if attempts == 1 || giveUp {
                logger.warning(giveUp ? "notification not delivered; given up" : "notification not delivered; will retry", metadata: ["notification_id": "\(row.id)", "error": "\(error.description)", "given_up": "\(giveUp)"])
            }
            return false
        }
    }

    /// Releases this outbox's claim on `ids` in a task of its own, so that the cancellation
    /// that asked for it does not cut the release short.
    private func giveBack(_ ids: [UUID], store: AlertNotificationStore) async throws {
        let claimer = self.claimer
        try await Task { try await store.release(ids, claimer: claimer) }.value
    }

    /// Sends one claimed row through its channel's sender.
    func deliver(_ row: ClaimedNotification, now: Date, externalURL: String) async -> Result<Void, DeliveryError> {
        guard let channel = AlertChannel(storedText: row.channel), let stored = StoredAlert(storedText: row.alert),
              let kind = AlertNotificationKind(rawValue: row.kind) else {
            return .failure(DeliveryError("unreadable outbox row"))
        }
        return await senders.sender(for: channel.type).send(stored.outgoing, kind: kind, via: channel, context: NotificationContext(now: now, externalURL: externalURL))
    }
}
