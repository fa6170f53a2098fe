import EDMMonitorCore
import FluentKit
import Vapor
import Foundation

/// The settings of an email service as clients write them (JSON body of
/// `POST/PUT/PATCH /api/email-services`, flags of `edm-monitor service add`). On create the
/// required fields must be present; on update every field is optional and absent means unchanged.
public struct EmailServiceInput: Codable, Sendable, Equatable {
    /// SMTP settings.
    public struct SMTP: Codable, Sendable, Equatable {
        public var host: String?
        public var port: Int?
        /// `none`, `starttls` or `tls`.
        public var security: String?
        public var username: String?
        /// Write-only: never returned.
        public var password: String?
        public var helo_name: String?
        public var verify_certificate: Bool?
        public var trusted_ca_pem: String?

        public init(host: String? = nil, port: Int? = nil, security: String? = nil, username: String? = nil, password: String? = nil,
                    helo_name: String? = nil, verify_certificate: Bool? = nil, trusted_ca_pem: String? = nil) {
            self.host = host
            self.port = port
            self.security = security
            self.username = username
            self.password = password
            self.helo_name = helo_name
            self.verify_certificate = verify_certificate
            self.trusted_ca_pem = trusted_ca_pem
        }
    }

    /// HTTP mailer settings.
    public struct HTTP: Codable, Sendable, Equatable {
        public var endpoint_url: String?
        /// Header values are write-only (they may be credentials).
        public var headers: [String: String]?
        public var body_template: String?

        public init(endpoint_url: String? = nil, headers: [String: String]? = nil, body_template: String? = nil) {
            self.endpoint_url = endpoint_url
            self.headers = headers
            self.body_template = body_template
        }
    }

    public var name: String?
    /// `smtp`, `http` or `dry_run`.
    public var provider: String?
    public var smtp: SMTP?
    public var http: HTTP?
    public var sender_address: String?
    public var sender_name: String?
    /// Messages per quota day, 0…1,000,000,000.
    public var daily_quota: Int?
    /// Local `HH:MM` at which the quota resets (default `00:00`).
    public var quota_reset_time: String?
    /// IANA time zone of the reset time (default `UTC`).
    public var quota_timezone: String?
    /// Least seconds between two sends, 0…86,400 (default 0).
    public var sending_interval_seconds: Double?
    /// Default `true` on create.
    public var is_enabled: Bool?
    /// Sends in flight at once across all instances, 1…100 (default 4).
    public var max_connections: Int?
    /// Messages per SMTP connection, ≥ 1; JSON `null` (or absent on create): unlimited.
    public var max_messages_per_connection: Int?
    /// `true` when the body gave `"max_messages_per_connection": null` (clears the limit on update).
    public var max_messages_per_connection_unlimited: Bool
    /// Token-bucket rate, messages per second, 0…1,000,000 (0 = none, default; fractions allowed).
    public var rate_limit_per_second: Double?
    /// Whole-number fields the JSON body gave as a fraction or a number beyond any count
    /// (`2.5`, `1e30`): reported with the other problems, naming the field. (Foundation's
    /// decoder reports those as "not valid JSON" for the whole body.)
    public var notWholeNumbers: [String] = []

    enum CodingKeys: String, CodingKey {
        case name, provider, smtp, http, sender_address, sender_name, daily_quota, quota_reset_time, quota_timezone
        case sending_interval_seconds, is_enabled, max_connections, max_messages_per_connection, rate_limit_per_second
    }

    public init(name: String? = nil, provider: String? = nil, smtp: SMTP? = nil, http: HTTP? = nil, sender_address: String? = nil,
                sender_name: String? = nil, daily_quota: Int? = nil, quota_reset_time: String? = nil, quota_timezone: String? = nil,
                sending_interval_seconds: Double? = nil, is_enabled: Bool? = nil, max_connections: Int? = nil,
                max_messages_per_connection: Int? = nil, max_messages_per_connection_unlimited: Bool = false, rate_limit_per_second: Double? = nil) {
        self.max_connections = max_connections
        self.max_messages_per_connection = max_messages_per_connection
        self.max_messages_per_connection_unlimited = max_messages_per_connection_unlimited
        self.rate_limit_per_second = rate_limit_per_second
        self.name = name
        self.provider = provider
        self.smtp = smtp
        self.http = http
        self.sender_address = sender_address
        self.sender_name = sender_name
        self.daily_quota = daily_quota
        self.quota_reset_time = quota_reset_time
        self.quota_timezone = quota_timezone
        self.sending_interval_seconds = sending_interval_seconds
        self.is_enabled = is_enabled
    }

