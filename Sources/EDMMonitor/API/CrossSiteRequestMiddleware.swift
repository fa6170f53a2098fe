import Vapor

/// Refuses requests a web page on another site could make through the operator's browser
/// (cross-site request forgery), which matters most while the API is open (no token yet) on
/// 127.0.0.1:
///
/// - a state-changing request (not GET, HEAD or OPTIONS) whose `Sec-Fetch-Site` is `cross-site`
///   or `same-site`, or whose `Origin` is not this server's own (`Host`), is 403 `forbidden`
///   (Fetch Metadata, https://www.w3.org/TR/fetch-metadata/; RFC 6454 origins). Clients that are
///   not browsers send neither header and pass;
/// - a body whose `Content-Type` is not `application/json` (or `text/csv`, which task creation
///   takes; `text/plain` on the Pushgateway push, `/metrics/job/…`) is 415 `unsupported_media_type`:
///   HTML forms can post `x-www-form-urlencoded`, `multipart/form-data` and `text/plain` to any
///   site without a preflight, JSON they cannot.
struct CrossSiteRequestMiddleware: AsyncMiddleware {
    static let acceptedBodyTypes: Set<String> = ["application/json", "text/csv"]

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard ![.GET, .HEAD, .OPTIONS].contains(request.method) else { return try await next.respond(to: request) }
        if let site = request.headers.first(name: "Sec-Fetch-Site")?.lowercased(), site == "cross-site" || site == "same-site" {
            throw APIError(.forbidden, .forbidden, "cross-site requests are refused (Sec-Fetch-Site: \(site)); call the API from the dashboard on this server or from a script")
        }
        if let origin = request.headers.first(name: .origin), !Self.isSameOrigin(origin, host: request.headers.first(name: .host)) {
            throw APIError(.forbidden, .forbidden, "cross-site requests are refused (Origin \(origin) is not this server)")
        }
        let hasBody = (request.headers.first(name: .contentLength).flatMap(Int.init) ?? 0) > 0 || request.headers.first(name: .transferEncoding) != nil
            || (request.body.data?.readableBytes ?? 0) > 0
        if hasBody {
            let type = request.headers.contentType.map { "\($0.type)/\($0.subType)".lowercased() } ?? ""
            // Pushgateway clients send the text format as `text/plain`; the Origin and
            // Sec-Fetch-Site checks above still refuse a browser's cross-site form post there.
            let isPush = type == "text/plain" && request.url.path.hasPrefix("/metrics/job/")
            guard Self.acceptedBodyTypes.contains(type) || isPush else {
                throw APIError(.unsupportedMediaType, .unsupportedMediaType, "the body must be application/json (text/csv for task imports), not \(type.isEmpty ? "untyped" : type)")
            }
        }
        return try await next.respond(to: request)
    }

    /// Whether `origin` (`scheme://host[:port]`) names the server reached at `host` (the
    /// `Host` header, `host[:port]`).
    static func isSameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let url = URL(string: origin), let originHost = url.host else { return false }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        let wanted = host.lowercased()
        if originAuthority.lowercased() == wanted { return true }
        // Default ports may be left out on either side.
        let defaultPort = url.scheme == "https" ? 443 : 80
        return "\(originHost):\(defaultPort)".lowercased() == wanted || (url.port == defaultPort && originHost.lowercased() == wanted)
    }
}
