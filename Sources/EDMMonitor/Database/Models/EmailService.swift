import EDMMonitorCore
import FluentKit
import Foundation

/// A row of `email_services`: an SMTP relay, an HTTP sending API or a dry-run sink.
public final class EmailService: Model, @unchecked Sendable {
    public static let schema = "email_services"

    /// How messages leave through this service.
    public enum Provider: String, Codable, CaseIterable, Sendable {
        case smtp
        case http
        case dryRun = "dry_run"
    }

    // managed
    @ID(key: .id) public var id: UUID?
    /// Set from the injected clock by the code that creates the row (not Fluent's `Date()`),
    /// so time-based behaviour is testable.
    @OptionalField(key: "created_at") public var createdAt: Date?
    @OptionalField(key: "updated_at") public var updatedAt: Date?

    // data
    @Field(key: "name") public var name: String
    @Field(key: "provider") public var provider: Provider
    /// Provider settings; holds secrets, never returned as is by the API.
    @Field(key: "provider_config") public var providerConfig: ProviderConfig
    /// Envelope sender (MAIL FROM) and From address.
    @Field(key: "sender_address") public var senderAddress: String
    @OptionalField(key: "sender_name") public var senderName: String?
    /// Messages allowed per quota day, ≥ 0 (0: the service sends nothing).
    @Field(key: "daily_quota") public var dailyQuota: Int
    /// Messages sent in the current quota day, 0…`dailyQuota`.
    @Field(key: "used_quota") public var usedQuota: Int
    /// The local day (`YYYY-MM-DD` in `quotaTimezone`) that `usedQuota` counts.
    @OptionalField(key: "quota_day") public var quotaDay: String?
    /// Local reset time `HH:MM`.
    @Field(key: "quota_reset_time") public var quotaResetTime: String
    /// IANA time zone of the reset time, e.g. `America/New_York`.
    @Field(key: "quota_timezone") public var quotaTimezone: String
    /// Least gap between two sends through this service, seconds ≥ 0.
    @Field(key: "sending_interval_seconds") public var sendingIntervalSeconds: Double
    /// Not before this instant may the next message go out (pacing).
    @OptionalField(key: "next_available_at") public var nextAvailableAt: Date?
    @Field(key: "is_enabled") public var isEnabled: Bool
    /// Paused after consecutive failures, until `frozenUntil` (or until unfrozen by hand).
    @Field(key: "is_frozen") public var isFrozen: Bool
    @OptionalField(key: "frozen_until") public var frozenUntil: Date?
    @Field(key: "consecutive_failures") public var consecutiveFailures: Int
    /// Sends of this service in flight at once, across all instances together, 1…100.
    @Field(key: "max_connections") public var maxConnections: Int
    /// Messages one SMTP connection carries before it is closed; `nil`: unlimited, else ≥ 1.
    @OptionalField(key: "max_messages_per_connection") public var maxMessagesPerConnection: Int?
    /// Token-bucket rate limit, messages per second ≥ 0 (0: none; fractions allowed).
    @Field(key: "rate_limit_per_second") public var rateLimitPerSecond: Double
    /// Tokens left in the rate-limit bucket at `rateTokensAt`; `nil`: full.
    @OptionalField(key: "rate_tokens") public var rateTokens: Double?
    @OptionalField(key: "rate_tokens_at") public var rateTokensAt: Date?

    public init() {}

    /// Creates a service; `id` is generated on save when `nil`.
    public init(
        id: UUID? = nil, name: String, provider: Provider, providerConfig: ProviderConfig = .init(),
        senderAddress: String, senderName: String? = nil, dailyQuota: Int, quotaResetTime: String = "00:00",
        quotaTimezone: String = "UTC", sendingIntervalSeconds: Double = 0, isEnabled: Bool = true,
        maxConnections: Int = 4, maxMessagesPerConnection: Int? = nil, rateLimitPerSecond: Double = 0
    ) {
        self.id = id
        self.name = name
        self.provider = provider
        self.providerConfig = providerConfig
        self.senderAddress = senderAddress
        self.senderName = senderName
        self.dailyQuota = dailyQuota
        self.usedQuota = 0
        self.quotaResetTime = quotaResetTime
        self.quotaTimezone = quotaTimezone
        self.sendingIntervalSeconds = sendingIntervalSeconds
        self.isEnabled = isEnabled
        self.isFrozen = false
        self.consecutiveFailures = 0
        self.maxConnections = maxConnections
        self.maxMessagesPerConnection = maxMessagesPerConnection
        self.rateLimitPerSecond = rateLimitPerSecond
    }
}

