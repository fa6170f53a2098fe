@testable import EDMMonitor
import EDMMonitorCore
import Foundation
import Testing
import Vapor
import VaporTesting

/// The API contract (issue #7): `openapi.yaml` names exactly the registered routes, is served
/// byte for byte, and every endpoint answers bad input with the one error shape and lists with
/// the one list shape.
@Suite("OpenAPI contract")
struct OpenAPIContractTests {
    typealias Operation = OpenAPIContract.Operation

    @Test("every registered route is in openapi.yaml and every route it names is registered")
    func routesMatchDocument() async throws {
        let contract = try OpenAPIContract.load()
        let documented = Set(contract.operations.map(\.route))
        try await withApp(.sqlite, migrate: false) { app, _ in
            let registered = Set(RouteCatalog.registered(app).map(OpenAPIContract.openAPIRoute))
            #expect(registered.subtracting(documented).sorted() == [], "registered but missing from openapi.yaml")
            #expect(documented.subtracting(registered).sorted() == [], "in openapi.yaml but not registered")
            let required = Set(RouteCatalog.required.map(OpenAPIContract.openAPIRoute))
            #expect(required.subtracting(documented).sorted() == [], "RouteCatalog.required but missing from openapi.yaml")
        }
        // `{name}` in a path is declared as a path parameter, and the other way round.
        for op in contract.operations {
            let inPath = op.path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
            #expect(inPath.sorted() == op.pathParameters.sorted(), "\(op.route): path parameters")
        }
    }

    @Test("GET /openapi.yaml serves the repository file byte for byte as application/yaml")
    func servedDocumentIsTheRepositoryFile() async throws {
        let file = try OpenAPIContract.repositoryFile()
        #expect(Data(OpenAPIDocument.text.utf8) == file, "the embedded copy differs from openapi.yaml (Sources/EDMMonitor/Resources/openapi.yaml must link to it)")
        try await withApp(.sqlite, migrate: false) { app, _ in
            try await app.testing().test(.GET, "/openapi.yaml") { res in
                #expect(res.status == .ok)
                #expect(res.headers.first(name: .contentType) == "application/yaml")
                #expect(Data(res.body.readableBytesView) == file)
            }
        }
    }

    @Test("the document's conventions: error vocabulary, list shape, security, body limits, roles")
    func documentConventions() throws {
        let contract = try OpenAPIContract.load()
        #expect(contract.root["openapi"] as? String == "3.1.0")
        let codes = (contract.value(at: "components.schemas.ErrorCode.enum") as? [Any])?.map { "\($0)" } ?? []
        #expect(Set(codes) == Set(APIErrorCode.allCases.map(\.rawValue)), "ErrorCode enum = APIErrorCode")
        let errorInner = contract.value(at: "components.schemas.Error.properties.error.required") as? [Any]
        #expect(errorInner?.map { "\($0)" }.sorted() == ["code", "details", "message"])
        let pagination = contract.value(at: "components.schemas.Pagination.required") as? [Any]
        #expect(pagination?.map { "\($0)" }.sorted() == ["page", "per_page", "total"])
        #expect(contract.value(at: "components.securitySchemes.bearerAuth.scheme") as? String == "bearer")
        #expect(contract.value(at: "components.parameters.PerPage.schema.maximum") as? Int == 500)

        for op in contract.operations {
            // The document's roles are the server's: RoutePolicy decides, the document says the same.
            let vaporRoute = op.route.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            switch RoutePolicy.access(vaporRoute, metricsRequireToken: false) {
            case .open:
                #expect(op.security == [], "\(op.route) is public: security []")
                #expect(op.requiredRole == "public", "\(op.route): x-required-role public")
            case .role(let role):
                #expect(op.security == nil, "\(op.route) uses the global bearerAuth")
                #expect(op.statuses.isSuperset(of: ["401", "403"]), "\(op.route) documents 401 and 403")
                #expect(op.requiredRole == role.rawValue, "\(op.route): x-required-role is \(op.requiredRole ?? "missing"), the server needs \(role.rawValue)")
            }
            if op.method != "GET" {
                #expect((op.maxBodyBytes ?? 0) > 0, "\(op.route): x-max-body-bytes")
            }
            #expect(op.statuses.contains { $0.hasPrefix("2") }, "\(op.route): a success response")
        }
        // Limits that are constants in the code (the others are checked live in bodyLimits).
        let createTask = try #require(contract.operations.first { $0.route == "POST /api/tasks" })
        #expect(createTask.maxBodyBytes == TasksController.maxCreateBody.value)
        let ingest = try #require(contract.operations.first { $0.route == "POST /api/monitoring/performance-metrics" })
        #expect(ingest.maxBodyBytes == PerformanceMetricsController.maxIngestBody.value)
    }

