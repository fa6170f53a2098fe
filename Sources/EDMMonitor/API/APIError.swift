import FluentKit
import Foundation
import PostgresNIO
import Vapor

/// One problem with one field of a request, e.g. `{"field":"per_page","reason":"must be 1…500"}`.
public struct APIErrorDetail: Content, Equatable, Sendable {
    /// The JSON path or parameter name (`items[3].name`, `per_page`).
    public var field: String
    /// What is wrong, for a person.
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
}

/// The stable error vocabulary of the API (`error.code` in every error body).
public enum APIErrorCode: String, Codable, Sendable, CaseIterable {
    case validationFailed = "validation_failed"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case conflict
    case unauthorized
    case forbidden
    case payloadTooLarge = "payload_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case unavailable
    case internalError = "internal"

    /// The code for an HTTP status that carries no domain error.
    init(status: HTTPResponseStatus) {
        switch status.code {
        case 401: self = .unauthorized
        case 403: self = .forbidden
        case 404: self = .notFound
        case 405: self = .methodNotAllowed
        case 409: self = .conflict
        case 413: self = .payloadTooLarge
        case 415: self = .unsupportedMediaType
        case 503: self = .unavailable
        case 400..<500: self = .validationFailed
        default: self = .internalError
        }
    }
}

/// An error answered with its own status, code and message: what handlers throw for HTTP-level
/// problems (a bad query, a missing path parameter) and what every ``DomainError`` becomes.
/// ``APIErrorMiddleware`` turns these (and Vapor's and Fluent's errors) into the one body shape
/// `{"error":{"code","message","details"}}` (STYLE.md §9).
public struct APIError: DomainError, Equatable {
    public var status: HTTPResponseStatus
    public var code: APIErrorCode
    public var message: String
    public var details: [APIErrorDetail]

