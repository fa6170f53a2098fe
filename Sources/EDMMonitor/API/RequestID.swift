import Foundation
import Vapor

/// Gives every request an id, echoed in the `X-Request-ID` response header (errors included)
/// and attached to every log line written for the request (metadata `request-id`), and writes
/// one access log line per request.
///
/// A client's own `X-Request-ID` is kept when it is 1–128 characters of `A–Z a–z 0–9 . _ : -`
/// (so it cannot forge log lines or smuggle markup); anything else is replaced by a new UUID.
///
/// Access lines: `debug` for 1xx–3xx (a busy API must not flood the log at the default level),
/// `info` for 4xx, `error` for 5xx, with method, path (without the query string), status and
/// duration in milliseconds.
struct RequestIDMiddleware: AsyncMiddleware {
    static let header = HTTPHeaders.Name("X-Request-ID")

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let id = Self.accepted(request.headers.first(name: Self.header)) ?? UUID().uuidString.lowercased()
        request.logger[metadataKey: "request-id"] = .string(id)
        request.requestID = id
        let started = ContinuousClock.now
        let response: Response
        do {
            response = try await next.respond(to: request)
        } catch {
            // The error middleware sits inside this one; anything reaching here is Vapor's own.
            let apiError = APIErrorMiddleware.map(error)
            response = APIErrorMiddleware.response(for: apiError, request: request)
        }
        response.headers.replaceOrAdd(name: Self.header, value: id)
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let status = response.status.code
        let level: Logger.Level = status >= 500 ? .error : (status >= 400 ? .info : .debug)
        request.logger.log(level: level, "\(request.method.rawValue) \(request.url.path) \(status)", metadata: [
            "status": "\(status)", "duration_ms": "\(String(format: "%.1f", milliseconds))",
        ])
        return response
    }

    /// The client's id when acceptable, else `nil`.
    static func accepted(_ raw: String?) -> String? {
        guard let raw, (1...128).contains(raw.utf8.count),
              raw.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._:-".unicodeScalars.contains($0)) })
        else { return nil }
        return raw
    }
}

extension Request {
    private struct RequestIDKey: StorageKey { typealias Value = String }

    /// The id of this request as sent back in `X-Request-ID` (set by ``RequestIDMiddleware``).
    var requestID: String {
        get { storage[RequestIDKey.self] ?? id }
        set { storage[RequestIDKey.self] = newValue }
    }
}