    // MARK: - Error and list shapes on every endpoint

    /// One request expected to fail with `status` and `code` (and `field` among the details).
    struct BadRequest: CustomStringConvertible {
        var what: String
        var path: String
        var query: String = ""
        var body: String?
        var contentType: HTTPMediaType?
        var status: HTTPResponseStatus
        var code: APIErrorCode
        var field: String?
        var description: String { "\(what) (\(path)\(query.isEmpty ? "" : "?" + query))" }
    }

    /// Ids of one seeded row per resource, by path prefix.
    static func seed(_ app: Application) async throws -> [String: UUID] {
        let user = try await Fixtures.user(app)
        let service = try await Fixtures.service(app, name: "seeded")
        let task = try await Fixtures.task(app, user: user, recipients: 2)
        let rule = AlertRule()
        try AlertRuleService.apply(["name": "seeded", "metric_name": "edm_seeded", "condition_type": "absence", "time_window_minutes": 5, "severity": "info"], to: rule, write: .create, outbound: app.edm.outbound)
        rule.createdAt = app.edm.clock.now()
        rule.updatedAt = rule.createdAt
        try await rule.create(on: app.db)
        let silence = Silence()
        silence.storedMatchers = JSONList([.init(name: "alertname", op: .equal, value: "x")])
        silence.startsAt = app.edm.clock.now()
        silence.endsAt = app.edm.clock.now().addingTimeInterval(3600)
        silence.createdBy = "test"
        silence.comment = ""
        silence.createdAt = app.edm.clock.now()
        try await silence.create(on: app.db)
        return [
            "/api/users/": user, "/api/email-services/": service, "/api/tasks/": task, "/api/monitoring/task-metrics/": task,
            "/api/monitoring/alert-rules/": try rule.requireID(), "/api/monitoring/silences/": try silence.requireID(),
        ]
    }

    /// `op.path` with its parameters replaced by `id`.
    static func fill(_ op: Operation, _ id: String) -> String {
        op.pathParameters.reduce(op.path) { $0.replacingOccurrences(of: "{\($1)}", with: id) }
    }

    /// The seeded id for `op`'s path parameter, if its resource has one.
    static func seededID(_ op: Operation, _ seeded: [String: UUID]) -> UUID? {
        seeded.first { op.path.hasPrefix($0.key) }?.value
    }

    /// A valid value of each required query parameter (so that only the bad one is bad).
    static func baseline(_ op: Operation) -> [String] {
        op.query.filter(\.required).map { "\($0.name)=\($0.enumValues?.first ?? "edm_test_metric")" }
    }

