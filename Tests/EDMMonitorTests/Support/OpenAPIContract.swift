import Foundation
import Testing
import Yams

/// The repository's `openapi.yaml`, parsed (YAML anchors and `$ref`s within the document
/// resolved), for the contract tests.
struct OpenAPIContract {
    /// One operation: `METHOD /path/{param}` with what the tests need of it.
    struct Operation: Sendable, CustomTestStringConvertible, Hashable {
        var method: String
        /// OpenAPI form: `/api/users/{id}`.
        var path: String
        var pathParameters: [String]
        /// Query parameter name → resolved schema facts.
        var query: [QueryParameter]
        /// Status codes of the documented responses (`"200"`, `"404"`, …).
        var statuses: Set<String>
        /// Media types of the request body; empty when there is none.
        var bodyMediaTypes: [String]
        var bodyRequired: Bool
        var maxBodyBytes: Int?
        /// `nil` when the operation inherits the global security; `[]` when public.
        var security: [String]?
        var requiredRole: String?

        var route: String { "\(method) \(path)" }
        var testDescription: String { route }
    }

    /// What the tests need of a query parameter.
    struct QueryParameter: Sendable, Hashable {
        var name: String
        var required: Bool
        var type: String?
        var format: String?
        var enumValues: [String]?
        var minimum: Int?
        var maximum: Int?
    }

    let root: [String: Any]
    let operations: [Operation]

    /// The repository root (this file is Tests/EDMMonitorTests/Support/OpenAPIContract.swift).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The bytes of `openapi.yaml` in the checkout.
    static func repositoryFile() throws -> Data {
        try Data(contentsOf: repositoryRoot.appendingPathComponent("openapi.yaml"))
    }

    /// Parses the repository's document. - Throws: when it is not YAML or lacks `paths`.
    static func load() throws -> OpenAPIContract {
        let text = String(decoding: try repositoryFile(), as: UTF8.self)
        guard let root = Self.object(try Yams.load(yaml: text)) else { throw TestSupportError("openapi.yaml is not a mapping") }
        return try OpenAPIContract(root: root)
    }

    /// The operations of the document, or none when it does not load (the route test then fails).
    static let operationsForArguments: [Operation] = (try? load().operations) ?? []

    init(root: [String: Any]) throws {
        self.root = root
        let resolveObject = { (value: Any?) in Self.resolve(value, in: root) }
        guard let paths = Self.object(root["paths"]) else { throw TestSupportError("openapi.yaml has no paths") }
        var operations: [Operation] = []
        let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        for (path, item) in paths {
            guard let item = Self.object(item) else { continue }
            let shared = (item["parameters"] as? [Any]) ?? []
            for method in methods {
                guard let op = Self.object(item[method]) else { continue }
                let parameters = (shared + ((op["parameters"] as? [Any]) ?? [])).compactMap { resolveObject($0) }
                let query = parameters.filter { $0["in"] as? String == "query" }.map { p -> QueryParameter in
                    let schema = resolveObject(p["schema"]) ?? [:]
                    return QueryParameter(
                        name: p["name"] as? String ?? "", required: p["required"] as? Bool ?? false,
                        type: schema["type"] as? String, format: schema["format"] as? String,
                        enumValues: (schema["enum"] as? [Any])?.map { "\($0)" },
                        minimum: schema["minimum"] as? Int, maximum: schema["maximum"] as? Int
                    )
                }
                let body = resolveObject(op["requestBody"])
                let security = (op["security"] as? [Any]).map { list in list.compactMap { Self.object($0)?.keys.first } }
                operations.append(Operation(
                    method: method.uppercased(), path: path,
                    pathParameters: parameters.filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String },
                    query: query,
                    statuses: Set((Self.object(op["responses"]) ?? [:]).keys),
                    bodyMediaTypes: (Self.object(body?["content"]) ?? [:]).keys.sorted(),
                    bodyRequired: body?["required"] as? Bool ?? false,
                    maxBodyBytes: op["x-max-body-bytes"] as? Int,
                    security: security,
                    requiredRole: op["x-required-role"] as? String
                ))
            }
        }
        self.operations = operations.sorted { ($0.path, $0.method) < ($1.path, $1.method) }
    }

    /// The object at a local `$ref` (`#/components/...`), or `value` itself when it is no reference.
    func resolveObject(_ value: Any?) -> [String: Any]? { Self.resolve(value, in: root) }

    static func resolve(_ value: Any?, in root: [String: Any]) -> [String: Any]? {
        guard var object = Self.object(value) else { return nil }
        var hops = 0
        while let ref = object["$ref"] as? String, ref.hasPrefix("#/"), hops < 10 {
            var node: Any? = root
            for key in ref.dropFirst(2).split(separator: "/") { node = Self.object(node)?[String(key)] }
            guard let next = Self.object(node) else { return nil }
            object = next
            hops += 1
        }
        return object
    }

    /// The value at `path` (`components.schemas.Error`), following `$ref`s on the way.
    func value(at path: String) -> Any? {
        var node: Any? = root
        for key in path.split(separator: ".") { node = resolveObject(node)?[String(key)] }
        return node
    }

    /// A YAML mapping as `[String: Any]` (Yams builds `[AnyHashable: Any]`).
    static func object(_ value: Any?) -> [String: Any]? {
        if let object = value as? [String: Any] { return object }
        guard let object = value as? [AnyHashable: Any] else { return nil }
        return Dictionary(uniqueKeysWithValues: object.map { ("\($0.key.base)", $0.value) })
    }

    /// `GET /api/users/:id` → `GET /api/users/{id}`.
    static func openAPIRoute(_ vaporRoute: String) -> String {
        vaporRoute.split(separator: "/", omittingEmptySubsequences: false).map { part in
            // `**` (the rest of the path) is documented as one parameter, `{labels}` (its only use,
            // the Pushgateway push's label/value pairs).
            part == "**" ? "{labels}" : part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
        }.joined(separator: "/")
    }
}
