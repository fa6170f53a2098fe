import EDMMonitorCore
import FluentKit
import Vapor

/// `/api/users`: create, list and read the owners of tasks.
struct UsersController: RouteCollection {
    /// The clock of `created_at`.
    let clock: any WallClock

    struct CreateBody: Content {
        var name: String
        var email: String
    }

    /// A user as the API returns it.
    struct UserDTO: Content {
        var id: UUID
        var name: String
        var email: String
        var created_at: Date?

        init(_ user: User) throws {
            id = try user.requireID()
            name = user.name
            email = user.email
            created_at = user.createdAt
        }
    }

    func boot(routes: any RoutesBuilder) throws {
        let users = routes.grouped("api", "users")
        users.post(use: create)
        users.get(use: list)
        users.get(":id", use: get)
    }

    @Sendable func create(_ req: Request) async throws -> Response {
        let body = try req.jsonBody(CreateBody.self)
        let user = try await UserAccounts.create(name: body.name, email: body.email, on: req.db, clock: clock)
        return try await UserDTO(user).encodeResponse(status: .created, for: req)
    }

    @Sendable func list(_ req: Request) async throws -> Page<UserDTO> {
        let page = try PageRequest(from: req)
        let (users, total) = try await User.query(on: req.db).sort(\.$createdAt).sort(\.$id).page(page)
        return Page(data: try users.map(UserDTO.init), page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> UserDTO {
        let id = try req.uuidParameter("id", resource: "user")
        return try UserDTO(try await UserAccounts.find(id, on: req.db))
    }
}
