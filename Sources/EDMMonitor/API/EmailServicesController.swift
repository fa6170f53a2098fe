import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// `/api/email-services`: create, list, read, update, delete, enable/disable and unfreeze.
/// Secrets (SMTP password, HTTP header values) are write-only: responses say whether one is
/// set, never what it is.
struct EmailServicesController: RouteCollection {
    /// Owns every rule of creating and changing a service.
    let catalog: EmailServiceCatalog
    /// The clock of the computed fields (state, next quota reset).
    let clock: any WallClock

    /// A service as the API returns it.
    struct ServiceDTO: Content {
        struct SMTPView: Content {
            var host: String
            var port: Int
            var security: String
            var username: String?
            var password_set: Bool
            var helo_name: String?
            var verify_certificate: Bool
            var trusted_ca_set: Bool
        }
        struct HTTPView: Content {
            var endpoint_url: String
            /// Header names only; values may be credentials.
            var header_names: [String]
            var body_template: String?
        }

        var id: UUID
        var name: String
        var provider: String
        var smtp: SMTPView?
        var http: HTTPView?
        var sender_address: String
        var sender_name: String?
        var daily_quota: Int
        var used_quota: Int
        var remaining_quota: Int
        var quota_reset_time: String
        var quota_timezone: String
        var next_quota_reset: Date?
        var sending_interval_seconds: Double
        var max_connections: Int
        /// `nil`: unlimited.
        var max_messages_per_connection: Int?
        /// 0: no rate limit.
        var rate_limit_per_second: Double
        var next_available_at: Date?
        var is_enabled: Bool
        var is_frozen: Bool
        var frozen_until: Date?
        var consecutive_failures: Int
        /// `disabled`, `frozen`, `quota_exhausted`, `paced` or `available`.
        var state: String
        var created_at: Date?
        var updated_at: Date?

        init(_ s: EmailService, now: Date) throws {
            id = try s.requireID()
            name = s.name
            provider = s.provider.rawValue
            smtp = s.providerConfig.smtp.map {
                SMTPView(host: $0.host, port: $0.port, security: $0.security.rawValue, username: $0.username,
                         password_set: !($0.password ?? "").isEmpty, helo_name: $0.heloName,
                         verify_certificate: $0.verifyCertificate, trusted_ca_set: $0.trustedCAPEM != nil)
            }
            http = s.providerConfig.http.map {
                HTTPView(endpoint_url: OutboundURL.redacted($0.endpointURL), header_names: $0.headers.keys.sorted(), body_template: $0.bodyTemplate)
            }
            sender_address = s.senderAddress
            sender_name = s.senderName
            daily_quota = s.dailyQuota
            used_quota = s.usedQuota
            remaining_quota = max(0, s.dailyQuota - s.usedQuota)
            quota_reset_time = s.quotaResetTime
            quota_timezone = s.quotaTimezone
            next_quota_reset = (try? QuotaResetSchedule(resetTime: s.quotaResetTime, timeZoneIdentifier: s.quotaTimezone))?.window(containing: now).nextReset
            sending_interval_seconds = s.sendingIntervalSeconds
            max_connections = s.maxConnections
            max_messages_per_connection = s.maxMessagesPerConnection
            rate_limit_per_second = s.rateLimitPerSecond
            next_available_at = s.nextAvailableAt
            is_enabled = s.isEnabled
            is_frozen = s.isFrozen
            frozen_until = s.frozenUntil
            consecutive_failures = s.consecutiveFailures
            state = ServiceState.of(s, now: now).rawValue
            created_at = s.createdAt
            updated_at = s.updatedAt
        }
    }

    func boot(routes: any RoutesBuilder) throws {
        let services = routes.grouped("api", "email-services")
        services.post(use: create)
        services.get(use: list)
        services.get(":id", use: get)
        services.patch(":id", use: update)
        services.put(":id", use: update)
        services.delete(":id", use: delete)
        services.post(":id", "enable", use: enable)
        services.post(":id", "disable", use: disable)
        services.post(":id", "unfreeze", use: unfreeze)
    }

    @Sendable func create(_ req: Request) async throws -> Response {
        let service = try await catalog.create(try req.jsonBody(EmailServiceInput.self), on: req.db)
        return try await ServiceDTO(service, now: clock.now()).encodeResponse(status: .created, for: req)
    }