    /// Decodes every field as optional, telling an explicit `null` of
    /// `max_messages_per_connection` (unlimited) from its absence (unchanged).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        provider = try c.decodeIfPresent(String.self, forKey: .provider)
        smtp = try c.decodeIfPresent(SMTP.self, forKey: .smtp)
        http = try c.decodeIfPresent(HTTP.self, forKey: .http)
        sender_address = try c.decodeIfPresent(String.self, forKey: .sender_address)
        sender_name = try c.decodeIfPresent(String.self, forKey: .sender_name)
        var notWhole: [String] = []
        /// A JSON number that must be a whole count: read as a double, refused when it is not one.
        func wholeNumber(_ key: CodingKeys) throws -> Int? {
            guard let value = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
            guard value.rounded() == value, abs(value) < 1e15 else { notWhole.append(key.rawValue); return nil }
            return Int(value)
        }
        daily_quota = try wholeNumber(.daily_quota)
        quota_reset_time = try c.decodeIfPresent(String.self, forKey: .quota_reset_time)
        quota_timezone = try c.decodeIfPresent(String.self, forKey: .quota_timezone)
        sending_interval_seconds = try c.decodeIfPresent(Double.self, forKey: .sending_interval_seconds)
        is_enabled = try c.decodeIfPresent(Bool.self, forKey: .is_enabled)
        max_connections = try wholeNumber(.max_connections)
        max_messages_per_connection = try wholeNumber(.max_messages_per_connection)
        max_messages_per_connection_unlimited = try c.contains(.max_messages_per_connection) && c.decodeNil(forKey: .max_messages_per_connection)
        rate_limit_per_second = try c.decodeIfPresent(Double.self, forKey: .rate_limit_per_second)
        notWholeNumbers = notWhole
    }
}

/// Why an email service cannot be created, changed or found.
public enum EmailServiceError: DomainError, Equatable {
    /// 400 `validation_failed`: every bad field at once. On the CLI the fields are flags: exit 2.
    case invalid([APIErrorDetail])
    /// 409 `conflict`: the name belongs to another service.
    case nameTaken(String)
    /// 404 `not_found`.
    case notFound(UUID)

    public var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .nameTaken: .conflict
        case .notFound: .notFound
        }
    }

    public var code: APIErrorCode {
        switch self {
        case .invalid: .validationFailed
        case .nameTaken: .conflict
        case .notFound: .notFound
        }
    }

    public var message: String {
        switch self {
        case .invalid: "the email service is invalid"
        case .nameTaken(let name): "an email service named \(name) already exists"
        case .notFound(let id): "no email service with id \(id)"
        }
    }

    public var details: [APIErrorDetail] {
        switch self {
        case .invalid(let details): details
        case .nameTaken: [.init(field: "name", reason: "already taken")]
        case .notFound: []
        }
    }

    public var exitStatus: Int32 {
        if case .invalid = self { return 2 }
        return 1
    }
}

/// Creating, changing and removing email services: the one owner of their rules, used by the API
/// (`/api/email-services`), the CLI (`edm-monitor service add`) and the demo data.
///
/// Every change stamps `updated_at`, which versions the settings: the scheduler rebuilds a
/// service's mailer when it changes.
public struct EmailServiceCatalog: Sendable {
    /// The clock of `created_at` / `updated_at`.
    public var clock: any WallClock
    /// What an HTTP mailer's endpoint may be.
    public var outbound: OutboundPolicy

    public init(clock: any WallClock, outbound: OutboundPolicy) {
        self.clock = clock
        self.outbound = outbound
    }

