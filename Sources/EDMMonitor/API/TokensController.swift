import EDMMonitorCore
import FluentKit
import Vapor

/// `/api/tokens` (admin): create, list, read and revoke API tokens. The token itself appears
/// only in the response to its creation; lists show its ``APITokenRecord/prefix``.
struct TokensController: RouteCollection {
    /// The clock of creation, expiry and revocation times.
    let clock: any WallClock

    struct CreateBody: Content {
        var name: String
        var role: APIRole
        /// Optional expiry, ISO 8601 or Unix seconds; must be in the future.
        var expires_at: Date?
    }

    /// A token as the API returns it (never its secret or hash).
    struct TokenDTO: Content {
        var id: UUID
        var name: String
        var role: String
        var prefix: String
        var created_by: String
        var created_at: Date?
        var expires_at: Date?
        var last_used_at: Date?
        var revoked_at: Date?
        /// `active`, `expired` or `revoked`.
        var state: String

        init(_ record: APITokenRecord, now: Date) throws {
            id = try record.requireID()
            name = record.name
            role = record.role
            prefix = record.prefix
            created_by = record.createdBy
            created_at = record.createdAt
            expires_at = record.expiresAt
            last_used_at = record.lastUsedAt
            revoked_at = record.revokedAt
            state = record.revokedAt != nil ? "revoked" : (record.isActive(at: now) ? "active" : "expired")
        }
    }

    /// The creation response: the token row plus the token itself, shown this once.
    struct CreatedDTO: Content {
        var token: String
        var data: TokenDTO
    }

    func boot(routes: any RoutesBuilder) throws {
        let tokens = routes.grouped("api", "tokens")
        tokens.post(use: create)
        tokens.get(use: list)
        tokens.get(":id", use: get)
        tokens.post(":id", "revoke", use: revoke)
    }

    @Sendable func create(_ req: Request) async throws -> Response {
        let body = try req.jsonBody(CreateBody.self)
        let now = clock.now()
        let (record, token) = try await APITokens.create(name: body.name, role: body.role, expiresAt: body.expires_at,
                                                         createdBy: req.principal.name, on: req.db, now: now)
        req.logger.notice("API token created", metadata: ["token_name": "\(record.name)", "role": "\(record.role)", "prefix": "\(record.prefix)", "by": "\(req.principal.name)"])
        return try await CreatedDTO(token: token, data: TokenDTO(record, now: now)).encodeResponse(status: .created, for: req)
    }

    @Sendable func list(_ req: Request) async throws -> Page<TokenDTO> {
        let page = try PageRequest(from: req)
        let now = clock.now()
        let filter = try req.query.decode(TokenListQuery.self)
        let query = APITokenRecord.query(on: req.db)
        switch filter.state {
        case nil: break
        case .revoked?: query.filter(\.$revokedAt != nil)
        case .active?: query.filter(\.$revokedAt == nil).group(.or) { $0.filter(\.$expiresAt == nil).filter(\.$expiresAt > now) }
        case .expired?: query.filter(\.$revokedAt == nil).filter(\.$expiresAt <= now)
        }
        let (rows, total) = try await query.sort(\.$createdAt).sort(\.$id).page(page)
        return Page(data: try rows.map { try TokenDTO($0, now: now) }, page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> TokenDTO {
        let id = try req.uuidParameter("id", resource: "token")
        guard let record = try await APITokenRecord.find(id, on: req.db) else { throw APIError.notFound("no token with id \(id)") }
        return try TokenDTO(record, now: clock.now())
    }

    /// Revokes the token for good (409 when it already is).
    @Sendable func revoke(_ req: Request) async throws -> TokenDTO {
        let id = try req.uuidParameter("id", resource: "token")
        let now = clock.now()
        let record = try await APITokens.revoke(id: id, on: req.db, now: now)
        req.logger.notice("API token revoked", metadata: ["token_name": "\(record.name)", "by": "\(req.principal.name)"])
        return try TokenDTO(record, now: now)
    }
}
