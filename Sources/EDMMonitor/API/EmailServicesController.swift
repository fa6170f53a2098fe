import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// `/api/email-services`: create, list, read, update, delete, enable/disable and unfreeze.
/// Secrets (SMTP password, HTTP header values) are write-only: responses say whether one is
/// set, never what it is.
struct EmailServicesController: RouteCollection {
    /// SMTP settings as written by clients.
    struct SMTPBody: Content {
        var host: String?
        var port: Int?
        var security: String?
        var username: String?
        var password: String?
        var helo_name: String?
        var verify_certificate: Bool?
        var trusted_ca_pem: String?
    }

    /// HTTP settings as written by clients.
    struct HTTPBody: Content {
        var endpoint_url: String?
        var headers: [String: String]?
        var body_template: String?
    }

    /// Create and update body; on update every field is optional and absent means unchanged.
    struct WriteBody: Content {
        var name: String?
        var provider: String?
        var smtp: SMTPBody?
        var http: HTTPBody?
        var sender_address: String?
        var sender_name: String?
        var daily_quota: Int?
        var quota_reset_time: String?
        var quota_timezone: String?
        var sending_interval_seconds: Double?
        var is_enabled: Bool?
    }

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
        let body = try req.content.decode(WriteBody.self)
        let service = EmailService()
        service.usedQuota = 0
        service.isFrozen = false
        service.consecutiveFailures = 0
        try Self.apply(body, to: service, creating: true, outbound: req.edm.outbound)
        service.createdAt = req.edm.clock.now()
        service.updatedAt = service.createdAt
        try await Self.saveHandlingConflicts(service, on: req.db)
        return try await ServiceDTO(service, now: req.edm.clock.now()).encodeResponse(status: .created, for: req)
    }

    @Sendable func list(_ req: Request) async throws -> Page<ServiceDTO> {
        let page = try PageRequest(from: req)
        let (services, total) = try await EmailService.query(on: req.db).sort(\.$name).page(page)
        let now = req.edm.clock.now()
        return Page(data: try services.map { try ServiceDTO($0, now: now) }, page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> ServiceDTO {
        try ServiceDTO(try await find(req), now: req.edm.clock.now())
    }

    @Sendable func update(_ req: Request) async throws -> ServiceDTO {
        let service = try await find(req)
        let body = try req.content.decode(WriteBody.self)
        try Self.apply(body, to: service, creating: false, outbound: req.edm.outbound)
        // `updated_at` versions the settings: the scheduler rebuilds the service's mailer.
        service.updatedAt = req.edm.clock.now()
        try await Self.saveHandlingConflicts(service, on: req.db)
        return try ServiceDTO(service, now: req.edm.clock.now())
    }

    @Sendable func delete(_ req: Request) async throws -> HTTPStatus {
        let service = try await find(req)
        try await service.delete(on: req.db)
        return .noContent
    }

    @Sendable func enable(_ req: Request) async throws -> ServiceDTO { try await setEnabled(req, true) }
    @Sendable func disable(_ req: Request) async throws -> ServiceDTO { try await setEnabled(req, false) }

    @Sendable func unfreeze(_ req: Request) async throws -> ServiceDTO {
        let service = try await find(req)
        service.isFrozen = false
        service.frozenUntil = nil
        service.consecutiveFailures = 0
        try await service.save(on: req.db)
        return try ServiceDTO(service, now: req.edm.clock.now())
    }

    private func setEnabled(_ req: Request, _ enabled: Bool) async throws -> ServiceDTO {
        let service = try await find(req)
        service.isEnabled = enabled
        try await service.save(on: req.db)
        return try ServiceDTO(service, now: req.edm.clock.now())
    }

    private func find(_ req: Request) async throws -> EmailService {
        let id = try req.uuidParameter("id", resource: "email service")
        guard let service = try await EmailService.find(id, on: req.db) else { throw APIError.notFound("no email service with id \(id)") }
        return service
    }

    static func saveHandlingConflicts(_ service: EmailService, on db: any Database) async throws {
        let others = EmailService.query(on: db).filter(\.$name == service.name)
        if let id = service.id { others.filter(\.$id != id) }
        if try await others.first() != nil {
            throw APIError(.conflict, .conflict, "an email service named \(service.name) already exists", details: [.init(field: "name", reason: "already taken")])
        }
        // A concurrent create of the same name still fails on the UNIQUE constraint: 409 too.
        try await service.save(on: db)
    }

    /// Validates `body` and applies it to `service`. On create the required fields must be present.
    /// - Throws: ``APIError`` 400 listing every bad field; `service` is then left partly changed,
    ///   and the caller does not save it.
    static func apply(_ body: WriteBody, to service: EmailService, creating: Bool, outbound: OutboundPolicy) throws {
        var details: [APIErrorDetail] = []
        func require<T>(_ value: T?, _ field: String) -> T? {
            if value == nil && creating { details.append(.init(field: field, reason: "is required")) }
            return value
        }

        if let name = require(body.name, "name") {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.count > 100 { details.append(.init(field: "name", reason: "must be 1 to 100 characters")) }
            service.name = trimmed
        }
        if let raw = require(body.provider, "provider") {
            if let provider = EmailService.Provider(rawValue: raw) {
                service.provider = provider
            } else {
                details.append(.init(field: "provider", reason: "must be one of smtp, http, dry_run"))
            }
        }
        if let address = require(body.sender_address, "sender_address") {
            switch EmailAddress.validate(address) {
            case .success(let valid): service.senderAddress = valid.address
            case .failure(let problem): details.append(.init(field: "sender_address", reason: problem.message))
            }
        }
        if let name = body.sender_name {
            if name.count > 200 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                details.append(.init(field: "sender_name", reason: "must be at most 200 characters, without line breaks or control characters"))
            }
            service.senderName = name.isEmpty ? nil : name
        }
        if let quota = require(body.daily_quota, "daily_quota") {
            if quota < 0 || quota > 1_000_000_000 { details.append(.init(field: "daily_quota", reason: "must be from 0 to 1000000000")) }
            service.dailyQuota = quota
            if !creating && service.usedQuota > quota { service.usedQuota = max(0, quota) }
        }
        let resetTime = body.quota_reset_time ?? (creating ? "00:00" : service.quotaResetTime)
        let timezone = body.quota_timezone ?? (creating ? "UTC" : service.quotaTimezone)
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
        if let interval = body.sending_interval_seconds {
            if !interval.isFinite || interval < 0 || interval > 86_400 {
                details.append(.init(field: "sending_interval_seconds", reason: "must be from 0 to 86400"))
            }
            service.sendingIntervalSeconds = interval
        } else if creating {
            service.sendingIntervalSeconds = 0
        }
        if let enabled = body.is_enabled { service.isEnabled = enabled } else if creating { service.isEnabled = true }

        var config = creating ? ProviderConfig() : service.providerConfig
        let provider = EmailService.Provider(rawValue: body.provider ?? "") ?? (creating ? nil : service.provider)
        switch provider {
        case .smtp?:
            let given = body.smtp ?? SMTPBody()
            if creating && body.smtp == nil { details.append(.init(field: "smtp", reason: "is required for provider smtp")) }
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
            if creating && body.http == nil { details.append(.init(field: "http", reason: "is required for provider http")) }
            let old = config.http
            let endpoint = body.http?.endpoint_url ?? old?.endpointURL ?? ""
            if body.http?.endpoint_url?.contains("***") == true {
                details.append(.init(field: "http.endpoint_url", reason: "contains *** (a redacted URL from a response); send the real URL, or leave endpoint_url out to keep the stored one"))
            } else if let problem = outbound.problem(url: endpoint) {
                details.append(.init(field: "http.endpoint_url", reason: problem))
            }
            let headers = body.http?.headers ?? old?.headers ?? [:]
            for name in headers.keys where name.isEmpty || name.contains(where: { !$0.isASCII || $0 == ":" || $0.isWhitespace }) {
                details.append(.init(field: "http.headers", reason: "invalid header name \(name)"))
            }
            // Never echo a value back: it may be a credential.
            for (name, value) in headers where value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                details.append(.init(field: "http.headers.\(name)", reason: "the value must not contain line breaks or control characters"))
            }
            let template = body.http?.body_template ?? old?.bodyTemplate
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

        guard details.isEmpty else { throw APIError.validation("the email service is invalid", details) }
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
