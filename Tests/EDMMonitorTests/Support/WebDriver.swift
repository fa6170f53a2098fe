import AsyncHTTPClient
import EDMMonitorCore
import Foundation
import Vapor
#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium driven through chromedriver's W3C WebDriver HTTP API
/// (https://www.w3.org/TR/webdriver2/): Debian's `chromium` and `chromium-driver`.
///
/// Every wait is bounded; the browser and the driver are ended by ``quit()``.
final class WebDriver: @unchecked Sendable {
    /// Whether the browser tests must run (CI): `EDM_REQUIRE_CHROMIUM=1`.
    static let isRequired = ProcessInfo.processInfo.environment["EDM_REQUIRE_CHROMIUM"] == "1"

    /// The browser and driver executables on PATH, or `nil` when either is missing.
    static let executables: (browser: String, driver: String)? = {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/lib/chromium"]
        func find(_ names: [String]) -> String? {
            for name in names {
                if let hit = path.map({ "\($0)/\(name)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return hit }
            }
            return nil
        }
        guard let browser = find(["chromium", "chromium-browser", "google-chrome"]), let driver = find(["chromedriver"]) else { return nil }
        return (browser, driver)
    }()

    /// Run the browser tests when the binaries exist, or when CI requires them (they then fail).
    static var isEnabled: Bool { executables != nil || isRequired }

    private let process: ChildProcess
    private let base: String
    private let session: String
    private let http = HTTPClient.shared

    private init(process: ChildProcess, base: String, session: String) {
        self.process = process
        self.base = base
        self.session = session
    }

    /// Starts chromedriver on a free loopback port and a headless browser session with a
    /// `width`×`height` window. - Throws: ``TestSupportError`` naming what is missing or failed.
    static func start(width: Int = 1360, height: Int = 1600) async throws -> WebDriver {
        guard let executables else {
            throw TestSupportError("chromium and chromedriver are not on PATH (apt-get install chromium chromium-driver)")
        }
        let port = try PostgresTestServer.freeLoopbackPort()
        let (browser, driver) = executables
        let process = try ChildProcess(driver, ["--port=\(port)", "--allowed-ips=127.0.0.1", "--log-level=WARNING"])
        let base = "http://127.0.0.1:\(port)"
        // Ready when /status answers (bounded: 20 s).
        let deadline = Date().addingTimeInterval(20)
        while true {
            if let status = try? await request(.GET, base + "/status", body: nil), case .object(let o)? = status["value"], o["ready"] == .bool(true) { break }
            guard process.isRunning else { throw TestSupportError("chromedriver exited: \(process.stderr)") }
            guard Date() < deadline else { throw TestSupportError("chromedriver did not answer within 20 s: \(process.stderr)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        let capabilities: JSONValue = ["capabilities": ["alwaysMatch": [
            "browserName": "chrome",
            "goog:chromeOptions": [
                "binary": .string(browser),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                         .string("--window-size=\(width),\(height)"), "--lang=en-US"],
            ],
            "goog:loggingPrefs": ["browser": "ALL"],
        ]]]
        let answer = try await request(.POST, base + "/session", body: capabilities)
        guard case .object(let value)? = answer["value"], let id = value["sessionId"]?.stringValue else {
            throw TestSupportError("chromedriver refused the session: \(answer)")
        }
        return WebDriver(process: process, base: base, session: id)
    }

    /// Ends the browser session and the driver.
    func quit() async {
        _ = try? await Self.request(.DELETE, "\(base)/session/\(session)", body: nil)
        process.signal(SIGTERM)
        if process.wait(timeout: 5) == nil { process.signal(SIGKILL); process.wait(timeout: 5) }
    }

    /// Opens `url` (waits for the document to load).
    func open(_ url: String) async throws {
        _ = try await command(.POST, "url", ["url": .string(url)])
    }

    /// Runs `script` (a function body; `arguments[0]`… are `args`) in the page and returns its value.
    @discardableResult
    func execute(_ script: String, _ args: [JSONValue] = []) async throws -> JSONValue {
        try await command(.POST, "execute/sync", ["script": .string(script), "args": .array(args)])
    }

    /// Polls `script` until it returns something truthy (not null/false/0/""), at most `timeout`
    /// seconds. - Returns: that value. - Throws: naming `what` and the last value.
    @discardableResult
    func wait(_ what: String, timeout: TimeInterval = 20, _ script: String, _ args: [JSONValue] = []) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(timeout)
        var last: JSONValue = .null
        while Date() < deadline {
            last = try await execute(script, args)
            switch last {
            case .null, .bool(false), .number(0), .string(""): break
            default: return last
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let banner = try? await execute("return document.getElementById('banner') && document.getElementById('banner').textContent")
        throw TestSupportError("timed out after \(Int(timeout)) s waiting for \(what); last value \(last); banner: \(banner ?? .null)")
    }

    /// Writes a PNG screenshot of the window to `file` (creating its folder).
    func screenshot(to file: URL) async throws {
        let value = try await command(.GET, "screenshot", nil)
        guard let base64 = value.stringValue, let png = Data(base64Encoded: base64) else { throw TestSupportError("no screenshot data") }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try png.write(to: file)
    }

    /// The browser console's entries since the last call: `LEVEL message` lines.
    func consoleLog() async throws -> [String] {
        guard case .array(let entries) = try await command(.POST, "se/log", ["type": "browser"]) else { return [] }
        return entries.compactMap { entry in
            guard case .object(let o) = entry else { return nil }
            return "\(o["level"]?.stringValue ?? "?") \(o["message"]?.stringValue ?? "")"
        }
    }

    /// `METHOD /session/{id}/path` and the answer's `value`.
    private func command(_ method: HTTPMethod, _ path: String, _ body: JSONValue?) async throws -> JSONValue {
        let answer = try await Self.request(method, "\(base)/session/\(session)/\(path)", body: body)
        return answer["value"] ?? .null
    }

    /// One WebDriver request; an answer whose `value` holds an `error` is thrown.
    private static func request(_ method: HTTPMethod, _ url: String, body: JSONValue?) async throws -> [String: JSONValue] {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = Data(try await response.body.collect(upTo: 32 << 20).readableBytesView)
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: data) else {
            throw TestSupportError("WebDriver \(method) \(url): not a JSON object")
        }
        if case .object(let value)? = object["value"], let error = value["error"]?.stringValue {
            throw TestSupportError("WebDriver \(method) \(url): \(error): \(value["message"]?.stringValue?.prefix(500) ?? "")")
        }
        return object
    }
}
