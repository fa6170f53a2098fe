import EDMMonitorCore
import FluentKit
import Foundation
import Vapor

/// `/api/monitoring/silences`: create, list and expire silences.
struct SilencesController: RouteCollection {
    /// The clock of every time-based decision.
    let clock: any WallClock

    struct CreateBody: Content {
        struct MatcherBody: Content { var name: String; var op: String?; var value: String }
        var matchers: [MatcherBody]
        var starts_at: Date?
        var ends_at: Date
        var created_by: String
        var comment: String
    }

    struct SilenceDTO: Content {
        var id: UUID
        var matchers: [Silence.Matcher]
        var starts_at: Date
        var ends_at: Date
        var created_by: String
        var comment: String
        /// `pending` (not started), `active` or `expired`.
        var state: String

        init(_ s: Silence, now: Date) throws {
            id = try s.requireID()
            matchers = s.storedMatchers.elements
            starts_at = s.startsAt
            ends_at = s.endsAt
            created_by = s.createdBy
            comment = s.comment
            state = now < s.startsAt ? "pending" : (now < s.endsAt ? "active" : "expired")
        }
    }

    func boot(routes: any RoutesBuilder) throws {
        let silences = routes.grouped("api", "monitoring", "silences")
        silences.post(use: create)
        silences.get(use: list)
        silences.get(":id", use: get)
        silences.post(":id", "expire", use: expire)
    }

    @Sendable func create(_ req: Request) async throws -> Response {
        let body = try req.jsonBody(CreateBody.self)
        let now = clock.now()
        var details: [APIErrorDetail] = []
        if body.matchers.isEmpty { details.append(.init(field: "matchers", reason: "at least one matcher is required (a silence must not mute everything by accident)")) }
        var matchers: [Silence.Matcher] = []
        for (i, m) in body.matchers.enumerated() {
            guard PrometheusName.isValidLabelName(m.name) else { details.append(.init(field: "matchers[\(i)].name", reason: "must be a label name such as alertname, severity or a tag")); continue }
            guard let op = TagMatcher.Op(rawValue: m.op ?? "=") else { details.append(.init(field: "matchers[\(i)].op", reason: "must be = or !=")); continue }
            matchers.append(.init(name: m.name, op: op, value: m.value))
        }
        let starts = body.starts_at ?? now
        if body.ends_at <= starts { details.append(.init(field: "ends_at", reason: "must be after starts_at")) }
        if body.ends_at <= now { details.append(.init(field: "ends_at", reason: "must be in the future")) }
        let by = body.created_by.trimmingCharacters(in: .whitespaces)
        if by.isEmpty || by.count > 200 { details.append(.init(field: "created_by", reason: "must be 1 to 200 characters")) }
        if body.comment.count > 2000 { details.append(.init(field: "comment", reason: "at most 2000 characters")) }
        guard details.isEmpty else { throw APIError.validation("the silence is invalid", details) }
        let silence = Silence()
        silence.storedMatchers = JSONList(matchers)
        silence.startsAt = starts
        silence.endsAt = body.ends_at
        silence.createdBy = by
        silence.comment = body.comment
        silence.createdAt = now
        try await silence.create(on: req.db)
        return try await SilenceDTO(silence, now: now).encodeResponse(status: .created, for: req)
    }

    @Sendable func list(_ req: Request) async throws -> Page<SilenceDTO> {
        let page = try PageRequest(from: req)
        let now = clock.now()
        let query = Silence.query(on: req.db)
        switch req.query[String.self, at: "state"] {
        case nil: break
        case "active"?: query.filter(\.$startsAt <= now).filter(\.$endsAt > now)
        case "pending"?: query.filter(\.$startsAt > now)
        case "expired"?: query.filter(\.$endsAt <= now)
        default: throw APIError.validation("invalid filter", [.init(field: "state", reason: "must be one of active, pending, expired")])
        }
        let (rows, total) = try await query.sort(\.$endsAt, .descending).sort(\.$id).page(page)
        return Page(data: try rows.map { try SilenceDTO($0, now: now) }, page: page, total: total)
    }

    @Sendable func get(_ req: Request) async throws -> SilenceDTO {
        try SilenceDTO(try await find(req), now: clock.now())
    }

    /// Ends the silence now; alerts it muted that still fire notify at the next evaluation.
    @Sendable func expire(_ req: Request) async throws -> SilenceDTO {
        let silence = try await find(req)
        let now = clock.now()
        guard silence.endsAt > now else { throw APIError(.conflict, .conflict, "the silence has already expired") }
        if silence.startsAt >= now { silence.startsAt = now.addingTimeInterval(-0.001) }
        silence.endsAt = now
        try await silence.save(on: req.db)
        return try SilenceDTO(silence, now: now)
    }

    func find(_ req: Request) async throws -> Silence {
        let id = try req.uuidParameter("id", resource: "silence")
        guard let silence = try await Silence.find(id, on: req.db) else { throw APIError.notFound("no silence with id \(id)") }
        return silence
    }
}
