import EDMMonitorCore
import FluentKit
import Vapor

/// `/api/monitoring/config`: the run-time monitoring configuration (``MonitoringConfig``).
///
/// - `GET` (viewer): `{"config":{…},"startup":{…},"overridden":["key",…]}` — the values in
///   force, the start-up values (environment or defaults), and the keys changed at run time.
/// - `PUT` (admin): a JSON object of keys to change; keys left out keep their value, `null`
///   resets a key to its start-up value. All or nothing: any bad key or value is 400 listing
///   every problem, and nothing changes. Answers like `GET`.
/// - `GET /changes` (viewer): the change history, newest first, filter `key`.
struct MonitoringConfigController: RouteCollection {
    /// The run-time configuration and its change history.
    let monitoring: MonitoringService

    struct ConfigDTO: Content {
        var config: [String: JSONValue]
        var startup: [String: JSONValue]
        var overridden: [String]
    }

    struct ChangeDTO: Content {
        var id: UUID
        var key: String
        var old_value: JSONValue?
        var new_value: JSONValue?
        var changed_by: String
        var changed_at: Date
        var request_id: String?

        init(_ row: MonitoringConfigChange) throws {
            func parse(_ text: String?) -> JSONValue? { text.flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) } }
            id = try row.requireID()
            key = row.key
            old_value = parse(row.oldValue)
            new_value = parse(row.newValue)
            changed_by = row.changedBy
            changed_at = row.changedAt
            request_id = row.requestID
        }
    }

    func boot(routes: any RoutesBuilder) throws {
        let config = routes.grouped("api", "monitoring", "config")
        config.get(use: get)
        config.on(.PUT, body: .collect(maxSize: "16kb"), use: update)
        config.get("changes", use: changes)
    }

    @Sendable func get(_ req: Request) async throws -> ConfigDTO {
        dto(try await monitoring.reload(), req)
    }

    @Sendable func update(_ req: Request) async throws -> ConfigDTO {
        let changes: [String: JSONValue]
        do {
            changes = try req.jsonBody([String: JSONValue].self)
        } catch is DecodingError {
            throw APIError.validation("the body must be a JSON object of settings to change", [.init(field: "body", reason: "expected an object such as {\"stuck_threshold_seconds\": 300}")])
        }
        return dto(try await monitoring.update(changes, by: req.principal.name, requestID: req.requestID), req)
    }

    @Sendable func changes(_ req: Request) async throws -> Page<ChangeDTO> {
        let page = try PageRequest(from: req)
        let filter = try req.query.decode(ConfigChangesQuery.self)
        let query = MonitoringConfigChange.query(on: req.db)
        if let key = filter.key { query.filter(\.$key == key) }
        let (rows, total) = try await query.sort(\.$changedAt, .descending).sort(\.$id).page(page)
        return Page(data: try rows.map(ChangeDTO.init), page: page, total: total)
    }

    private func dto(_ state: (config: MonitoringConfig, overridden: Set<String>), _ req: Request) -> ConfigDTO {
        ConfigDTO(config: state.config.json, startup: monitoring.startup.json, overridden: state.overridden.sorted())
    }
}