    @Sendable func list(_ req: Request) async throws -> Page<ServiceDTO> {
        let page = try PageRequest(from: req)
        let (services, total) = try await catalog.list(offset: page.offset, limit: page.perPage, on: req.db)
        let now = clock.now()
        return Page(data: try services.map { try ServiceDTO($0, now: now) }, page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> ServiceDTO {
        try ServiceDTO(try await catalog.find(try id(req), on: req.db), now: clock.now())
    }

    @Sendable func update(_ req: Request) async throws -> ServiceDTO {
        // 404 before 400: an unknown service is reported as such whatever the body says.
        let service = try await catalog.find(try id(req), on: req.db)
        try await catalog.update(service, with: try req.jsonBody(EmailServiceInput.self), on: req.db)
        return try ServiceDTO(service, now: clock.now())
    }

    @Sendable func delete(_ req: Request) async throws -> HTTPStatus {
        try await catalog.delete(try id(req), on: req.db)
        return .noContent
    }

    @Sendable func enable(_ req: Request) async throws -> ServiceDTO {
        try ServiceDTO(try await catalog.setEnabled(try id(req), true, on: req.db), now: clock.now())
    }

    @Sendable func disable(_ req: Request) async throws -> ServiceDTO {
        try ServiceDTO(try await catalog.setEnabled(try id(req), false, on: req.db), now: clock.now())
    }

    @Sendable func unfreeze(_ req: Request) async throws -> ServiceDTO {
        try ServiceDTO(try await catalog.unfreeze(try id(req), on: req.db), now: clock.now())
    }

    private func id(_ req: Request) throws -> UUID {
        try req.uuidParameter("id", resource: "email service")
    }
}

/// Checks and redaction of URLs the server calls (HTTP mailer endpoints, alert webhooks).
enum OutboundURL {
    /// `text` with any user-info password (or a user name given alone, which may be a token),
    /// the fragment and every query value replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return DatabaseLocation.redactPassword(in: text) }
        if components.password != nil { components.password = "***" }
        if components.user != nil && components.password == nil { components.user = "***" }
        if components.fragment != nil { components.fragment = "***" }
        if let items = components.queryItems, !items.isEmpty {
            components.queryItems = items.map { URLQueryItem(name: $0.name, value: $0.value == nil ? nil : "***") }
        }
        return components.string ?? "<unparsable URL>"
    }

    /// A notification channel's URL as responses show it: ``redacted(_:)``, and the path hidden
    /// (`/***`) for Slack (an incoming-webhook URL's path is its secret) and, for webhooks, every
    /// path segment of 16 or more characters (the usual shape of an embedded token).
    static func redactedChannelURL(_ text: String, kind: String) -> String {
        let base = redacted(text)
        guard var components = URLComponents(string: base), !components.path.isEmpty, components.path != "/" else { return base }
        switch kind {
        case "slack":
            components.path = "/***"
        case "webhook":
            components.path = components.path.split(separator: "/", omittingEmptySubsequences: false)
                .map { $0.count >= 16 ? "***" : String($0) }.joined(separator: "/")
        default:
            break
        }
        return components.string ?? base
    }

    /// `channels` with every URL passed through ``redactedChannelURL(_:kind:)``.
    static func redactedChannels(_ channels: [JSONValue]) -> [JSONValue] {
        channels.map { channel in
            guard case .object(var object) = channel, case .string(let url)? = object["url"] else { return channel }
            let kind: String = if case .string(let type)? = object["type"] { type } else { "" }
            object["url"] = .string(redactedChannelURL(url, kind: kind))
            return .object(object)
        }
    }
}

/// Where a service stands for dispatch, in the order an operator should look at it.
public enum ServiceState: String, Sendable, Codable, CaseIterable {
    case disabled
    case frozen
    case quotaExhausted = "quota_exhausted"
    case paced
    case available

    /// The state of `service` at `now`.
    public static func of(_ service: EmailService, now: Date) -> ServiceState {
        if !service.isEnabled { return .disabled }
        if service.isFrozen && (service.frozenUntil.map { $0 > now } ?? true) { return .frozen }
        if service.usedQuota >= service.dailyQuota { return .quotaExhausted }
        if let next = service.nextAvailableAt, next > now { return .paced }
        return .available
    }
}
