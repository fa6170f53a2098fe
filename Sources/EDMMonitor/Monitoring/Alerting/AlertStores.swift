import EDMMonitorCore
import Foundation
import SQLKit

/// The states of an `alert_notifications` row (the column's CHECK constraint lists the same).
/// A row being delivered stays `pending`; its claim is in `claimed_by`/`claimed_until`.
enum AlertNotificationStatus: String, Sendable, CaseIterable {
    case pending, delivered, failed
}

/// What an `alert_notifications` row announces.
enum AlertNotificationKind: String, Sendable, CaseIterable {
    case firing, reminder, resolved
}

/// A row of `alert_instances` (one per rule and series): the state machine's state as JSON
/// (`AlertInstanceState`), the series tags as JSON and the open episode, if any, with that
/// episode's status (`alert_histories.status`, joined) and when the row was last written.
struct AlertInstanceRow: Decodable, Sendable {
    var rule_id: UUID
    var fingerprint: String
    var tags: String
    var state: String
    var history_id: UUID?
    /// The open episode's status (`active`, `acknowledged`, `suppressed`…), `nil` without one.
    var history_status: String?
    /// When the row was last written (a change, or a value refresh).
    var updated_at: Date?

    /// The JSON text of the `inactive` state, as ``AlertInstanceStore/json(_:)`` writes it.
    static let inactiveText = (try? AlertInstanceStore.json(AlertInstanceState.inactive)) ?? #"{"inactive":{}}"#

    /// Whether the stored state is `inactive` (compared as text, without decoding).
    var isInactive: Bool { state == Self.inactiveText }

    /// The stored state; an unreadable one counts as `inactive`.
    var decodedState: AlertInstanceState {
        if isInactive { return .inactive }
        return (try? JSONDecoder().decode(AlertInstanceState.self, from: Data(state.utf8))) ?? .inactive
    }
    /// The stored series tags; unreadable tags count as none.
    var decodedTags: [String: String] { (try? JSONDecoder().decode([String: String].self, from: Data(tags.utf8))) ?? [:] }

    /// Every instance (shorthand for ``AlertInstanceStore/all()``).
    static func all(on sql: any SQLDatabase) async throws -> [AlertInstanceRow] {
        try await AlertInstanceStore(sql: sql).all()
    }
}

/// Access to `alert_instances`: the evaluator's per-series state. Writes happen inside the
/// transaction of the state change they belong to (pass that transaction's `sql`).
struct AlertInstanceStore: Sendable {
    let sql: any SQLDatabase

    /// Every instance of every rule, with its open episode's status (one statement).
    func all() async throws -> [AlertInstanceRow] {
        try await sql.raw("""
            SELECT i.rule_id, i.fingerprint, i.tags, i.state, i.history_id, h.status AS history_status, i.updated_at
            FROM alert_instances i LEFT JOIN alert_histories h ON h.id = i.history_id
            """).all(decoding: AlertInstanceRow.self)
    }

    /// An unchanged instance whose last value is rewritten (``refreshValues(_:now:)``).
    struct ValueRefresh: Sendable {
        var ruleID: UUID
        var fingerprint: String
        /// Its open episode, whose `last_value` is rewritten too.
        var historyID: UUID?
        /// The value observed now (`nil`: no data; the stored value is kept).
        var value: Double?
    }

    /// Rewrites `last_value` and `updated_at` of unchanged instances and of their open episodes
    /// (two `UPDATE`s per instance; call inside one transaction for all of them).
    func refreshValues(_ refreshes: [ValueRefresh], now: Date) async throws {
        for refresh in refreshes {
            try await sql.raw("""
                UPDATE alert_instances SET last_value = COALESCE(\(bind: refresh.value), last_value), updated_at = \(bind: now)
                WHERE rule_id = \(bind: refresh.ruleID) AND fingerprint = \(bind: refresh.fingerprint)
                """).run()
            if let history = refresh.historyID, let value = refresh.value {
                try await sql.raw("UPDATE alert_histories SET last_value = \(bind: value), updated_at = \(bind: now) WHERE id = \(bind: history)").run()
            }
        }
    }

