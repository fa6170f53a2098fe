import FluentKit
import Foundation

/// A row of `api_tokens`: one bearer token of the HTTP API, known by the SHA-256 of its secret.
public final class APITokenRecord: Model, @unchecked Sendable {
    public static let schema = "api_tokens"

    @ID(key: .id) public var id: UUID?
    /// Unique label chosen by the admin who made it (`ci`, `grafana`, `alice`).
    @Field(key: "name") public var name: String
    /// `viewer`, `operator` or `admin` (``APIRole``).
    @Field(key: "role") public var role: String
    /// SHA-256 of the token, 64 lower-case hex digits; the token itself is never stored.
    @Field(key: "token_hash") public var tokenHash: String
    /// The token's first characters (`edm_ab12cd34`), to tell tokens apart in lists and logs.
    @Field(key: "prefix") public var prefix: String
    /// Who created it: a token name, `cli`, or `anonymous` (no token existed yet).
    @Field(key: "created_by") public var createdBy: String
    @OptionalField(key: "created_at") public var createdAt: Date?
    /// After this instant the token is refused; `nil` = never expires.
    @OptionalField(key: "expires_at") public var expiresAt: Date?
    /// Last accepted use, updated at most once a minute.
    @OptionalField(key: "last_used_at") public var lastUsedAt: Date?
    /// When it was revoked; a revoked token is refused for good.
    @OptionalField(key: "revoked_at") public var revokedAt: Date?

    public init() {}

    /// Whether the token is accepted at `now`: not revoked and not expired.
    public func isActive(at now: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { now < $0 } ?? true)
    }
}

/// A row of `monitoring_config_changes`: one change of one run-time monitoring setting.
public final class MonitoringConfigChange: Model, @unchecked Sendable {
    public static let schema = "monitoring_config_changes"

    @ID(key: .id) public var id: UUID?
    /// The setting, e.g. `stuck_threshold_seconds`.
    @Field(key: "key") public var key: String
    /// The value in force before, as JSON text (`300`, `true`).
    @OptionalField(key: "old_value") public var oldValue: String?
    /// The value in force after, as JSON text.
    @OptionalField(key: "new_value") public var newValue: String?
    /// The token name of who changed it (`anonymous` when the API is open).
    @Field(key: "changed_by") public var changedBy: String
    @Field(key: "changed_at") public var changedAt: Date
    /// The `X-Request-ID` of the request that made the change.
    @OptionalField(key: "request_id") public var requestID: String?

    public init() {}
}
