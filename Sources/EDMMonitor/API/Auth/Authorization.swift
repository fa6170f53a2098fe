import EDMMonitorCore
import FluentKit
import Synchronization
import Vapor

/// Who may call a route: anyone, or a token of at least a role.
public enum RouteAccess: Sendable, Equatable, CustomStringConvertible {
    /// No token needed (health, the OpenAPI document, dashboard pages, `/metrics` by default).
    case open
    /// A token with this role or a higher one (while no token exists, everyone is admin).
    case role(APIRole)

    public var description: String {
        switch self {
        case .open: "open"
        case .role(let role): role.rawValue
        }
    }
}

/// The access rule of every route, decided from its method and path pattern (`:name` for
/// parameters), so a new route gets a safe default without anyone remembering to add it:
///
/// - open: `GET /api/monitoring/health`, `GET /openapi.yaml`, every `GET` outside `/api/` and
///   `/metrics` (dashboard pages and assets carry no data), and `GET /metrics` unless
///   `EDM_METRICS_REQUIRE_TOKEN` is set (then viewer);
/// - viewer: every other `GET`, except tokens (admin);
/// - operator: the writes of ``operatorWrites`` and Pushgateway pushes (`PUT|POST /metrics/job/…`);
/// - admin: every other write (rules, services, users, configuration, tokens, and any route
///   added later that no rule names).
public enum RoutePolicy {
    /// `METHOD /path` of the writes an operator may make.
    public static let operatorWrites: Set<String> = [
        "POST /api/monitoring/alerts/:id/acknowledge", "POST /api/monitoring/alerts/:id/resolve",
        "POST /api/monitoring/silences", "POST /api/monitoring/silences/:id/expire",
        "POST /api/monitoring/alert-rules/:id/test",
        "POST /api/monitoring/performance-metrics", "POST /api/monitoring/task-events",
        "POST /api/tasks", "POST /api/tasks/:id/pause", "POST /api/tasks/:id/resume", "POST /api/tasks/:id/cancel",
    ]

    /// The access of `METHOD /path`.
    /// - Parameter metricsRequireToken: whether `/metrics` needs a viewer token.
    public static func access(_ route: String, metricsRequireToken: Bool) -> RouteAccess {
        let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return .role(.admin) }
        let (method, path) = (parts[0], parts[1])
        let isRead = method == "GET" || method == "HEAD"
        if isRead {
            if path == "/metrics" { return metricsRequireToken ? .role(.viewer) : .open }
            if path == "/api/monitoring/health" || path == "/openapi.yaml" { return .open }
            if !path.hasPrefix("/api/") && path != "/api" { return .open }
            if path == "/api/tokens" || path.hasPrefix("/api/tokens/") { return .role(.admin) }
            return .role(.viewer)
        }
        if operatorWrites.contains(route) { return .role(.operator) }
        // Pushgateway-compatible pushes (`/metrics/job/:job`, `/metrics/job/:job/**`) are
        // metric ingest, as `POST /api/monitoring/performance-metrics` is.
        if (method == "PUT" || method == "POST"), path.hasPrefix("/metrics/job/") { return .role(.operator) }
        return .role(.admin)
    }

    /// Wraps the responder of every route registered on `app` with its access check and marks
    /// it checked (``verifyRoutes(_:)`` refuses to start with an unmarked route). Call once,
    /// after every route is registered.
    static func apply(to app: Application, metricsRequireToken: Bool, authentication: AuthenticationState, clock: any WallClock) {
        for route in app.routes.all {
            let name = "\(route.method.rawValue) /" + route.path.map(\.description).joined(separator: "/")
            let access = access(name, metricsRequireToken: metricsRequireToken)
            route.userInfo[accessKey] = access
            if case .role(let role) = access {
                route.responder = AuthorizationMiddleware(required: role, authentication: authentication, clock: clock).makeResponder(chainingTo: route.responder)
            }
        }
    }

    static let accessKey = "edm.access"
}

/// Refuses a request without an acceptable token: 401 `unauthorized` (with
/// `WWW-Authenticate: Bearer`, RFC 6750 §3) when the token is missing, malformed, unknown,
/// revoked or expired; 403 `forbidden` when its role is below `required`. While no token has
/// been created the API is open and every request is ``APIPrincipal/anonymous``.
///
/// The token comes from `Authorization: Bearer TOKEN` (RFC 6750 §2.1); query-string tokens are
/// not accepted (they end up in logs and browser history).
struct AuthorizationMiddleware: AsyncMiddleware {
    let required: APIRole
    /// Whether tokens are required yet.
    let authentication: AuthenticationState
    /// The clock of token expiry.
    let clock: any WallClock

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let principal = try await principal(of: request)
        guard principal.role >= required else {
            throw APIError(.forbidden, .forbidden, "this needs the \(required.rawValue) role; token \(principal.name) is \(principal.role.rawValue)")
        }
        request.principal = principal
        if principal.tokenID != nil { request.logger[metadataKey: "token"] = .string(principal.name) }
        return try await next.respond(to: request)
    }

    /// The principal of `request`.
    /// - Throws: ``APIError`` 401 as described above.
    func principal(of request: Request) async throws -> APIPrincipal {
        let db = request.db
        guard let header = request.headers.first(name: .authorization) else {
            if try await authentication.required(on: db) {
                throw APIError(.unauthorized, .unauthorized, "this API needs a token: send Authorization: Bearer TOKEN (this needs the \(required.rawValue) role; an admin creates one with `edm-monitor token create --role \(required.rawValue) --name NAME`)")
            }
            return .anonymous
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(.unauthorized, .unauthorized, "the Authorization header must be `Bearer TOKEN`")
        }
        do {
            return try await APITokens.authenticate(parts[1].trimmingCharacters(in: .whitespaces), on: db, now: clock.now())
        } catch let refusal as APITokens.Refusal {
            let why = switch refusal {
            case .unknown: "is not a token of this server"
            case .revoked: "has been revoked"
            case .expired: "has expired"
            }
            throw APIError(.unauthorized, .unauthorized, "the bearer token \(why); ask an admin for a new one")
        }
    }
}

/// Whether the API requires tokens. Once it does, it always does (see ``APITokens``), so a
/// `true` answer is remembered and only `false` is asked of the database again.
public final class AuthenticationState: Sendable {
    private let known = Mutex(false)

    /// Creates the state, not yet knowing.
    public init() {}

    /// Whether a token is needed. - Throws: the database's error.
    public func required(on db: any Database) async throws -> Bool {
        if known.withLock({ $0 }) { return true }
        let required = try await APITokens.authenticationRequired(on: db)
        if required { known.withLock { $0 = true } }
        return required
    }
}

extension Request {
    private struct PrincipalKey: StorageKey { typealias Value = APIPrincipal }

    /// Who made the request (set by ``AuthorizationMiddleware``); ``APIPrincipal/anonymous`` on
    /// open routes and while the API is open.
    public var principal: APIPrincipal {
        get { storage[PrincipalKey.self] ?? .anonymous }
        set { storage[PrincipalKey.self] = newValue }
    }
}
