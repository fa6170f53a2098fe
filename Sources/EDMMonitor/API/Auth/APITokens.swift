import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// What a token may do. Each role includes the ones before it.
///
/// | role | may |
/// |---|---|
/// | `viewer` | read every `/api` resource except tokens |
/// | `operator` | + acknowledge and resolve alerts, silences, test rules, ingest metrics and task events, create and control tasks |
/// | `admin` | + alert rules, email services, users, monitoring configuration, tokens |
public enum APIRole: String, Codable, Sendable, CaseIterable, Comparable {
    case viewer
    case `operator`
    case admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (lhs: APIRole, rhs: APIRole) -> Bool { lhs.rank < rhs.rank }
}

/// Who made a request: the token's name and role, or `anonymous` admin while the API is open
/// (no token has been created yet).
public struct APIPrincipal: Sendable, Equatable {
    /// The token's id; `nil` for the anonymous principal.
    public var tokenID: UUID?
    /// The token's name, or `anonymous`.
    public var name: String
    public var role: APIRole

    /// The principal of every request while no token exists.
    public static let anonymous = APIPrincipal(tokenID: nil, name: "anonymous", role: .admin)
}

/// Creating, checking and revoking API tokens.
///
/// A token is `edm_` followed by 43 characters of base64url: 32 bytes (256 bits) from the
/// system's CSPRNG (`SystemRandomNumberGenerator`: `getrandom(2)` on Linux). Only its SHA-256
/// (FIPS 180-4) is stored, as lower-case hex; a presented token is hashed, looked up by hash and
/// the stored hash compared with ``ConstantTime/equal(_:_:)``. The token is returned once, by
/// ``create(name:role:expiresAt:createdBy:on:now:)``, and cannot be recovered.
///
/// The API is open until the first token is created; from then on it always requires one —
/// revoking or expiring every token does not reopen it (create a new one with
/// `edm-monitor token create`).
public enum APITokens {
    /// The text every token starts with, so secret scanners and humans recognise it.
    public static let scheme = "edm_"

    /// A new random token, `edm_` + 43 base64url characters.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return scheme + base64
    }

    /// SHA-256 of `token`'s UTF-8 bytes as 64 lower-case hex digits.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The characters of a token that are shown in lists: `edm_` and the next 8.
    static func displayPrefix(_ token: String) -> String { String(token.prefix(scheme.count + 8)) }

    /// Validation of a token name: 1–100 characters, letters, digits, `.`, `_`, `-`, `@`.
    /// - Returns: the reason it is refused, or `nil` when it is fine.
    public static func nameProblem(_ name: String) -> String? {
        guard (1...100).contains(name.count) else { return "must be 1 to 100 characters" }
        // Reserved: they name the open API and the command line in audit records.
        guard !["anonymous", "cli"].contains(name.lowercased()) else { return "\(name) is reserved" }
        guard name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-@".unicodeScalars.contains($0)) }) else {
            return "may hold only letters, digits, '.', '_', '-' and '@'"
        }
        return nil
    }

    /// Creates a token.
    /// - Returns: the stored row and the token itself (shown once).
    /// - Throws: ``APIError`` 400 for a bad name or an expiry not in the future, 409 when the
    ///   name is taken (by an active or a revoked token).
    public static func create(name: String, role: APIRole, expiresAt: Date?, createdBy: String, on db: any Database, now: Date) async throws -> (record: APITokenRecord, token: String) {
        if let problem = nameProblem(name) { throw APIError.validation("the token name is invalid", [.init(field: "name", reason: problem)]) }
        if let expiresAt, expiresAt <= now { throw APIError.validation("the expiry is not in the future", [.init(field: "expires_at", reason: "must be in the future")]) }
        if try await APITokenRecord.query(on: db).filter(\.$name == name).first() != nil {
            throw APIError(.conflict, .conflict, "a token named \(name) already exists (names are never reused, even after revocation); choose another name")
        }
        let token = generate()
        let record = APITokenRecord()
        record.name = name
        record.role = role.rawValue
        record.tokenHash = hash(token)
        record.prefix = displayPrefix(token)
        record.createdBy = createdBy
        record.createdAt = now
        record.expiresAt = expiresAt
        try await record.create(on: db)
        return (record, token)
    }

    /// Whether any token was ever created (revoked and expired ones count): from then on the
    /// API requires a token.
    public static func authenticationRequired(on db: any Database) async throws -> Bool {
        try await APITokenRecord.query(on: db).first() != nil
    }

    /// Why a presented token was refused.
    public enum Refusal: Error, Equatable {
        case unknown, revoked, expired
    }

    /// The principal of a presented token.
    /// - Throws: ``Refusal`` when no token has that hash, or it is revoked or expired.
    public static func authenticate(_ token: String, on db: any Database, now: Date) async throws -> APIPrincipal {
        let presented = hash(token)
        guard let record = try await APITokenRecord.query(on: db).filter(\.$tokenHash == presented).first(),
              ConstantTime.equal(Array(record.tokenHash.utf8), Array(presented.utf8)),
              let role = APIRole(rawValue: record.role) else {
            throw Refusal.unknown
        }
        if record.revokedAt != nil { throw Refusal.revoked }
        if let expires = record.expiresAt, now >= expires { throw Refusal.expired }
        if record.lastUsedAt.map({ now.timeIntervalSince($0) >= 60 }) ?? true {
            // At most one write a minute per token; a failure here must not refuse the request.
            try? await APITokenRecord.query(on: db).filter(\.$id == record.id!).set(\.$lastUsedAt, to: now).update()
        }
        return APIPrincipal(tokenID: record.id, name: record.name, role: role)
    }

    /// Revokes the token `id` at `now`.
    /// - Returns: the row, revoked.
    /// - Throws: ``APIError`` 404 when there is no such token, 409 when it is already revoked.
    @discardableResult
    public static func revoke(id: UUID, on db: any Database, now: Date) async throws -> APITokenRecord {
        guard let record = try await APITokenRecord.find(id, on: db) else { throw APIError.notFound("no token with id \(id)") }
        guard record.revokedAt == nil else { throw APIError(.conflict, .conflict, "token \(record.name) is already revoked") }
        record.revokedAt = now
        try await record.save(on: db)
        return record
    }
}