    /// The service with `id`. - Throws: ``EmailServiceError/notFound(_:)``.
    public func find(_ id: UUID, on db: any Database) async throws -> EmailService {
        guard let service = try await EmailService.find(id, on: db) else { throw EmailServiceError.notFound(id) }
        return service
    }

    /// One page of services sorted by name, and the number of all services.
    public func list(offset: Int, limit: Int, on db: any Database) async throws -> (services: [EmailService], total: Int) {
        let query = EmailService.query(on: db).sort(\.$name)
        let total = try await query.copy().count()
        return (try await query.copy().range(offset..<(offset + limit)).all(), total)
    }

    /// Validates `input` and creates the service (enabled unless `is_enabled` is false, quota
    /// unused, not frozen).
    /// - Throws: ``EmailServiceError/invalid(_:)`` listing every bad field (nothing is written),
    ///   ``EmailServiceError/nameTaken(_:)``.
    @discardableResult
    public func create(_ input: EmailServiceInput, on db: any Database) async throws -> EmailService {
        let service = EmailService()
        service.usedQuota = 0
        service.isFrozen = false
        service.consecutiveFailures = 0
        try Self.apply(input, to: service, creating: true, outbound: outbound)
        service.createdAt = clock.now()
        service.updatedAt = service.createdAt
        try await Self.save(service, on: db)
        return service
    }

    /// Applies the fields given in `input` to the service `id` (PUT and PATCH alike).
    /// - Throws: ``EmailServiceError`` `.notFound`, `.invalid` (nothing is written), `.nameTaken`.
    public func update(_ id: UUID, with input: EmailServiceInput, on db: any Database) async throws -> EmailService {
        try await update(try await find(id, on: db), with: input, on: db)
    }

    /// Applies the fields given in `input` to `service`, read a moment ago with ``find(_:on:)``.
    /// - Throws: ``EmailServiceError`` `.invalid` (nothing is written), `.nameTaken`.
    @discardableResult
    public func update(_ service: EmailService, with input: EmailServiceInput, on db: any Database) async throws -> EmailService {
        try Self.apply(input, to: service, creating: false, outbound: outbound)
        service.updatedAt = clock.now()
        try await Self.save(service, on: db)
        return service
    }

    /// Deletes the service `id`. - Throws: ``EmailServiceError/notFound(_:)``.
    public func delete(_ id: UUID, on db: any Database) async throws {
        try await find(id, on: db).delete(on: db)
    }

    /// Enables or disables the service `id` for dispatch. - Throws: ``EmailServiceError/notFound(_:)``.
    public func setEnabled(_ id: UUID, _ enabled: Bool, on db: any Database) async throws -> EmailService {
        let service = try await find(id, on: db)
        service.isEnabled = enabled
        try await service.save(on: db)
        return service
    }

    /// Lifts a freeze (after repeated failures) and clears the failure count.
    /// - Throws: ``EmailServiceError/notFound(_:)``.
    public func unfreeze(_ id: UUID, on db: any Database) async throws -> EmailService {
        let service = try await find(id, on: db)
        service.isFrozen = false
        service.frozenUntil = nil
        service.consecutiveFailures = 0
        service.nextAvailableAt = nil
        try await service.save(on: db)
        return service
    }

    /// Saves `service`, refusing a name another service has.
    /// - Throws: ``EmailServiceError/nameTaken(_:)``; a concurrent save of the same name still
    ///   fails on the UNIQUE constraint (answered 409 by the API as well).
    static func save(_ service: EmailService, on db: any Database) async throws {
        let others = EmailService.query(on: db).filter(\.$name == service.name)
        if let id = service.id { others.filter(\.$id != id) }
        if try await others.first() != nil { throw EmailServiceError.nameTaken(service.name) }
        try await service.save(on: db)
    }