    /// Inserts or replaces the instance (rule, fingerprint) with its new state (one upsert).
    func upsert(ruleID: UUID, fingerprint: String, tags: [String: String], state: AlertInstanceState, historyID: UUID?, value: Double?, now: Date) async throws {
        let stateJSON = try Self.json(state)
        let tagsJSON = try Self.json(tags)
        try await sql.raw("""
            INSERT INTO alert_instances (rule_id, fingerprint, tags, state, history_id, last_value, updated_at)
            VALUES (\(bind: ruleID), \(bind: fingerprint), \(bind: tagsJSON), \(bind: stateJSON), \(bind: historyID), \(bind: value), \(bind: now))
            ON CONFLICT (rule_id, fingerprint) DO UPDATE SET tags = excluded.tags, state = excluded.state,
                history_id = excluded.history_id, last_value = excluded.last_value, updated_at = excluded.updated_at
            """).run()
    }

    /// Returns the instance of episode `historyID` to `inactive` with no episode (a resolve by
    /// hand): if the condition still holds, the next evaluation starts a new episode after `for`.
    func endEpisode(historyID: UUID, now: Date) async throws {
        try await sql.raw("""
            UPDATE alert_instances SET state = \(bind: try Self.json(AlertInstanceState.inactive)), history_id = NULL, updated_at = \(bind: now)
            WHERE history_id = \(bind: historyID)
            """).run()
    }

    /// Sorted-keys JSON text, so that equal values give equal text.
    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// A notification claimed for delivery: one row of `alert_notifications`.
struct ClaimedNotification: Decodable, Sendable {
    var id: UUID
    var history_id: UUID
    /// The channel as JSON text (``AlertChannel``, sorted keys).
    var channel: String
    var kind: String
    /// The alert as JSON text (``StoredAlert``).
    var alert: String
    var attempts: Int
    var created_at: Date
}

/// Access to `alert_notifications`, the durable outbox.
///
/// Claims (migration `AddClaimToAlertNotifications`): a row being delivered stays `pending` and
/// carries `claimed_by` (the claiming outbox) and `claimed_until` (its lease). A row is
/// claimable when it is pending, due, unclaimed or its claim expired (a crashed claimer), and no
/// older row of the same alert and channel is still pending — so a newer notification is never
/// delivered before, or at the same time as, an older one, whichever instance delivers it.
/// Outcomes are recorded only on a row still pending and claimed by the one recording them.
struct AlertNotificationStore: Sendable {
    let sql: any SQLDatabase

    /// Queues one notification per channel of `channels` (`resolved` ones skip channels with
    /// `send_resolved: false`), due at once.
    func enqueue(_ kind: AlertNotificationKind, alert: OutgoingAlert, channels: [AlertChannel], historyID: UUID, now: Date) async throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        let alertJSON = String(decoding: try encoder.encode(StoredAlert(alert)), as: UTF8.self)
        for channel in channels where !(kind == .resolved && channel.sendResolved == false) {
            // Sorted keys: the same channel must give the same text, since ordering compares it.
            let channelJSON = try AlertInstanceStore.json(channel)
            try await sql.raw("""
                INSERT INTO alert_notifications (id, history_id, channel, kind, alert, status, attempts, next_attempt_at, created_at)
                VALUES (\(bind: UUID()), \(bind: historyID), \(bind: channelJSON), \(bind: kind.rawValue), \(bind: alertJSON),
                        \(bind: AlertNotificationStatus.pending.rawValue), 0, \(bind: now), \(bind: now))
                """).run()
        }
    }

    /// Claims at most `limit` claimable rows for `claimer` until `until`, in one statement
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for nor take
    /// each other's rows; SQLite: the conditional `UPDATE` runs alone, writes being serialised).
    /// - Returns: the claimed rows, oldest first.
    func claim(claimer: String, limit: Int, now: Date, until: Date) async throws -> [ClaimedNotification] {
        let pending = AlertNotificationStatus.pending.rawValue
        let dialect = SQLDialectKind(sql)
        let rows = try await sql.raw("""
            UPDATE alert_notifications SET claimed_by = \(bind: claimer), claimed_until = \(bind: until)
            WHERE id IN (
                SELECT n.id FROM alert_notifications n
                WHERE n.status = \(bind: pending) AND n.next_attempt_at <= \(bind: now)
                  AND (n.claimed_until IS NULL OR n.claimed_until <= \(bind: now))
                  AND NOT EXISTS (SELECT 1 FROM alert_notifications o
                                  WHERE o.history_id = n.history_id AND o.channel = n.channel AND o.status = \(bind: pending)
                                    AND (o.created_at < n.created_at OR (o.created_at = n.created_at AND o.id < n.id)))
                ORDER BY n.created_at, n.id LIMIT \(literal: limit) \(unsafeRaw: dialect.forUpdateSkipLocked))
            RETURNING id, history_id, channel, kind, alert, attempts, created_at
            """).all(decoding: ClaimedNotification.self)
        return rows.sorted { ($0.created_at, $0.id.uuidString) < ($1.created_at, $1.id.uuidString) }
    }