    public init(_ status: HTTPResponseStatus, _ code: APIErrorCode, _ message: String, details: [APIErrorDetail] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    /// 400 `validation_failed` listing each bad field.
    public static func validation(_ message: String, _ details: [APIErrorDetail]) -> APIError {
        APIError(.badRequest, .validationFailed, message, details: details)
    }

    /// 404 `not_found`.
    public static func notFound(_ message: String) -> APIError {
        APIError(.notFound, .notFound, message)
    }

    /// A malformed value (400) is a bad command line when it reaches the CLI; anything else is 1.
    public var exitStatus: Int32 { status == .badRequest ? 2 : 1 }
}

/// The JSON body of every error response.
struct APIErrorBody: Content {
    struct Inner: Codable {
        var code: APIErrorCode
        var message: String
        var details: [APIErrorDetail]
    }
    var error: Inner
}

/// Turns any thrown error into the API's error body and status. Replaces Vapor's default
/// `ErrorMiddleware` (whose body is `{"error":true,"reason":…}`).
///
/// - Domain errors (``DomainError``) keep their status and code and are logged at their level.
/// - Vapor's `AbortError` (unknown route 404, body too large 413, unsupported media 415…)
///   keeps its status, with the code from ``APIErrorCode/init(status:)``.
/// - `DecodingError` (a malformed JSON body) is 400 `validation_failed` naming the field.
/// - A unique-constraint violation is 409 `conflict`; other constraint violations 400.
/// - Anything else is 500 `internal` with a generic message; the real error is logged, not
///   returned, so no internal detail (SQL, paths, secrets) reaches a client.
struct APIErrorMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch {
            let (apiError, allowed, _) = Self.answer(to: error, for: request)
            if let domain = error as? any DomainError {
                request.logger.log(level: domain.logLevel, "request rejected", metadata: ["code": "\(apiError.code.rawValue)", "message": "\(apiError.message)"])
            } else if apiError.status.code >= 500 {
                request.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.url.path)"])
            } else {
                request.logger.debug("request rejected", metadata: ["code": "\(apiError.code.rawValue)", "message": "\(apiError.message)"])
            }
            let response = Self.response(for: apiError, request: request)
            if !allowed.isEmpty { response.headers.replaceOrAdd(name: .allow, value: allowed.joined(separator: ", ")) }
            return response
        }
    }

    /// What `error` thrown for `request` is answered with: the API error, the `Allow` methods
    /// (non-empty only for a 405) and, for a 405, the route pattern of the path (`/api/tasks/:id`).
    /// An unknown route whose path exists under other methods is 405 with `Allow`
    /// (RFC 9110 §15.5.6), not 404. ``APIMetricsMiddleware`` records the same status and pattern.
    static func answer(to error: any Error, for request: Request) -> (error: APIError, allowed: [String], route: String?) {
        guard error is RouteNotFound else { return (map(error), [], nil) }
        let matching = routes(matching: request.url.path, in: request.application.routes)
        guard !matching.isEmpty else { return (map(error), [], nil) }
        var methods = Set<String>()
        for route in matching {
            methods.insert(route.method.rawValue)
            if route.method == .GET { methods.insert("HEAD") }
        }
        let allowed = methods.sorted()
        // The most specific pattern: most constant components (`/api/tasks/stats` over `/api/tasks/:id`).
        let best = matching.max { constants($0.path) < constants($1.path) }!
        let pattern = "/" + best.path.map(\.description).joined(separator: "/")
        let apiError = APIError(.methodNotAllowed, .methodNotAllowed, "\(request.method.rawValue) is not allowed here; allowed: \(allowed.joined(separator: ", "))")
        return (apiError, allowed, pattern)
    }

    /// The routes, under any method, whose pattern matches `path` (constants equal,
    /// `:parameter` any one component, `*` any one, `**` the rest).
    private static func routes(matching path: String, in routes: Routes) -> [Route] {
        let parts = path.split(separator: "/").map(String.init)
        return routes.all.filter { matches($0.path, parts) }
    }

    private static func constants(_ pattern: [PathComponent]) -> Int {
        pattern.filter { if case .constant = $0 { true } else { false } }.count
    }

    private static func matches(_ pattern: [PathComponent], _ parts: [String]) -> Bool {
        var i = 0
        for component in pattern {
            switch component {
            case .catchall: return i < parts.count
            case .constant(let value):
                guard i < parts.count, parts[i] == value else { return false }
            case .parameter, .anything:
                guard i < parts.count else { return false }
            }
            i += 1
        }
        return i == parts.count
    }

    /// Maps a thrown error to the API error it is answered with.
    static func map(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as any DomainError:
            return error.apiError
        case let error as DecodingError:
            return decodingError(error)
        case let error as any DatabaseError where error.isConstraintFailure:
            return APIError(.conflict, .conflict, "the change conflicts with existing data (a unique value is already taken or a referenced row is missing)")
        case _ where String(describing: type(of: error)).contains("ConnectionPoolTimeoutError"):
            // AsyncKit's pool: every connection was busy for the whole timeout.
            return APIError(.serviceUnavailable, .unavailable, "the database is busy; try again shortly")
        case let error as any DatabaseError where error.isConnectionClosed:
            return APIError(.serviceUnavailable, .unavailable, "the database is unreachable; try again shortly")
        case let error as PSQLError where error.code == .connectionError:
            // The pool could not open a connection (PostgreSQL down): `isConnectionClosed` does
            // not cover it, and it is an outage, not a bug (scripts/bench/db_outage.py).
            return APIError(.serviceUnavailable, .unavailable, "the database is unreachable; try again shortly")
        case is RouteNotFound:
            return APIError(.notFound, .notFound, "no such resource")
        case let error as any AbortError:
            let message = error.reason
            return APIError(error.status, APIErrorCode(status: error.status), message)
        default:
            return APIError(.internalServerError, .internalError, "internal error; see the server log")
        }
    }

    private static func decodingError(_ error: DecodingError) -> APIError {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "body" : text)
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            let field = parent == "body" ? key.stringValue : "\(parent).\(key.stringValue)"
            return .validation("a required field is missing", [.init(field: field, reason: "is required")])
        case .typeMismatch(let type, let context):
            return .validation("a field has the wrong type", [.init(field: path(context), reason: "expected \(type)")])
        case .valueNotFound(let type, let context):
            return .validation("a field is null", [.init(field: path(context), reason: "expected \(type), got null")])
        case .dataCorrupted(let context):
            return .validation("the request body is not valid JSON for this endpoint", [.init(field: path(context), reason: context.debugDescription)])
        @unknown default:
            return .validation("the request body could not be read", [])
        }
    }

    /// Encodes `error` as the JSON error body.
    static func response(for error: APIError, request: Request) -> Response {
        let body = APIErrorBody(error: .init(code: error.code, message: error.message, details: error.details))
        let response = Response(status: error.status)
        do {
            try response.content.encode(body, as: .json)
        } catch {
            response.body = .init(string: #"{"error":{"code":"internal","message":"internal error","details":[]}}"#)
            response.headers.contentType = .json
        }
        // RFC 6750 §3: a 401 names the scheme the client should use.
        if error.status == .unauthorized { response.headers.replaceOrAdd(name: .wwwAuthenticate, value: #"Bearer realm="edm-monitor""#) }
        return response
    }
}
