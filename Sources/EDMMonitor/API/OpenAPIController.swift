import Vapor

/// The API contract, `openapi.yaml` at the repository root (OpenAPI 3.1), compiled into the
/// binary by SwiftPM's `embedInCode` resource rule (`Resources/openapi.yaml` links to it), so
/// that it is served from any working directory and install location.
public enum OpenAPIDocument {
    /// The document, byte for byte the repository's `openapi.yaml` (UTF-8).
    public static let text = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)

    /// `application/yaml` (RFC 9512).
    public static let mediaType = HTTPMediaType(type: "application", subType: "yaml")
}

/// `GET /openapi.yaml`: the API contract, public like health and `/metrics`.
struct OpenAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("openapi.yaml", use: document)
    }

    @Sendable func document(_ req: Request) async throws -> Response {
        var headers = HTTPHeaders()
        headers.contentType = OpenAPIDocument.mediaType
        return Response(status: .ok, headers: headers, body: .init(string: OpenAPIDocument.text))
    }
}
