import Vapor

/// One dashboard file: its text and `Content-Type`.
struct WebAsset: Sendable {
    var contentType: String
    var text: String

    /// The file `bytes` (UTF-8) with the content type its name's extension calls for.
    init(name: String, bytes: [UInt8]) {
        text = String(decoding: bytes, as: UTF8.self)
        switch name.split(separator: ".").last {
        case "html": contentType = "text/html; charset=utf-8"
        case "css": contentType = "text/css; charset=utf-8"
        default: contentType = "text/javascript; charset=utf-8"
        }
    }
}

/// The dashboard's static files (`Web/Static`), compiled into the binary by SwiftPM's
/// `embedInCode` resource rule (`PackageResources`, see Package.swift), so the dashboard works
/// from any working directory and from a lone copied binary.
///
/// Adding a file to `Web/Static` means adding its line to ``files``: SwiftPM names each
/// embedded file by a Swift identifier, which cannot be listed at run time. A test fails when
/// the folder and this list differ.
enum WebAssets {
    /// The page served at `/`.
    static let indexName = "index.html"

    /// Every dashboard file by name.
    static let files: [String: WebAsset] = Dictionary(uniqueKeysWithValues: [
        ("alerts.js", PackageResources.alerts_js),
        ("api.js", PackageResources.api_js),
        ("app.js", PackageResources.app_js),
        ("charts.js", PackageResources.charts_js),
        ("index.html", PackageResources.index_html),
        ("overview.js", PackageResources.overview_js),
        ("services.js", PackageResources.services_js),
        ("style.css", PackageResources.style_css),
        ("tasks.js", PackageResources.tasks_js),
        ("ui.js", PackageResources.ui_js),
    ].map { name, bytes in (name, WebAsset(name: name, bytes: bytes)) })
}

/// `GET /`: the dashboard page; `GET /assets/:name`: its scripts and stylesheet. The pages are
/// static and read everything through the JSON API, so they need no token themselves; the API
/// calls they make carry the browser session's token.
struct DashboardController: RouteCollection {
    /// Scripts, styles and API calls only from this server; no inline code, no framing.
    static let contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

    func boot(routes: any RoutesBuilder) throws {
        routes.get(use: index)
        routes.get("assets", ":name", use: asset)
    }

    @Sendable func index(_ req: Request) async throws -> Response {
        try Self.response(for: WebAssets.indexName)
    }

    @Sendable func asset(_ req: Request) async throws -> Response {
        let name = req.parameters.get("name") ?? ""
        // The page itself lives at `/` only, so that there is one address to bookmark.
        guard name != WebAssets.indexName else { throw APIError.notFound("no dashboard asset named \(name)") }
        return try Self.response(for: name)
    }

    /// The file `name` with revalidation on every load (`no-cache`: a new binary's dashboard is
    /// picked up at once) and the security headers. - Throws: 404 for an unknown name.
    static func response(for name: String) throws -> Response {
        guard let file = WebAssets.files[name] else { throw APIError.notFound("no dashboard asset named \(name)") }
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .contentType, value: file.contentType)
        headers.replaceOrAdd(name: .cacheControl, value: "no-cache")
        headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        headers.replaceOrAdd(name: .contentSecurityPolicy, value: contentSecurityPolicy)
        headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        return Response(status: .ok, headers: headers, body: .init(string: file.text))
    }
}