    /// The bad requests derived from the document for `op`.
    static func badRequests(_ op: Operation, seeded: [String: UUID]) -> [BadRequest] {
        var cases: [BadRequest] = []
        // A Pushgateway job is a free name, not the id of a stored resource: no 404 to expect.
        if !op.pathParameters.isEmpty, !op.path.hasPrefix("/metrics/job/") {
            cases.append(BadRequest(what: "unknown id", path: fill(op, UUID().uuidString), status: .notFound, code: .notFound))
            cases.append(BadRequest(what: "id that is not a UUID", path: fill(op, "not-a-uuid"), status: .notFound, code: .notFound))
        }
        let path = op.pathParameters.isEmpty ? op.path : seededID(op, seeded).map { fill(op, $0.uuidString) }
        if op.method == "GET", let path {
            let base = baseline(op)
            func query(_ extra: String) -> String { (base + [extra]).joined(separator: "&") }
            for p in op.query {
                var bad: [String] = []
                if p.name == "per_page" { bad = ["0", "501", "ten"] }
                else if p.name == "page" { bad = ["0", "-1"] }
                else if p.enumValues != nil { bad = ["no-such-value"] }
                else if p.format == "uuid" { bad = ["not-a-uuid"] }
                else if ["from", "to"].contains(p.name) { bad = ["yesterday"] }
                else if p.name == "step" { bad = ["0", "5x"] }
                for value in bad {
                    cases.append(BadRequest(what: "bad \(p.name)", path: path, query: query("\(p.name)=\(value)"), status: .badRequest, code: .validationFailed, field: p.name))
                }
                if p.required {
                    let others = base.filter { !$0.hasPrefix("\(p.name)=") }.joined(separator: "&")
                    cases.append(BadRequest(what: "missing \(p.name)", path: path, query: others, status: .badRequest, code: .validationFailed, field: p.name))
                }
            }
            if op.query.contains(where: { $0.name == "from" }) && op.query.contains(where: { $0.name == "to" }) {
                cases.append(BadRequest(what: "from after to", path: path, query: query("from=2026-03-09T12:00:00Z&to=2026-03-09T10:00:00%2B00:00"), status: .badRequest, code: .validationFailed, field: "from"))
            }
        }
        if op.bodyRequired, op.bodyMediaTypes.contains("application/json"), let path {
            cases.append(BadRequest(what: "malformed JSON", path: path, body: "{", contentType: .json, status: .badRequest, code: .validationFailed))
            cases.append(BadRequest(what: "JSON of the wrong shape", path: path, body: "[1]", contentType: .json, status: .badRequest, code: .validationFailed))
            // Vapor decodes JSON, forms and plain text (a 400 here); other types are 415.
            cases.append(BadRequest(what: "an unknown media type", path: path, body: "hello", contentType: HTTPMediaType(type: "application", subType: "x-edm-unknown"), status: .unsupportedMediaType, code: .unsupportedMediaType))
        }
        return cases
    }

    /// Checks `body` is exactly `{"error":{"code","message","details":[{"field","reason"}]}}`
    /// with `code`, and returns the detail fields.
    @discardableResult
    static func expectErrorShape(_ body: ByteBuffer, code: APIErrorCode, _ context: String) -> [String] {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
              let error = json["error"] as? [String: Any] else {
            Issue.record("\(context): not an error body: \(String(buffer: body))")
            return []
        }
        #expect(Set(json.keys) == ["error"], "\(context)")
        #expect(Set(error.keys) == ["code", "message", "details"], "\(context)")
        #expect(error["code"] as? String == code.rawValue, "\(context): \(String(buffer: body))")
        #expect(!((error["message"] as? String) ?? "").isEmpty, "\(context): message")
        let details = error["details"] as? [[String: Any]]
        #expect(details != nil, "\(context): details is an array of objects")
        for detail in details ?? [] {
            #expect(Set(detail.keys) == ["field", "reason"], "\(context): detail keys")
            #expect(detail["field"] is String && detail["reason"] is String, "\(context): detail values")
        }
        return (details ?? []).compactMap { $0["field"] as? String }
    }