    /// Validates `input` and applies it to `service`. On create the required fields must be present.
    /// - Throws: ``EmailServiceError/invalid(_:)`` listing every bad field; `service` is then left
    ///   partly changed, and the caller does not save it.
    static func apply(_ input: EmailServiceInput, to service: EmailService, creating: Bool, outbound: OutboundPolicy) throws {
        var details: [APIErrorDetail] = input.notWholeNumbers.map { .init(field: $0, reason: "must be a whole number") }
        func require<T>(_ value: T?, _ field: String) -> T? {
            if value == nil && creating && !input.notWholeNumbers.contains(field) { details.append(.init(field: field, reason: "is required")) }
            return value
        }

        if let name = require(input.name, "name") {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.count > 100 { details.append(.init(field: "name", reason: "must be 1 to 100 characters")) }
            service.name = trimmed
        }
        if let raw = require(input.provider, "provider") {
            if let provider = EmailService.Provider(rawValue: raw) {
                service.provider = provider
            } else {
                details.append(.init(field: "provider", reason: "must be one of smtp, http, dry_run"))
            }
        }
        if let address = require(input.sender_address, "sender_address") {
            switch EmailAddress.validate(address) {
            case .success(let valid): service.senderAddress = valid.address
            case .failure(let problem): details.append(.init(field: "sender_address", reason: problem.message))
            }
        }
        if let name = input.sender_name {
            if name.count > 200 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                details.append(.init(field: "sender_name", reason: "must be at most 200 characters, without line breaks or control characters"))
            }
            service.senderName = name.isEmpty ? nil : name
        }
        if let quota = require(input.daily_quota, "daily_quota") {
            if quota < 0 || quota > 1_000_000_000 { details.append(.init(field: "daily_quota", reason: "must be from 0 to 1000000000")) }
            service.dailyQuota = quota
            if !creating && service.usedQuota > quota { service.usedQuota = max(0, quota) }
        }
        let resetTime = input.quota_reset_time ?? (creating ? "00:00" : service.quotaResetTime)
        let timezone = input.quota_timezone ?? (creating ? "UTC" : service.quotaTimezone)
        do {
            _ = try QuotaResetTime(parsing: resetTime)
            service.quotaResetTime = resetTime
        } catch {
            details.append(.init(field: "quota_reset_time", reason: "must be HH:MM from 00:00 to 23:59"))
        }
        if (try? QuotaResetSchedule(resetTime: "00:00", timeZoneIdentifier: timezone)) == nil {
            details.append(.init(field: "quota_timezone", reason: "must be an IANA time zone such as UTC or America/New_York"))
        } else {
            if !creating && timezone != service.quotaTimezone { service.quotaDay = nil }
            service.quotaTimezone = timezone
        }
        if let interval = input.sending_interval_seconds {
            if !interval.isFinite || interval < 0 || interval > 86_400 {
                details.append(.init(field: "sending_interval_seconds", reason: "must be from 0 to 86400"))
            }
            // The pacing computed from the old value no longer holds.
            if !creating && interval != service.sendingIntervalSeconds { service.nextAvailableAt = nil }
            service.sendingIntervalSeconds = interval
        } else if creating {
            service.sendingIntervalSeconds = 0
        }
        if let enabled = input.is_enabled { service.isEnabled = enabled } else if creating { service.isEnabled = true }
        if let connections = input.max_connections {
            if !(1...100).contains(connections) { details.append(.init(field: "max_connections", reason: "must be from 1 to 100")) }
            service.maxConnections = connections
        } else if creating {
            service.maxConnections = 4
        }
        if let perConnection = input.max_messages_per_connection {
            if perConnection < 1 { details.append(.init(field: "max_messages_per_connection", reason: "must be at least 1, or null for unlimited")) }
            service.maxMessagesPerConnection = perConnection
        } else if creating || input.max_messages_per_connection_unlimited {
            service.maxMessagesPerConnection = nil
        }
        if let rate = input.rate_limit_per_second {
            // Below one message in 1,000 s a rate is a typo (1e-320 would park the service for
            // millennia), and the next send would be scheduled beyond any fix.
            if !rate.isFinite || (rate != 0 && rate < 0.001) || rate < 0 || rate > 1_000_000 {
                details.append(.init(field: "rate_limit_per_second", reason: "must be 0 (no limit) or from 0.001 to 1000000"))
            }
            // A new rate starts with a full bucket, and the pacing of the old one is dropped.
            if creating || rate != service.rateLimitPerSecond { service.rateTokens = nil; service.rateTokensAt = nil; service.nextAvailableAt = nil }
            service.rateLimitPerSecond = rate
        } else if creating {
            service.rateLimitPerSecond = 0
        }