/// Provider settings of an email service (`email_services.provider_config`).
public struct ProviderConfig: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Settings of an `smtp` service.
    public var smtp: SMTPSettings?
    /// Settings of an `http` service.
    public var http: HTTPSettings?

    public init(smtp: SMTPSettings? = nil, http: HTTPSettings? = nil) {
        self.smtp = smtp
        self.http = http
    }
}

/// How to reach an SMTP relay.
public struct SMTPSettings: Codable, Sendable, Equatable {
    /// Transport security: none, STARTTLS (RFC 3207) or implicit TLS (RFC 8314).
    public enum Security: String, Codable, Sendable, CaseIterable {
        case none, starttls, tls
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var username: String?
    /// Secret: write-only through the API, never logged.
    public var password: String?
    /// The EHLO name; defaults to the sender's domain.
    public var heloName: String?
    /// Verify the server certificate (on unless a test server needs otherwise).
    public var verifyCertificate: Bool
    /// An extra CA certificate (PEM) to trust, e.g. a private relay's.
    public var trustedCAPEM: String?

    public init(host: String, port: Int, security: Security = .none, username: String? = nil, password: String? = nil, heloName: String? = nil, verifyCertificate: Bool = true, trustedCAPEM: String? = nil) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.heloName = heloName
        self.verifyCertificate = verifyCertificate
        self.trustedCAPEM = trustedCAPEM
    }

    enum CodingKeys: String, CodingKey {
        case host, port, security, username, password
        case heloName = "helo_name"
        case verifyCertificate = "verify_certificate"
        case trustedCAPEM = "trusted_ca_pem"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decode(String.self, forKey: .host)
        port = try c.decode(Int.self, forKey: .port)
        security = try c.decodeIfPresent(Security.self, forKey: .security) ?? .none
        username = try c.decodeIfPresent(String.self, forKey: .username)
        password = try c.decodeIfPresent(String.self, forKey: .password)
        heloName = try c.decodeIfPresent(String.self, forKey: .heloName)
        verifyCertificate = try c.decodeIfPresent(Bool.self, forKey: .verifyCertificate) ?? true
        trustedCAPEM = try c.decodeIfPresent(String.self, forKey: .trustedCAPEM)
    }
}

/// How to call an HTTP sending API.
public struct HTTPSettings: Codable, Sendable, Equatable {
    /// `http` or `https` URL that receives one POST per message.
    public var endpointURL: String
    /// Request headers (e.g. `Authorization`); values are secrets, never returned or logged.
    public var headers: [String: String]
    /// Mustache template of the JSON body; `nil` sends ``HTTPMailer/defaultBody``.
    public var bodyTemplate: String?

    public init(endpointURL: String, headers: [String: String] = [:], bodyTemplate: String? = nil) {
        self.endpointURL = endpointURL
        self.headers = headers
        self.bodyTemplate = bodyTemplate
    }

    enum CodingKeys: String, CodingKey {
        case endpointURL = "endpoint_url"
        case headers
        case bodyTemplate = "body_template"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        endpointURL = try c.decode(String.self, forKey: .endpointURL)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
        bodyTemplate = try c.decodeIfPresent(String.self, forKey: .bodyTemplate)
    }
}

extension ProviderConfig {
    /// What logs may show of it: the provider kinds present, never a host, user, password,
    /// endpoint or header (FluentKit logs bound values with `description` at debug level).
    public var description: String {
        "ProviderConfig(smtp: \(smtp == nil ? "none" : "<redacted>"), http: \(http == nil ? "none" : "<redacted>"))"
    }
}
