import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// Why a user cannot be created or found.
public enum UserError: DomainError, Equatable {
    /// 400 `validation_failed`: every bad field at once. On the CLI the fields are flags: exit 2.
    case invalid([APIErrorDetail])
    /// 404 `not_found`.
    case notFound(UUID)

    public var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .notFound: .notFound
        }
    }

    public var code: APIErrorCode {
        switch self {
        case .invalid: .validationFailed
        case .notFound: .notFound
        }
    }

    public var message: String {
        switch self {
        case .invalid: "the user is invalid"
        case .notFound(let id): "no user with id \(id)"
        }
    }

    public var details: [APIErrorDetail] {
        if case .invalid(let details) = self { return details }
        return []
    }

    public var exitStatus: Int32 {
        if case .invalid = self { return 2 }
        return 1
    }
}

/// Creating and finding users (the owners of tasks), shared by `POST /api/users` and
/// `edm-monitor user add`.
public enum UserAccounts {
    /// Validates and creates a user: `name` 1…200 characters after trimming, `email` a valid
    /// address (stored normalised, see `EmailAddress`).
    /// - Throws: ``UserError/invalid(_:)`` listing every bad field (nothing is written).
    public static func create(name: String, email: String, on db: any Database, clock: any WallClock) async throws -> User {
        var details: [APIErrorDetail] = []
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed.count > 200 { details.append(.init(field: "name", reason: "must be 1 to 200 characters")) }
        var address = email
        switch EmailAddress.validate(email) {
        case .success(let valid): address = valid.address
        case .failure(let problem): details.append(.init(field: "email", reason: problem.message))
        }
        guard details.isEmpty else { throw UserError.invalid(details) }
        let user = User(name: trimmed, email: address)
        user.createdAt = clock.now()
        try await user.create(on: db)
        return user
    }

    /// The user with `id`. - Throws: ``UserError/notFound(_:)``.
    public static func find(_ id: UUID, on db: any Database) async throws -> User {
        guard let user = try await User.find(id, on: db) else { throw UserError.notFound(id) }
        return user
    }
}