    @Test("bad ids, bodies and queries get a documented 4xx in the one error shape", arguments: OpenAPIContract.operationsForArguments)
    func errorShape(_ op: Operation) async throws {
        try await withApp(.sqlite) { app, _ in
            let seeded = try await Self.seed(app)
            for bad in Self.badRequests(op, seeded: seeded) {
                let context = "\(op.route): \(bad)"
                try await app.testing().test(HTTPMethod(rawValue: op.method), bad.path + (bad.query.isEmpty ? "" : "?" + bad.query), beforeRequest: { req in
                    if let body = bad.body { req.body = ByteBuffer(string: body) }
                    if let type = bad.contentType { req.headers.contentType = type }
                }) { res in
                    #expect(res.status == bad.status, "\(context): \(res.body.string)")
                    #expect(op.statuses.contains(String(res.status.code)), "\(context): \(res.status.code) is not documented")
                    let fields = Self.expectErrorShape(res.body, code: bad.code, context)
                    if let field = bad.field { #expect(fields.contains(field), "\(context): details name \(field): \(fields)") }
                }
            }
        }
    }

    @Test("list endpoints answer {data, pagination{page, per_page, total}} and honour page and per_page", arguments: OpenAPIContract.operationsForArguments.filter { $0.query.contains { $0.name == "per_page" } })
    func listShape(_ op: Operation) async throws {
        try await withApp(.sqlite) { app, _ in
            _ = try await Self.seed(app)
            for (query, page, perPage) in [("", 1, 50), ("page=2&per_page=1", 2, 1), ("per_page=500", 1, 500)] {
                let q = (Self.baseline(op) + (query.isEmpty ? [] : [query])).joined(separator: "&")
                try await app.testing().test(.GET, op.path + (q.isEmpty ? "" : "?" + q)) { res in
                    #expect(res.status == .ok, "\(op.route)?\(q): \(res.body.string)")
                    let json = try JSONSerialization.jsonObject(with: Data(res.body.readableBytesView)) as? [String: Any]
                    #expect(Set(json?.keys.map { $0 } ?? []) == ["data", "pagination"], "\(op.route)")
                    #expect(json?["data"] is [Any], "\(op.route): data is an array")
                    let pagination = json?["pagination"] as? [String: Any]
                    #expect(Set(pagination?.keys.map { $0 } ?? []) == ["page", "per_page", "total"], "\(op.route)")
                    #expect(pagination?["page"] as? Int == page && pagination?["per_page"] as? Int == perPage, "\(op.route)?\(q)")
                    #expect((pagination?["total"] as? Int).map { $0 >= 0 } == true, "\(op.route): total")
                }
            }
        }
    }

    @Test("a method a path does not serve is 405 method_not_allowed with Allow")
    func methodNotAllowed() async throws {
        let contract = try OpenAPIContract.load()
        let byPath = Dictionary(grouping: contract.operations, by: \.path)
        try await withApp(.sqlite) { app, _ in
            for (path, ops) in byPath.sorted(by: { $0.key < $1.key }) {
                let served = Set(ops.map(\.method))
                guard let method = ["DELETE", "PATCH", "PUT", "POST", "GET"].first(where: { !served.contains($0) }) else { continue }
                let concrete = Self.fill(ops[0], UUID().uuidString)
                try await app.testing().test(HTTPMethod(rawValue: method), concrete) { res in
                    #expect(res.status == .methodNotAllowed, "\(method) \(path)")
                    let allow = Set((res.headers.first(name: .allow) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                    #expect(allow.isSuperset(of: served), "\(method) \(path): Allow \(allow)")
                    Self.expectErrorShape(res.body, code: .methodNotAllowed, "\(method) \(path)")
                }
            }
        }
    }

    @Test("bodies of an endpoint's x-max-body-bytes or more are 413 payload_too_large; one byte less is not", arguments: OpenAPIContract.operationsForArguments.filter { ($0.maxBodyBytes ?? .max) <= 8 << 20 })
    func bodyLimits(_ op: Operation) async throws {
        let limit = try #require(op.maxBodyBytes)
        try await withApp(.sqlite) { app, _ in
            let seeded = try await Self.seed(app)
            let path = Self.fill(op, (Self.seededID(op, seeded) ?? UUID()).uuidString)
            // A real server: the in-memory tester hands the body over already collected.
            let tester = try app.testing(method: .running(hostname: "127.0.0.1", port: 0))
            // Vapor refuses a body that reaches the limit: the limit is exclusive.
            for (size, tooLarge) in [(limit, true), (limit - 1, false)] {
                let body = ByteBuffer(repeating: UInt8(ascii: " "), count: size)
                let res = try await tester.sendRequest(HTTPMethod(rawValue: op.method), path, headers: ["Content-Type": "application/json"], body: body)
                if tooLarge {
                    #expect(res.status == .payloadTooLarge, "\(op.route) with \(size) bytes: \(res.status)")
                    #expect(op.statuses.contains("413"), "\(op.route): 413 is not documented")
                    Self.expectErrorShape(res.body, code: .payloadTooLarge, "\(op.route) \(size) bytes")
                } else {
                    #expect(res.status != .payloadTooLarge, "\(op.route) with exactly \(size) bytes")
                }
            }
        }
    }
}
