import FluentKit
import Vapor

/// Page parameters of list endpoints: `page` ≥ 1 (default 1), `per_page` 1…500 (default 50).
public struct PageRequest: Decodable, Sendable, Equatable {
    public var page: Int
    public var perPage: Int

    /// Reads and validates `page` and `per_page` from the query.
    /// - Throws: ``APIError`` 400 naming the bad parameter.
    public init(from request: Request) throws {
        self = try request.query.decode(PageRequest.self)
    }

    /// Decodes `page` and `per_page` from a query string (`req.query.decode(PageRequest.self)`).
    /// - Throws: ``APIError`` 400 naming each bad parameter.
    public init(from decoder: any Decoder) throws {
        let query = try QueryReader(decoder)
        var details: [APIErrorDetail] = []
        func integer(_ name: String, default value: Int, range: ClosedRange<Int>) -> Int {
            guard let raw = query.string(name) else { return value }
            guard let number = Int(raw), range.contains(number) else {
                details.append(.init(field: name, reason: "must be an integer from \(range.lowerBound) to \(range.upperBound)"))
                return value
            }
            return number
        }
        page = integer("page", default: 1, range: 1...1_000_000)
        perPage = integer("per_page", default: 50, range: 1...500)
        if !details.isEmpty { throw APIError.validation("invalid pagination", details) }
    }

    /// Rows to skip.
    public var offset: Int { (page - 1) * perPage }
}

/// The one list shape: `{"data":[...],"pagination":{"page","per_page","total"}}`.
public struct Page<Item: Content>: Content {
    public struct Info: Content, Equatable {
        public var page: Int
        public var perPage: Int
        /// Items matching the filters, over all pages.
        public var total: Int

        enum CodingKeys: String, CodingKey {
            case page, total
            case perPage = "per_page"
        }
    }

    public var data: [Item]
    public var pagination: Info

    public init(data: [Item], page: PageRequest, total: Int) {
        self.data = data
        self.pagination = Info(page: page.page, perPage: page.perPage, total: total)
    }
}

extension QueryBuilder {
    /// Runs the query for one page and counts all matches.
    func page(_ request: PageRequest) async throws -> (items: [Model], total: Int) {
        let total = try await self.copy().count()
        let items = try await self.copy().range(request.offset..<(request.offset + request.perPage)).all()
        return (items, total)
    }
}

extension Request {
    /// The UUID path parameter `name`. - Throws: 404 when it is not a UUID (no such resource).
    func uuidParameter(_ name: String, resource: String) throws -> UUID {
        guard let raw = parameters.get(name), let id = UUID(uuidString: raw) else {
            throw APIError.notFound("no \(resource) with id \(parameters.get(name) ?? "")")
        }
        return id
    }
}