    /// Records a delivery of `id`, if `claimer` still holds it.
    /// - Returns: whether the row was updated (`false`: the claim was lost to expiry).
    @discardableResult
    func markDelivered(_ id: UUID, claimer: String, now: Date) async throws -> Bool {
        try await !sql.raw("""
            UPDATE alert_notifications SET status = \(bind: AlertNotificationStatus.delivered.rawValue), attempts = attempts + 1,
                delivered_at = \(bind: now), last_error = NULL, claimed_by = NULL, claimed_until = NULL
            WHERE id = \(bind: id) AND claimed_by = \(bind: claimer) AND status = \(bind: AlertNotificationStatus.pending.rawValue)
            RETURNING id
            """).all().isEmpty
    }

    /// Records a failed attempt of `id`, if `claimer` still holds it: `attempts`, the error, and
    /// either the next attempt's time (`pending`) or `failed` when `giveUp`; the claim is released.
    /// - Returns: whether the row was updated.
    @discardableResult
    func markFailed(_ id: UUID, claimer: String, attempts: Int, error: String, giveUp: Bool, nextAttemptAt: Date) async throws -> Bool {
        let status: AlertNotificationStatus = giveUp ? .failed : .pending
        return try await !sql.raw("""
            UPDATE alert_notifications SET attempts = \(bind: attempts), last_error = \(bind: String(error.prefix(500))),
                status = \(bind: status.rawValue), next_attempt_at = \(bind: nextAttemptAt), claimed_by = NULL, claimed_until = NULL
            WHERE id = \(bind: id) AND claimed_by = \(bind: claimer) AND status = \(bind: AlertNotificationStatus.pending.rawValue)
            RETURNING id
            """).all().isEmpty
    }

    /// Gives back claims of `claimer` that were not attempted (a pass stopped early).
    func release(_ ids: [UUID], claimer: String) async throws {
        guard !ids.isEmpty else { return }
        try await sql.raw("""
            UPDATE alert_notifications SET claimed_by = NULL, claimed_until = NULL
            WHERE id IN (\(binds: ids)) AND claimed_by = \(bind: claimer)
            """).run()
    }

    /// One notification as the alert detail endpoint shows it.
    struct Summary: Decodable, Sendable {
        var channel: String
        var kind: String
        var status: String
        var attempts: Int
        var last_error: String?
        var delivered_at: Date?
        var created_at: Date
    }

    /// The notifications of episode `historyID`, oldest first.
    func notifications(historyID: UUID) async throws -> [Summary] {
        try await sql.raw("""
            SELECT channel, kind, status, attempts, last_error, delivered_at, created_at FROM alert_notifications
            WHERE history_id = \(bind: historyID) ORDER BY created_at
            """).all(decoding: Summary.self)
    }
}

/// Access to `leases`: named, expiring leases held by one instance at a time.
struct LeaseStore: Sendable {
    let sql: any SQLDatabase

    /// The lease that lets one instance evaluate alert rules.
    static let alertEvaluator = "alert-evaluator"

    /// Takes or renews lease `name` for `holder` until `expires` (one atomic upsert): succeeds
    /// when the lease is free, already `holder`'s, or expired at `now`.
    /// - Returns: whether `holder` holds the lease now.
    func acquire(_ name: String, holder: String, expires: Date, now: Date) async throws -> Bool {
        let rows = try await sql.raw("""
            INSERT INTO leases (name, holder, expires_at) VALUES (\(bind: name), \(bind: holder), \(bind: expires))
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE leases.holder = excluded.holder OR leases.expires_at <= \(bind: now)
            RETURNING holder
            """).all()
        return !rows.isEmpty
    }
}
