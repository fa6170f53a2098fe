@testable import EDMMonitor
import EDMMonitorCore
import FluentKit
import Foundation
import SQLKit
import Testing
import NIOPosix
import Vapor
import VaporTesting

/// API tokens, roles, request ids and the open-network refusal (issue #7, "Security").
@Suite("API security")
struct SecurityTests {
    /// Creates a token of `role` directly in the database.
    static func token(_ app: Application, _ role: APIRole, name: String? = nil, expiresAt: Date? = nil) async throws -> String {
        try await APITokens.create(name: name ?? "t-\(role.rawValue)", role: role, expiresAt: expiresAt, createdBy: "test", on: app.db, now: app.edm.clock.now()).token
    }

    static func bearer(_ token: String?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        if let token { headers.add(name: .authorization, value: "Bearer \(token)") }
        return headers
    }

    @Test("with no token created the API is open, and the first token closes it", arguments: TestDatabase.enabled)
    func openUntilFirstToken(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            try await app.testing().test(.GET, "/api/users") { res in #expect(res.status == .ok) }
            // The first token can be made through the open API; it is returned once.
            var created: String = ""
            try await app.testing().test(.POST, "/api/tokens", beforeRequest: { try $0.content.encode(["name": "root", "role": "admin"], as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string)")
                struct Created: Decodable { var token: String; var data: [String: JSONValue] }
                let body = try res.content.decode(Created.self)
                created = body.token
                #expect(body.token.hasPrefix("edm_") && body.token.count == 47)
                #expect(body.data["prefix"] == .string(String(body.token.prefix(12))))
                #expect(body.data["token_hash"] == nil && body.data["created_by"] == "anonymous")
            }
            try await app.testing().test(.GET, "/api/users") { res in
                #expect(res.status == .unauthorized)
                #expect(res.headers.first(name: .wwwAuthenticate) == #"Bearer realm="edm-monitor""#)
                let error41 = try ErrorBody.of(res)
                #expect(error41.code == "unauthorized")
            }
            try await app.testing().test(.GET, "/api/users", headers: Self.bearer(created)) { res in #expect(res.status == .ok) }
            // Health stays open.
            try await app.testing().test(.GET, "/api/monitoring/health") { res in #expect(res.status != .unauthorized) }
        }
    }

    @Test("only the SHA-256 of a token is stored; lists never show it", arguments: TestDatabase.enabled)
    func hashedAtRest(_ db: TestDatabase) async throws {
        try await withApp(db) { app, _ in
            let token = try await Self.token(app, .admin, name: "ops")
            let rows = try await app.sql.raw("SELECT * FROM api_tokens").all()
            #expect(rows.count == 1)
            let hash = try rows[0].decode(column: "token_hash", as: String.self)
            #expect(hash == APITokens.hash(token))
            // FIPS 180-4 test vector: SHA-256("abc").
            #expect(APITokens.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
            for column in ["name", "role", "token_hash", "prefix", "created_by"] {
                #expect(try rows[0].decode(column: column, as: String.self) != token)
            }
            try await app.testing().test(.GET, "/api/tokens", headers: Self.bearer(token)) { res in
                #expect(res.status == .ok)
                #expect(!res.body.string.contains(token) && !res.body.string.contains(hash))
                #expect(res.body.string.contains(#""prefix":"\#(token.prefix(12))""#))
            }
        }
    }

    @Test("a missing, malformed, unknown, revoked or expired token is 401 with the reason", arguments: TestDatabase.enabled)
    func refusals(_ db: TestDatabase) async throws {
        let clock = ManualClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        try await withApp(db, clock: clock) { app, _ in
            let admin = try await Self.token(app, .admin)
            let short = try await Self.token(app, .viewer, name: "short", expiresAt: clock.now().addingTimeInterval(3600))
            let cases: [(HTTPHeaders, String)] = [
                (HTTPHeaders(), "needs a token"),
                (HTTPHeaders([("Authorization", "Basic YWRtaW46YWRtaW4=")]), "must be `Bearer TOKEN`"),
                (Self.bearer("edm_not-a-real-token"), "is not a token of this server"),
                (Self.bearer(admin + "x"), "is not a token of this server"),
            ]
            for (headers, reason) in cases {
                try await app.testing().test(.GET, "/api/tasks", headers: headers) { res in
                    #expect(res.status == .unauthorized)
                    let error = try ErrorBody.of(res)
                    #expect(error.code == "unauthorized" && error.message.contains(reason), "\(error.message)")
                }
            }
            try await app.testing().test(.GET, "/api/tasks", headers: Self.bearer(short)) { res in #expect(res.status == .ok) }
            clock.advance(by: 3600)
            try await app.testing().test(.GET, "/api/tasks", headers: Self.bearer(short)) { res in
                #expect(res.status == .unauthorized)
                let error93 = try ErrorBody.of(res)
                #expect(error93.message.contains("has expired"))
            }
            // Revocation through the API, by an admin; the revoked token is refused at once.
            let victim = try await Self.token(app, .operator, name: "victim")
            let id = try #require(try await APITokenRecord.query(on: app.db).filter(\.$name == "victim").first()?.id)
            try await app.testing().test(.POST, "/api/tokens/\(id)/revoke", headers: Self.bearer(victim)) { res in #expect(res.status == .forbidden) }
            try await app.testing().test(.POST, "/api/tokens/\(id)/revoke", headers: Self.bearer(admin)) { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""state":"revoked""#))
            }
            try await app.testing().test(.POST, "/api/tokens/\(id)/revoke", headers: Self.bearer(admin)) { res in #expect(res.status == .conflict) }
            try await app.testing().test(.GET, "/api/tasks", headers: Self.bearer(victim)) { res in
                #expect(res.status == .unauthorized)
                let error106 = try ErrorBody.of(res)
                #expect(error106.message.contains("has been revoked"))
            }
            // Revoking every token does not reopen the API.
            for row in try await APITokenRecord.query(on: app.db).filter(\.$revokedAt == nil).all() {
                try await APITokens.revoke(id: row.requireID(), on: app.db, now: clock.now())
            }
            try await app.testing().test(.GET, "/api/tasks") { res in #expect(res.status == .unauthorized) }
            try await app.testing().test(.GET, "/api/tasks", headers: Self.bearer(admin)) { res in #expect(res.status == .unauthorized) }
        }
    }

    @Test("every route: no token is 401 unless open; a role below the route's is 403; at or above passes the check")
    func roleTable() async throws {
        try await withApp(.sqlite) { app, _ in
            let tokens: [APIRole: String] = [
                .viewer: try await Self.token(app, .viewer), .operator: try await Self.token(app, .operator), .admin: try await Self.token(app, .admin),
            ]
            let placeholder = UUID().uuidString.lowercased()
            await app.systemMonitor.collectOnce()  // system-health answers 503 before the first collection
            var checked = 0
            for route in RouteCatalog.registered(app) {
                let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
                let method = HTTPMethod(rawValue: parts[0])
                let path = parts[1].split(separator: "/").map { $0.hasPrefix(":") ? placeholder : String($0) }.joined(separator: "/")
                let access = RoutePolicy.access(route, metricsRequireToken: false)
                let principals: [APIRole?] = [nil, .viewer, .operator, .admin]
                for principal in principals {
                    try await app.testing().test(method, "/" + path, headers: Self.bearer(principal.flatMap { tokens[$0] }), beforeRequest: { req in
                        if method != .GET { try req.content.encode([String: String](), as: .json) }
                    }) { res in
                        let status = res.status.code
                        switch (access, principal) {
                        case (.open, _):
                            #expect(status != 401 && status != 403, "\(route) as \(principal?.rawValue ?? "nobody"): \(status)")
                        case (.role, nil):
                            #expect(status == 401, "\(route) without a token: \(status)")
                        case (.role(let needed), let role?):
                            if role >= needed {
                                #expect(status != 401 && status != 403, "\(route) as \(role): \(status) \(res.body.string)")
                            } else {
                                #expect(status == 403, "\(route) as \(role) (needs \(needed)): \(status)")
                                #expect((try? ErrorBody.of(res).code) == "forbidden")
                            }
                        }
                        #expect(status < 500, "\(route) as \(principal?.rawValue ?? "nobody"): \(status) \(res.body.string)")
                    }
                    checked += 1
                }
            }
            #expect(checked >= RouteCatalog.required.count * 4)
        }
    }

    @Test("the access rules: reads are viewer, the operator's writes are operator, everything else admin")
    func policy() {
        #expect(RoutePolicy.access("GET /api/monitoring/health", metricsRequireToken: true) == .open)
        #expect(RoutePolicy.access("GET /metrics", metricsRequireToken: false) == .open)
        #expect(RoutePolicy.access("GET /metrics", metricsRequireToken: true) == .role(.viewer))
        #expect(RoutePolicy.access("GET /api/tasks", metricsRequireToken: false) == .role(.viewer))
        #expect(RoutePolicy.access("GET /api/tokens", metricsRequireToken: false) == .role(.admin))
        #expect(RoutePolicy.access("POST /api/monitoring/alerts/:id/acknowledge", metricsRequireToken: false) == .role(.operator))
        #expect(RoutePolicy.access("POST /api/monitoring/performance-metrics", metricsRequireToken: false) == .role(.operator))
        #expect(RoutePolicy.access("PUT /api/monitoring/config", metricsRequireToken: false) == .role(.admin))
        #expect(RoutePolicy.access("POST /api/monitoring/alert-rules", metricsRequireToken: false) == .role(.admin))
        #expect(RoutePolicy.access("DELETE /api/anything/new", metricsRequireToken: false) == .role(.admin))
        #expect(RoutePolicy.access("GET /", metricsRequireToken: false) == .open)
    }

    @Test("EDM_METRICS_REQUIRE_TOKEN closes /metrics once tokens exist")
    func metricsClosed() async throws {
        try await withApp(.sqlite, adjust: { $0.metrics.metricsRequireToken = true }) { app, _ in
            try await app.testing().test(.GET, "/metrics") { res in #expect(res.status == .ok) }
            let viewer = try await Self.token(app, .viewer)
            try await app.testing().test(.GET, "/metrics") { res in #expect(res.status == .unauthorized) }
            try await app.testing().test(.GET, "/metrics", headers: Self.bearer(viewer)) { res in #expect(res.status == .ok) }
        }
        try await withApp(.sqlite) { app, _ in
            _ = try await Self.token(app, .viewer)
            try await app.testing().test(.GET, "/metrics") { res in #expect(res.status == .ok) }
        }
    }

    @Test("token names are validated and never reused")
    func tokenNames() async throws {
        try await withApp(.sqlite) { app, _ in
            for (body, field) in [(["name": "", "role": "admin"], "name"), (["name": "a b", "role": "admin"], "name"), (["name": "x", "role": "root"], "role")] {
                try await app.testing().test(.POST, "/api/tokens", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                    #expect(res.status == .badRequest)
                    let error193 = try ErrorBody.of(res)
                    #expect(error193.details.map(\.field) == [field])
                }
            }
            let admin = try await Self.token(app, .admin, name: "dup")
            try await app.testing().test(.POST, "/api/tokens", headers: Self.bearer(admin), beforeRequest: { try $0.content.encode(["name": "dup", "role": "viewer"], as: .json) }) { res in
                #expect(res.status == .conflict)
            }
        }
    }

    @Test("X-Request-ID is echoed when acceptable, replaced when not, and set on errors too")
    func requestID() async throws {
        try await withApp(.sqlite) { app, _ in
            try await app.testing().test(.GET, "/api/users", headers: ["X-Request-ID": "abc-123.x:y_z"]) { res in
                #expect(res.headers.first(name: "X-Request-ID") == "abc-123.x:y_z")
            }
            try await app.testing().test(.GET, "/api/no-such-thing", headers: ["X-Request-ID": "trace-404"]) { res in
                #expect(res.status == .notFound)
                #expect(res.headers.first(name: "X-Request-ID") == "trace-404")
            }
            for bad in ["has space", "line\\nbreak", String(repeating: "a", count: 129), "<script>"] {
                try await app.testing().test(.GET, "/api/users", headers: ["X-Request-ID": bad]) { res in
                    let id = try #require(res.headers.first(name: "X-Request-ID"))
                    #expect(id != bad && UUID(uuidString: id) != nil)
                }
            }
            try await app.testing().test(.GET, "/api/users") { res in
                #expect(UUID(uuidString: res.headers.first(name: "X-Request-ID") ?? "") != nil)
            }
        }
    }

    @Test("serve refuses a non-loopback address while no token exists, unless allowed")
    func openNetworkRefusal() async throws {
        try await withApp(.sqlite) { app, settings in
            var exposed = settings
            exposed.httpHost = "0.0.0.0"
            let logger = Logger(label: "test")
            await #expect(throws: StartupError.self) { try await refuseOpenNetworkAPI(app, settings: exposed, allowUnauthenticated: false, logger: logger) }
            try await refuseOpenNetworkAPI(app, settings: exposed, allowUnauthenticated: true, logger: logger)
            try await refuseOpenNetworkAPI(app, settings: settings, allowUnauthenticated: false, logger: logger)
            _ = try await Self.token(app, .admin)
            try await refuseOpenNetworkAPI(app, settings: exposed, allowUnauthenticated: false, logger: logger)
        }
        #expect(Settings.isLoopback("127.0.0.1") && Settings.isLoopback("127.8.9.10") && Settings.isLoopback("::1") && Settings.isLoopback("localhost"))
        #expect(!Settings.isLoopback("0.0.0.0") && !Settings.isLoopback("::") && !Settings.isLoopback("10.0.0.1") && !Settings.isLoopback("example.com"))
        // The real binary: one line saying why and how to fix it, exit 1, before listening.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-open-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try runEDMMonitor(["serve", "--host", "0.0.0.0", "--port", "\(try PostgresTestServer.freeLoopbackPort())", "--database-url", "sqlite://\(folder.path)/edm.sqlite"])
        #expect(result.status == 1)
        let last = String(result.stderr.split(separator: "\n").last ?? "")
        #expect(last.hasPrefix("edm-monitor: refusing to listen on 0.0.0.0") && last.contains("edm-monitor token create --role admin") && last.contains("--allow-unauthenticated"), "\(result.stderr)")
    }

    @Test("serve on a port another process holds stops before any background loop starts (nothing can be sent)")
    func portInUse() async throws {
        let holder = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        defer { try? holder.close().wait() }
        let port = try #require(holder.localAddress?.port)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-port-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try runEDMMonitor(["serve", "--port", "\(port)", "--database-url", "sqlite://\(folder.path)/edm.sqlite"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot listen on 127.0.0.1:\(port): the address is already in use"), "\(result.stderr)")
        #expect(!result.stderr.contains("scheduler started"), "\(result.stderr)")
    }

    @Test("token create prints the token once; list shows no secret; revoke works; bad input is one line, exit 2")
    func tokenCommands() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edm-tok-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = "sqlite://\(folder.path)/edm.sqlite"
        // Works on a fresh install: creates the database.
        let created = try runEDMMonitor(["token", "create", "--role", "admin", "--name", "ops", "--database-url", url])
        #expect(created.status == 0, "\(created.stderr)")
        let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.hasPrefix("edm_") && token.count == 47)
        #expect(created.stderr.contains("shown only this once"))
        let list = try runEDMMonitor(["token", "list", "--database-url", url])
        #expect(list.status == 0 && list.stdout.contains("ops\tadmin\tactive"), "\(list.stdout) \(list.stderr)")
        #expect(!list.stdout.contains(token))
        let duplicate = try runEDMMonitor(["token", "create", "--role", "viewer", "--name", "ops", "--database-url", url])
        #expect(duplicate.status == 1 && duplicate.stderr.contains("already exists"), "\(duplicate.stderr)")
        let badRole = try runEDMMonitor(["token", "create", "--role", "root", "--name", "x", "--database-url", url])
        #expect(badRole.status == 2 && badRole.stderr.split(separator: "\n").count == 1, "\(badRole.stderr)")
        let revoked = try runEDMMonitor(["token", "revoke", "--name", "ops", "--database-url", url])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let after = try runEDMMonitor(["token", "list", "--database-url", url])
        #expect(after.stdout.contains("ops\tadmin\trevoked"))
    }
}

extension SecurityTests {
    static func rule(url: String) -> [String: JSONValue] {
        ["name": "r", "metric_name": "edm_x", "condition_type": "threshold", "comparison_operator": ">", "threshold_value": 1,
         "time_window_minutes": 1, "severity": "warning", "notification_channels": [["type": "webhook", "url": .string(url)]]]
    }

    @Test("webhook and HTTP-mailer URLs: only http(s), no link-local or metadata address in any spelling, unless allow-listed")
    func outboundURLs() async throws {
        try await withApp(.sqlite) { app, _ in
            for url in ["ftp://example.com/x", "file:///etc/passwd", "http://169.254.169.254/latest", "http://2852039166/", "http://[::ffff:169.254.169.254]/",
                        "http://metadata.google.internal/computeMetadata/v1/", "http://[fd00:ec2::254]/", "http://hooks.example.com/***"] {
                try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(Self.rule(url: url), as: .json) }) { res in
                    #expect(res.status == .badRequest, "\(url): \(res.body.string)")
                    let error286 = try ErrorBody.of(res)
                    #expect(error286.details.map(\.field) == ["notification_channels[0].url"], "\(url)")
                }
            }
        }
        try await withApp(.sqlite, adjust: { $0.outboundAllowedHosts = ["169.254.10.20"] }) { app, _ in
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(Self.rule(url: "http://169.254.10.20/hook"), as: .json) }) { res in
                #expect(res.status == .created, "\(res.body.string)")
            }
        }
    }

    @Test("channel URLs are returned with their secrets hidden")
    func channelURLsRedacted() async throws {
        try await withApp(.sqlite) { app, _ in
            var body = Self.rule(url: "https://user:pw123456@hooks.example.com/hooks/abcdefghijklmnop1234?token=qwerty123")
            body["notification_channels"] = [["type": "webhook", "url": "https://user:pw123456@hooks.example.com/hooks/abcdefghijklmnop1234?token=qwerty123"],
                                             ["type": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"]]
            try await app.testing().test(.POST, "/api/monitoring/alert-rules", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .created)
                for secret in ["pw123456", "abcdefghijklmnop1234", "qwerty123", "XXXXsecretXXXX", "T000"] { #expect(!res.body.string.contains(secret), "\(secret)") }
                #expect(res.body.string.contains("hooks.example.com/hooks/***") && res.body.string.contains("hooks.slack.com/***"), "\(res.body.string)")
            }
        }
    }
}

extension SecurityTests {
    @Test("cross-site writes are refused: form bodies are 415, a foreign Origin or Sec-Fetch-Site is 403 (the open API cannot be driven by another web page)")
    func crossSite() async throws {
        try await withApp(.sqlite) { app, _ in
            func post(_ headers: HTTPHeaders, _ body: String) async throws -> HTTPStatus {
                var status = HTTPStatus.ok
                try await app.testing().test(.POST, "/api/users", headers: headers, body: ByteBuffer(string: body)) { status = $0.status }
                return status
            }
            let json = #"{"name":"Ann","email":"ann@example.com"}"#
            let status1 = try await post(["Content-Type": "application/x-www-form-urlencoded"], "name=victim&email=v@example.com")
            #expect(status1 == HTTPStatus.unsupportedMediaType)
            let status2 = try await post(["Content-Type": "multipart/form-data; boundary=x"], "--x--")
            #expect(status2 == HTTPStatus.unsupportedMediaType)
            let status3 = try await post(["Content-Type": "text/plain"], json)
            #expect(status3 == HTTPStatus.unsupportedMediaType)
            let status4 = try await post(["Content-Type": "application/json", "Origin": "http://evil.example", "Host": "127.0.0.1:8080"], json)
            #expect(status4 == HTTPStatus.forbidden)
            let status5 = try await post(["Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"], json)
            #expect(status5 == HTTPStatus.forbidden)
            let status6 = try await post(["Content-Type": "application/json", "Sec-Fetch-Site": "same-site"], json)
            #expect(status6 == HTTPStatus.forbidden)
            // The dashboard (same origin) and scripts (no Origin) pass.
            let status7 = try await post(["Content-Type": "application/json", "Origin": "http://127.0.0.1:8080", "Host": "127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"], json)
            #expect(status7 == HTTPStatus.created)
            let status8 = try await post(["Content-Type": "application/json; charset=utf-8"], json)
            #expect(status8 == HTTPStatus.created)
            #expect(try await User.query(on: app.db).count() == 2)
        }
        #expect(CrossSiteRequestMiddleware.isSameOrigin("https://edm.example.com", host: "edm.example.com"))
        #expect(CrossSiteRequestMiddleware.isSameOrigin("http://edm.example.com:80", host: "edm.example.com"))
        #expect(!CrossSiteRequestMiddleware.isSameOrigin("http://127.0.0.1:9999", host: "127.0.0.1:8080"))
        #expect(!CrossSiteRequestMiddleware.isSameOrigin("null", host: "127.0.0.1:8080"))
    }

    @Test("reserved token names, and redacted URLs sent back, are refused")
    func roundTrips() async throws {
        try await withApp(.sqlite) { app, _ in
            for name in ["anonymous", "Anonymous", "cli"] {
                try await app.testing().test(.POST, "/api/tokens", beforeRequest: { try $0.content.encode(["name": name, "role": "admin"], as: .json) }) { res in
                    #expect(res.status == .badRequest, "\(name)")
                }
            }
            let body: [String: JSONValue] = ["name": "api", "provider": "http", "sender_address": "news@example.com", "daily_quota": 10,
                                             "http": ["endpoint_url": "http://user:pw12345@127.0.0.1:18150/send?key=abc#frag"]]
            var id = ""
            try await app.testing().test(.POST, "/api/email-services", beforeRequest: { try $0.content.encode(body, as: .json) }) { res in
                #expect(res.status == .created)
                #expect(res.body.string.contains(#"http://user:***@127.0.0.1:18150/send?key=***#***"#), "\(res.body.string)")
                id = String(res.body.string.split(separator: "\"id\":\"").last?.prefix(36) ?? "")
            }
            let back: [String: JSONValue] = ["http": ["endpoint_url": "http://user:***@127.0.0.1:18150/send?key=***"]]
            try await app.testing().test(.PATCH, "/api/email-services/\(id)", beforeRequest: { try $0.content.encode(back, as: .json) }) { res in
                #expect(res.status == .badRequest, "\(res.body.string)")
            }
            let stored = try #require(try await EmailService.query(on: app.db).first())
            #expect(stored.providerConfig.http?.endpointURL == "http://user:pw12345@127.0.0.1:18150/send?key=abc#frag")
        }
    }

    @Test("alerts?status=firing is Alertmanager's word for active")
    func firingAlias() async throws {
        try await withApp(.sqlite) { app, _ in
            let rule = try #require(try await AlertRule.query(on: app.db).first())
            for (status, fingerprint) in [(AlertHistory.Status.active, "a1"), (.resolved, "r1")] {
                let alert = AlertHistory()
                alert.$rule.id = try rule.requireID()
                alert.triggeredAt = app.edm.clock.now()
                alert.createdAt = app.edm.clock.now()
                alert.updatedAt = app.edm.clock.now()
                alert.status = status
                alert.message = "test"
                alert.fingerprint = fingerprint
                alert.tags = [:]
                try await alert.create(on: app.db)
            }
            try await app.testing().test(.GET, "/api/monitoring/alerts?status=firing") { res in
                #expect(res.status == .ok)
                #expect(res.body.string.contains(#""total":1"#) && res.body.string.contains(#""fingerprint":"a1""#), "\(res.body.string)")
            }
            try await app.testing().test(.GET, "/api/monitoring/alerts?status=burning") { res in
                #expect(res.status == .badRequest)
                #expect(res.body.string.contains("firing = active"))
            }
        }
    }

    @Test("log lines cannot be forged with control characters, and request bodies are not dumped")
    func logHygiene() {
        #expect(RedactingLogHandler.escapeControls("x\n2026 critical FORGED") == "x\\n2026 critical FORGED")
        #expect(RedactingLogHandler.escapeControls("plain") == "plain")
        #expect(RedactingLogHandler.scrub(.string("a\rb")) == .string("a\\rb"))
    }
}

@Suite("Constant-time comparison")
struct ConstantTimeTests {
    @Test("equal only for the same bytes and length")
    func equality() {
        #expect(ConstantTime.equal([UInt8]("abc".utf8), [UInt8]("abc".utf8)))
        #expect(!ConstantTime.equal([UInt8]("abc".utf8), [UInt8]("abd".utf8)))
        #expect(!ConstantTime.equal([UInt8]("abc".utf8), [UInt8]("abcd".utf8)))
        #expect(!ConstantTime.equal([UInt8](), [UInt8]("a".utf8)))
        #expect(ConstantTime.equal([UInt8](), [UInt8]()))
        // Lengths that differ by a multiple of 256 must not look equal.
        #expect(!ConstantTime.equal([UInt8](repeating: 0, count: 256), [UInt8]()))
    }
}

extension ErrorBody {
    /// The `error` object of a test response's JSON error body.
    static func of(_ response: TestingHTTPResponse) throws -> Inner {
        try response.content.decode(ErrorBody.self).error
    }
}