        var config = creating ? ProviderConfig() : service.providerConfig
        let provider = EmailService.Provider(rawValue: input.provider ?? "") ?? (creating ? nil : service.provider)
        switch provider {
        case .smtp?:
            let given = input.smtp ?? EmailServiceInput.SMTP()
            if creating && input.smtp == nil { details.append(.init(field: "smtp", reason: "is required for provider smtp")) }
            let old = config.smtp
            let host = given.host ?? old?.host ?? ""
            if host.isEmpty || host.count > 253 || host.contains(where: { $0.isWhitespace || $0 == "/" }) {
                details.append(.init(field: "smtp.host", reason: "must be a host name or IP address"))
            }
            let port = given.port ?? old?.port ?? 25
            if !(1...65535).contains(port) { details.append(.init(field: "smtp.port", reason: "must be from 1 to 65535")) }
            var security = old?.security ?? .none
            if let raw = given.security {
                if let value = SMTPSettings.Security(rawValue: raw) { security = value } else {
                    details.append(.init(field: "smtp.security", reason: "must be one of none, starttls, tls"))
                }
            }
            if let pem = given.trusted_ca_pem, !pem.contains("-----BEGIN CERTIFICATE-----") {
                details.append(.init(field: "smtp.trusted_ca_pem", reason: "must be a PEM certificate"))
            }
            if let helo = given.helo_name, !helo.isEmpty, !Settings.isValidHost(helo) {
                details.append(.init(field: "smtp.helo_name", reason: "must be a host name or IP address"))
            }
            // An empty string clears the user name (no AUTH).
            let username = (given.username ?? old?.username).flatMap { $0.isEmpty ? nil : $0 }
            if username != nil && security == .none {
                details.append(.init(field: "smtp.security", reason: "credentials are only sent over TLS: set starttls or tls, or remove the username"))
            }
            if let name = username, name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                details.append(.init(field: "smtp.username", reason: "must not contain control characters"))
            }
            config.smtp = SMTPSettings(
                host: host, port: port, security: security,
                username: username,
                password: given.password ?? old?.password,
                heloName: (given.helo_name ?? old?.heloName).flatMap { $0.isEmpty ? nil : $0 },
                verifyCertificate: given.verify_certificate ?? old?.verifyCertificate ?? true,
                trustedCAPEM: given.trusted_ca_pem ?? old?.trustedCAPEM
            )
            config.http = nil
        case .http?:
            if creating && input.http == nil { details.append(.init(field: "http", reason: "is required for provider http")) }
            let old = config.http
            let endpoint = input.http?.endpoint_url ?? old?.endpointURL ?? ""
            if input.http?.endpoint_url?.contains("***") == true {
                details.append(.init(field: "http.endpoint_url", reason: "contains *** (a redacted URL from a response); send the real URL, or leave endpoint_url out to keep the stored one"))
            } else if let problem = outbound.problem(url: endpoint) {
                details.append(.init(field: "http.endpoint_url", reason: problem))
            }
            let headers = input.http?.headers ?? old?.headers ?? [:]
            for name in headers.keys where name.isEmpty || name.contains(where: { !$0.isASCII || $0 == ":" || $0.isWhitespace }) {
                details.append(.init(field: "http.headers", reason: "invalid header name \(name)"))
            }
            // Never echo a value back: it may be a credential.
            for (name, value) in headers where value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                details.append(.init(field: "http.headers.\(name)", reason: "the value must not contain line breaks or control characters"))
            }
            let template = input.http?.body_template ?? old?.bodyTemplate
            if let template, (try? MessageTemplates(subject: "x", text: template, html: nil)) == nil {
                details.append(.init(field: "http.body_template", reason: "template does not parse"))
            }
            config.http = HTTPSettings(endpointURL: endpoint, headers: headers, bodyTemplate: template)
            config.smtp = nil
        case .dryRun?:
            config = ProviderConfig()
        case nil:
            break
        }
        service.providerConfig = config

        guard details.isEmpty else { throw EmailServiceError.invalid(details) }
    }
}
